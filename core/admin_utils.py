"""Small pieces the admin pages share: status badges, a paginator that never counts a huge table,
a search box with bounds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from core import search
from core.status_words import STATUS_WORDS

STATUS_COLOURS = {
    # A job's status says nothing of how it goes ("active" while every run fails): not green. Its
    # health (runs.health) does: healthy, failing, late, never run.
    "active": "#0277bd", "success": "#2e7d32", "healthy": "#2e7d32", "failing": "#c62828", "late": "#ef6c00",
    "never_run": "#78909c",
    "paused": "#8d6e63", "queued": "#546e7a", "running": "#1565c0", "completed": "#546e7a",
    "failed": "#c62828", "timeout": "#ef6c00", "lost": "#6a1b9a", "skipped": "#757575", "cancelled": "#757575",
}  # fmt: skip


def badge(status: str, label: str | None = None) -> SafeString:
    colour = STATUS_COLOURS.get(status, "#616161")
    return format_html(
        '<span class="ct-badge" style="background:{};color:#fff;border-radius:8px;padding:1px 8px;'
        'font-size:11px;white-space:nowrap">{}</span>',
        colour,
        label or STATUS_WORDS.get(status, status),
    )


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows (a bounded subquery), so a list of millions of runs stays cheap."""

    CAP = 10_000
    object_list: QuerySet[Any]  # the admin's changelist pages a queryset

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by().values("pk")[: self.CAP + 1].count()


class BoundedSearchMixin(admin.ModelAdmin):
    """A ModelAdmin whose search uses at most ``search.MAX_TERMS`` terms of at most
    ``search.MAX_TERM_LENGTH`` characters (the API's bounds).

    Unlike the API, which refuses such a search, the admin searches with the terms within the
    bounds and says which it left out: dropping a term from an AND can only widen the results,
    so no row that matches the whole search is hidden, and the page still answers.
    """

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        kept, left_out = search.admin_search_terms(search_term)
        if left_out:
            shown = ", ".join(repr(term[:30] + ("…" if len(term) > 30 else "")) for term in left_out[:3])
            more = (
                ngettext(" and %(n)d more", " and %(n)d more", len(left_out) - 3) % {"n": len(left_out) - 3}
                if len(left_out) > 3
                else ""
            )
            message = _("Search uses at most %(terms)d terms of at most %(length)d characters; left out: %(shown)s.")
            messages.warning(
                request,
                message % {"terms": search.MAX_TERMS, "length": search.MAX_TERM_LENGTH, "shown": shown + more},
            )
        return super().get_search_results(request, queryset, " ".join(kept))


class SaveRefused(Exception):
    """A service refused a save the admin's form had found valid (a race): raised by ``save_model``,
    answered by ``RefusedSaveMixin``."""


class RefusedSaveMixin(admin.ModelAdmin):
    """A save refused after the form was valid (``SaveRefused`` from ``save_model``) rolls back with
    the view's transaction; the user is told why and sent back to the page, never a 500."""

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SaveRefused as refused:
            self.save_refused(request, refused)
            self.message_user(request, _("Nothing was saved: %(reason)s") % {"reason": refused}, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_refused(self, request: HttpRequest, refused: SaveRefused) -> None:
        """Called once the refused save has rolled back (what is written here stays): by default nothing."""


class ZonedSplitDateTimeField(forms.SplitDateTimeField):
    """The admin's date and time boxes read and shown in a zone of the form's choosing (a job's, a
    calendar's), not the request's: the form's ``clean`` makes the naive value aware in that zone
    (the zone submitted with it: ``JobForm.clean``, ``calendars.admin.WindowForm.clean``)."""

    zone: Any = None

    def compress(self, data_list: Any) -> datetime | None:
        if data_list and data_list[0] and data_list[1]:
            return datetime.combine(data_list[0], data_list[1])  # naive: JobForm.clean gives it its zone
        return super().compress(data_list)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, datetime) and timezone.is_aware(value) and self.zone is not None:
            return value.astimezone(self.zone).replace(tzinfo=None)
        return super().prepare_value(value)
