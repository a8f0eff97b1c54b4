"""The job list's filters, shared by the API (and the admin from issue #6)."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from jobs.models import Job
from jobs.tags import has_all_tags, normalise_tags, tag_problems


class TagsField(forms.Field):
    """Every ``?tag=`` of the query string (repeated: ``?tag=prod&tag=db``), each checked as a tag;
    an empty one is no filter, as for the other fields (a form sends ``?tag=&status=active``)."""

    widget = forms.MultipleHiddenInput  # reads them all (QueryDict.getlist), not the last one

    def to_python(self, value: Any) -> list[str]:
        tags = normalise_tags([tag for tag in value or [] if tag != ""])
        problems = tag_problems(tags)
        if problems:
            # As a parameter, not the message: django-filter %-formats messages, and a tag given
            # with a "%" in it was a 500.
            raise ValidationError("%(problems)s", params={"problems": " ".join(problems)})
        return tags


@extend_schema_field(OpenApiTypes.STR)  # one tag a parameter, repeated; no model field is named "tag"
class TagsFilter(django_filters.Filter):
    field_class = TagsField

    def filter(self, qs: QuerySet[Job], value: list[str]) -> QuerySet[Job]:
        return qs.filter(has_all_tags(value)) if value else qs


class JobFilter(django_filters.FilterSet):
    #: ``?tag=a&tag=b``: the jobs that have every one of the tags given.
    tag = TagsFilter(label=gettext_lazy("tag (repeat for jobs with every one)"))

    class Meta:
        model = Job
        fields = ["status", "kind", "trigger", "last_run_status", "is_system"]
