"""The job list's filters, shared by the API (and the admin from issue #6)."""

from __future__ import annotations

import django_filters

from jobs.models import Job


class JobFilter(django_filters.FilterSet):
    class Meta:
        model = Job
        fields = ["status", "kind", "trigger", "last_run_status", "is_system"]
