from __future__ import annotations

import django_filters

from audit.models import AuditEntry
from core.filters import UtcIsoDateTimeFilter


class AuditEntryFilter(django_filters.FilterSet):
    job = django_filters.CharFilter(field_name="job_id")
    run = django_filters.NumberFilter(field_name="run_id")
    at_after = UtcIsoDateTimeFilter(field_name="at", lookup_expr="gte")
    at_before = UtcIsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["job", "run", "actor", "action", "source", "at_after", "at_before"]
