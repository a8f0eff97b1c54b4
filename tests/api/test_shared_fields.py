"""The job serializers build their fields once per process (core.serializers.SharedFields, issue #23):
what they answer and refuse stays what a serializer built for each request gives."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation
from rest_framework import serializers

from core.serializers import SharedFields, forget_shared_fields
from jobs.models import Job
from jobs.secrets import mask_job_data
from jobs.serializers import JobSerializer, JobWriteSerializer

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


class FreshJobSerializer(serializers.ModelSerializer):
    """JobSerializer as DRF builds it: its fields made again for each instance."""

    class Meta:
        model = Job
        fields = JobSerializer.Meta.fields
        read_only_fields = fields

    def to_representation(self, instance: Job) -> dict[str, Any]:
        return mask_job_data(super().to_representation(instance))


def test_instances_share_the_fields_built_once():
    assert JobSerializer().fields["id"] is JobSerializer().fields["id"]
    assert JobWriteSerializer(data={}).fields["cron"] is JobWriteSerializer(data={}).fields["cron"]
    # A partial serializer's fields are their own: a field reads ``partial`` from its root.
    partial = JobWriteSerializer(data={}, partial=True).fields["cron"]
    assert partial is not JobWriteSerializer(data={}).fields["cron"]
    assert partial.root.partial is True


def test_the_created_job_is_shown_as_a_serializer_built_for_it_shows_it(api):
    headers = {"Authorization": "Bearer xyz", "X-Api-Key": "k"}
    first = api.post("/api/jobs/", {"id": "one", "url": URL, "cron": "*/5 * * * *"}, format="json")
    second = api.post(
        "/api/jobs/", {"id": "two", "url": URL, "interval_seconds": 60, "headers": headers}, format="json"
    )
    assert (first.status_code, second.status_code) == (201, 201)
    for response in (first, second):
        job = Job.objects.get(pk=response.json()["id"])
        assert response.json() == FreshJobSerializer(job).data
    assert second.json()["headers"]["Authorization"] != "Bearer xyz"  # masked, as before


def test_an_error_is_in_each_requests_own_language_whichever_came_first(api):
    forget_shared_fields()
    too_long = {"id": "x" * 101, "url": URL}
    with translation.override(translation.get_language()):  # a request's language stays in the thread
        english = api.post("/api/jobs/", too_long, format="json", HTTP_ACCEPT_LANGUAGE="en")
        chinese = api.post("/api/jobs/", too_long, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans")
        again = api.post("/api/jobs/", too_long, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert english.status_code == chinese.status_code == 400
    assert english.json()["id"] == again.json()["id"] == ["Ensure this field has no more than 100 characters."]
    assert chinese.json()["id"] != english.json()["id"]
    assert "100" in chinese.json()["id"][0]


def test_a_partial_update_after_a_create_and_a_create_after_it(api):
    assert api.post("/api/jobs/", {"id": "a", "url": URL, "cron": "*/5 * * * *"}, format="json").status_code == 201
    patched = api.patch("/api/jobs/a/", {"name": "renamed"}, format="json")
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["name"], patched.json()["cron"]) == ("renamed", "*/5 * * * *")
    refused = api.post("/api/jobs/", {"id": "b", "url": URL, "colour": "red"}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"colour": ["Unknown field."]}


def test_forget_shared_fields_builds_them_again():
    before = JobSerializer().fields["id"]
    forget_shared_fields()
    assert JobSerializer().fields["id"] is not before
    assert isinstance(JobSerializer(), SharedFields)
