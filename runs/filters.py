from __future__ import annotations

import django_filters

from core.filters import UtcIsoDateTimeFilter
from runs.models import Run


class RunFilter(django_filters.FilterSet):
    started_after = UtcIsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = UtcIsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields = ["job", "status", "trigger", "upstream_run", "started_after", "started_before"]
