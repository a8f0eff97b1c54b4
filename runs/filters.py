from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from core.filters import UtcIsoDateTimeFilter
from runs import selectors
from runs.models import Run

# The lists' ``ordering`` values that order by id: newest first (the default) or oldest first.
BY_ID = {"": True, "-id": True, "-pk": True, "id": False, "pk": False}


class RunFilter(django_filters.FilterSet):
    started_after = UtcIsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = UtcIsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields = ["job", "status", "trigger", "upstream_run", "started_after", "started_before"]

    def filter_queryset(self, queryset: QuerySet[Run]) -> QuerySet[Run]:
        queryset = super().filter_queryset(queryset)
        after = self.form.cleaned_data.get("started_after")
        before = self.form.cleaned_data.get("started_before")
        if after is None or before is None:
            return queryset
        # A closed window, listed by id: within the id range of its runs as well (the same runs,
        # found from the window's newest or oldest run rather than from the newest or oldest run of
        # all; see the selector). Another order reads the window by started_at or sorts it anyway.
        ordering = (self.data or {}).get("ordering") or ""  # the list's query (DjangoFilterBackend's data)
        if ordering.strip() not in BY_ID:
            return queryset
        ids = selectors.started_window_ids(after=after, before=before, newest_first=BY_ID[ordering.strip()])
        if ids is None:
            return queryset
        if ids.lowest is None or ids.highest is None:
            return queryset.none()
        return queryset.filter(id__gte=ids.lowest, id__lte=ids.highest)
