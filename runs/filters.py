from __future__ import annotations

from datetime import timedelta

import django_filters
from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet, Value

from core.filters import UtcIsoDateTimeFilter
from runs import selectors
from runs.models import Run

# The lists' ``ordering`` values that order by id: newest first (the default) or oldest first.
BY_ID = {"": True, "-id": True, "-pk": True, "id": False, "pk": False}
WINDOW = ("started_after", "started_before")


class RunFilter(django_filters.FilterSet):
    started_after = UtcIsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = UtcIsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields = ["job", "status", "trigger", "upstream_run", "started_after", "started_before"]

    def filter_queryset(self, queryset: QuerySet[Run]) -> QuerySet[Run]:
        after = self.form.cleaned_data.get("started_after")
        before = self.form.cleaned_data.get("started_before")
        ordering = ((self.data or {}).get("ordering") or "").strip()  # the list's query (DjangoFilterBackend's)
        if after is None or before is None or ordering not in BY_ID:
            return super().filter_queryset(queryset)
        # A closed window listed by id: within the id range of its runs as well (the same runs,
        # found from the window's newest or oldest run rather than from the newest or oldest run
        # of all; see the selector). Another order reads the window by started_at or sorts it anyway.
        ids = selectors.started_window_ids(after=after, before=before, newest_first=BY_ID[ordering])
        if ids is None:
            return super().filter_queryset(queryset)
        if ids.lowest is None or ids.highest is None:
            return queryset.none()
        for name, value in self.form.cleaned_data.items():
            if name not in WINDOW:
                queryset = self.filters[name].filter(queryset, value)
        queryset = queryset.filter(id__gte=ids.lowest, id__lte=ids.highest)
        since: F | ExpressionWrapper = F("started_at")
        until: F | ExpressionWrapper = F("started_at")
        if connection.vendor == "postgresql":
            # started_at + 0 s and started_at - 0 s, the same time. As started_at itself, PostgreSQL
            # estimates the window and the id range as if they were unrelated (a run in one of a
            # hundred by each, so one in ten thousand by both) and, with another filter, sorts the
            # window's runs read by started_at instead of walking the id range; an expression cannot
            # use the started_at index, nor multiply its estimate in. Two different expressions, not
            # one: the same expression on both sides is taken for one narrow range of unknown spread
            # (one run in two hundred), a page with a status or a job is then thought to have fewer
            # runs than it shows, and the whole id range is read, by parallel workers that take
            # longer to start (4 to 10 ms) than the page takes to read. Each bound on its own is
            # taken for a third of the runs: the walk down the ids (or the status's, or the job's,
            # index) is planned as what it is, stopping at the page's last run.
            since = ExpressionWrapper(F("started_at") + Value(timedelta(0)), output_field=DateTimeField())
            until = ExpressionWrapper(F("started_at") - Value(timedelta(0)), output_field=DateTimeField())
        return queryset.alias(window_since=since, window_until=until).filter(
            window_since__gte=after, window_until__lt=before
        )
