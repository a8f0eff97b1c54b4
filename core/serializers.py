"""Serializers whose fields are built once per process, not once per request (issue #23).

DRF builds a serializer's fields for each instance: a ModelSerializer introspects its model field by
field (labels, help texts, validators), a plain one deep-copies its declared fields. For the job's
forty-odd fields that was about a millisecond of each ``POST /api/jobs/``, more than its
validation. ``SharedFields`` builds them once, on a prototype of the class, and every instance reads
them from there.

That is right only for fields that keep nothing of a request, which holds for DRF's own fields in
``to_representation`` and ``run_validation``: they read the instance or the data they are given,
the time zone active at the call, and the root serializer's ``partial`` (a prototype per value).
Not for fields that read the serializer's ``context`` (a request, for hyperlinks): a class whose
fields do must not use this. The prototypes are also kept per language: DRF formats some error
messages once (``lazy_format``: "no more than N characters"), in the language of the request
that first shows them.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from django.utils import translation
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

_lock = threading.Lock()


class SharedFields(serializers.BaseSerializer):
    """A serializer's fields, built once per class, ``partial`` and language, shared by its instances."""

    _shared_fields: ClassVar[dict[tuple[type, bool, str | None], BindingDict]] = {}

    @property  # over DRF's cached_property of each instance
    def fields(self) -> BindingDict:
        key = (type(self), bool(self.partial), translation.get_language())
        fields = self._shared_fields.get(key)
        if fields is None:
            with _lock:
                fields = self._shared_fields.get(key)
                if fields is None:
                    fields = self._shared_fields[key] = _built_fields(type(self), partial=bool(self.partial))
        return fields


def _built_fields(cls: type[Any], *, partial: bool) -> BindingDict:
    """The fields of a new, unbound instance of ``cls``, bound to it (their ``root``: for ``partial``)."""
    prototype = cls(partial=partial)
    fields = BindingDict(prototype)
    for name, field in prototype.get_fields().items():
        fields[name] = field
    return fields


def forget_shared_fields() -> None:
    """Build every shared serializer's fields again at its next use (tests that change what they read)."""
    with _lock:
        SharedFields._shared_fields.clear()
