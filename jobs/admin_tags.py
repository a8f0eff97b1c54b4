"""The admin's tag pieces: the form's tag field (text, ``prod, team:billing``) and the job list's
filter by tag. The rules are ``jobs.tags``', applied when the job is prepared (``JobForm``), so
the form refuses what the API and an import refuse, in the same words."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy

from jobs.models import Job
from jobs.tags import MAX_TAGS, has_all_tags, parse_tag_text, tag_rule, tags_in_use


class TagsFormField(forms.CharField):
    """A tag list as one line of text: tags separated by commas or spaces."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", gettext_lazy("Tags"))
        kwargs.setdefault(
            "help_text",
            _help_lazy(),
        )
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 80, "placeholder": "prod, team:billing"}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(tag) for tag in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            return list(value)
        return parse_tag_text(str(value or ""))

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial) != self.to_python(data)


def _help() -> str:
    return gettext("Separated by commas or spaces; at most %(max)d, each %(rule)s (lowercased).") % {
        "max": MAX_TAGS,
        "rule": tag_rule(),
    }


_help_lazy = lazy(_help, str)  # in the language of the request that shows the form


class TagListFilter(admin.SimpleListFilter):
    """The jobs with a tag (``?tag=prod``), chosen among the tags in use."""

    title = gettext_lazy("tag")
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(tag, tag) for tag in tags_in_use()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        value = self.value()
        return queryset.filter(has_all_tags([value])) if value else queryset
