"""Limit/offset pagination that refuses a bad limit or offset with a 400 instead of guessing."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

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
