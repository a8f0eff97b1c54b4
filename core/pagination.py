"""Limit/offset pagination that refuses a bad limit or offset with a 400 instead of guessing; and
for the runs, a feed with a count that stays cheap and a keyset cursor (``FeedPagination``)."""

from __future__ import annotations

import base64
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

MAX_OFFSET = 10**9


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000

    def get_limit(self, request: Request) -> int | None:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.default_limit
        return _bounded(self.limit_query_param, raw, low=1, high=self.max_limit)

    def get_offset(self, request: Request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None:
            return 0
        return _bounded(self.offset_query_param, raw, low=0, high=MAX_OFFSET)


def _bounded(name: str, raw: str, *, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            {name: [_("Must be a whole number from %(low)d to %(high)d.") % {"low": low, "high": high}]}
        ) from None
    if not low <= value <= high:
        raise ValidationError(
            {name: [_("Must be a whole number from %(low)d to %(high)d.") % {"low": low, "high": high}]}
        )
    return value


class FeedPagination(LimitOffsetPagination):
    """A large, growing table's list (the runs): limit/offset as everywhere, with a count that
    stays cheap, or a keyset cursor (``?cursor=``) whose cost does not grow with the depth.

    - ``?limit=&offset=`` (what existing clients send): ``count`` is exact up to ``COUNT_CAP``
      rows; past it, ``count`` is ``COUNT_CAP`` and ``count_capped`` is true (counting every row of
      a table of millions on each page is what made deep lists slow). ``next`` is there whenever
      another row is, whatever the count.
    - ``?cursor=`` (empty for the first page): pages by ``id``, newest first (or oldest first with
      ``ordering=id``), each page one index range scan: ``{"next", "previous", "results"}``, no
      count. A cursor is opaque; a bad one is a 400 on ``cursor``. Only ``ordering`` ``-id`` (the
      default) or ``id`` can be paged so; another is a 400.
    """

    COUNT_CAP = 10_000
    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self.request = request
        self.limit = limit = self.get_limit(request) or self.default_limit
        if self.cursor_query_param in request.query_params:
            self.keyset = True
            return self._keyset_page(queryset, request, limit)
        self.keyset = False
        self.offset = self.get_offset(request)
        rows = list(queryset[self.offset : self.offset + limit + 1])
        self.has_more = len(rows) > limit
        self.count, self.count_capped = self._capped_count(queryset)
        return rows[:limit]

    def get_paginated_response(self, data: Any) -> Response:
        if self.keyset:
            return Response({"next": self.next_link, "previous": self.previous_link, "results": data})
        return Response(
            {
                "count": self.count,
                "count_capped": self.count_capped,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_next_link(self) -> str | None:
        if self.keyset:
            return self.next_link
        if not self.has_more or self.request is None:
            return None
        return replace_query_param(
            self.request.build_absolute_uri(), self.offset_query_param, (self.offset or 0) + (self.limit or 0)
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count_capped"] = {"type": "boolean"}
        response["required"] = ["results"]  # a cursor page has no count
        return response

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": _("Page by id, not offset: empty for the first page, then the next or previous link's."),
                "schema": {"type": "string"},
            },
        ]

    def _capped_count(self, queryset: QuerySet[Any]) -> tuple[int, bool]:
        counted = queryset.order_by()[: self.COUNT_CAP + 1].count()  # SELECT COUNT(*) FROM (… LIMIT n)
        return min(counted, self.COUNT_CAP), counted > self.COUNT_CAP

    def _keyset_page(self, queryset: QuerySet[Any], request: Request, limit: int) -> list[Any]:
        newest_first = _id_order(queryset)
        after, backwards = _read_cursor(request.query_params[self.cursor_query_param])
        if after is not None:
            ahead = (lambda i: {"id__lt": i}) if newest_first != backwards else (lambda i: {"id__gt": i})
            queryset = queryset.filter(**ahead(after))
        if backwards:
            queryset = queryset.reverse()
        rows = list(queryset[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()
        ends_ahead = more if not backwards else after is not None
        ends_behind = (after is not None) if not backwards else more
        url = request.build_absolute_uri()
        self.next_link = (
            replace_query_param(url, self.cursor_query_param, _cursor(rows[-1].pk, False))
            if rows and ends_ahead
            else None
        )
        self.previous_link = (
            replace_query_param(url, self.cursor_query_param, _cursor(rows[0].pk, True))
            if rows and ends_behind
            else None
        )
        return rows


def _id_order(queryset: QuerySet[Any]) -> bool:
    """True for newest first (``-id``), False for ``id``; a 400 for any other order."""
    order = list(queryset.query.order_by)
    if order in (["-id"], ["-pk"]):
        return True
    if order in (["id"], ["pk"]):
        return False
    raise ValidationError({"cursor": [_("Paging by cursor needs ordering=-id (the default) or ordering=id.")]})


def _cursor(last_id: int, backwards: bool) -> str:
    return base64.urlsafe_b64encode(f"{'b' if backwards else 'a'}{last_id}".encode()).decode().rstrip("=")


def _read_cursor(given: str) -> tuple[int | None, bool]:
    """(the id to page from, whether backwards) of a cursor; (None, False) for the first page."""
    if not given:
        return None, False
    try:
        text = base64.urlsafe_b64decode(given + "=" * (-len(given) % 4)).decode()
        if text[:1] not in ("a", "b") or not text[1:].isdigit() or len(text) > 20:
            raise ValueError(text)
        return int(text[1:]), text[0] == "b"
    except (ValueError, UnicodeDecodeError):
        raise ValidationError({"cursor": [_("Not a cursor this list gave: use its next or previous link.")]}) from None
