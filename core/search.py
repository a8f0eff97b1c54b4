"""Bounds on free-text search, for the API (``?search=``) and the admin's search box.

Each search term becomes an OR of one ``ILIKE`` per search field, and the terms are ANDed: the
query grows with the number of terms (1,000 terms made SQLite refuse it, "Expression tree is
too large", and cost PostgreSQL 5,000 ILIKEs) and each ILIKE's cost with the term's length.
The API refuses a search past the bounds (400 naming ``search``); the admin searches with the
terms within them and says which it left out (see ``core.admin_utils.BoundedSearchMixin``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError
from rest_framework.filters import SearchFilter

if TYPE_CHECKING:
    from rest_framework.request import Request

MAX_TERMS = 10
MAX_TERM_LENGTH = 100


def search_problem(terms: list[str]) -> str | None:
    """Why these terms are refused, or None when they are within the bounds."""
    if len(terms) > MAX_TERMS:
        return _("At most %(max)d search terms are allowed; %(n)d were given.") % {"max": MAX_TERMS, "n": len(terms)}
    longest = max((len(term) for term in terms), default=0)
    if longest > MAX_TERM_LENGTH:
        message = _("A search term may have at most %(max)d characters; one has %(n)d.")
        return message % {"max": MAX_TERM_LENGTH, "n": longest}
    return None


def admin_search_terms(search_term: str) -> tuple[list[str], list[str]]:
    """The admin's search box split as Django's admin splits it (quoted phrases kept whole), as
    (the raw terms to search with, the terms left out for being past the bounds)."""
    kept: list[str] = []
    left_out: list[str] = []
    for bit in smart_split(search_term):
        text = unescape_string_literal(bit) if bit[:1] in ('"', "'") and bit[0] == bit[-1] and len(bit) > 1 else bit
        if len(kept) < MAX_TERMS and len(text) <= MAX_TERM_LENGTH:
            kept.append(bit)
        else:
            left_out.append(text)
    return kept, left_out


class BoundedSearchFilter(SearchFilter):
    """DRF's SearchFilter (REST_FRAMEWORK DEFAULT_FILTER_BACKENDS), refusing a search past the bounds
    with a 400 naming ``search``. Checked on every list, searchable or not, so that a client learns
    of the bounds from whichever endpoint it tries first."""

    def get_search_terms(self, request: Request) -> list[str]:
        terms = super().get_search_terms(request)
        problem = search_problem(terms)
        if problem:
            raise ValidationError({self.search_param: [problem]})
        return terms
