"""GET /api/runs/{id}/log/: a run's log and output after the offsets a reader has, to follow it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services
from runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    job = services.job_create(data={"id": "j", "interval_seconds": 60, "url": "http://127.0.0.1:9/"})
    return Run.objects.create(job=job, trigger="manual", status="running", log_output="one\ntwo", output="héllo\n")


def url(run: Run) -> str:
    return f"/api/runs/{run.pk}/log/"


def test_without_offsets_it_gives_both_texts_whole(api, run):
    response = api.get(url(run))
    assert response.status_code == 200
    assert response.json() == {
        "id": run.pk,
        "status": "running",
        "finished": False,
        "log_output": "one\ntwo",
        "log_offset": 7,
        "log_reset": False,
        "output": "héllo\n",
        "output_offset": 6,  # characters, not bytes
        "output_reset": False,
    }


def test_it_gives_what_follows_each_offset_and_where_to_ask_from_next(api, run):
    body = api.get(url(run), {"log_after": 4, "output_after": 2}).json()
    assert (body["log_output"], body["log_offset"], body["output"], body["output_offset"]) == ("two", 7, "llo\n", 6)
    Run.objects.filter(pk=run.pk).update(log_output="one\ntwo\nthree")
    body = api.get(url(run), {"log_after": body["log_offset"], "output_after": body["output_offset"]}).json()
    assert (body["log_output"], body["log_offset"], body["output"], body["output_offset"]) == ("\nthree", 13, "", 6)
    assert (body["log_reset"], body["output_reset"]) == (False, False)


def test_after_sets_both_offsets_and_the_others_override_it(api, run):
    body = api.get(url(run), {"after": 4}).json()
    assert (body["log_output"], body["output"]) == ("two", "o\n")
    body = api.get(url(run), {"after": 4, "output_after": 0}).json()
    assert (body["log_output"], body["output"]) == ("two", "héllo\n")


def test_an_offset_past_the_end_gives_the_whole_text_again(api, run):
    # The outcome replaced the text as the run ended: shorter than what the reader had.
    Run.objects.filter(pk=run.pk).update(status="failed", log_output="new")
    body = api.get(url(run), {"log_after": 7, "output_after": 6}).json()
    assert (body["log_output"], body["log_offset"], body["log_reset"]) == ("new", 3, True)
    assert (body["output"], body["output_reset"]) == ("", False)
    assert (body["status"], body["finished"]) == ("failed", True)


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_going_run_is_not_finished(api, run, status):
    Run.objects.filter(pk=run.pk).update(status=status)
    assert api.get(url(run)).json()["finished"] is False


@pytest.mark.parametrize("status", ["success", "failed", "timeout", "skipped", "cancelled", "lost"])
def test_an_ended_run_is_finished(api, run, status):
    Run.objects.filter(pk=run.pk).update(status=status)
    assert api.get(url(run)).json()["finished"] is True


@pytest.mark.parametrize("field", ["after", "log_after", "output_after"])
@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "1e3", "0x10"])
def test_an_offset_that_is_not_a_non_negative_integer_is_400_naming_it(api, run, field, value):
    response = api.get(url(run), {field: value})
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_an_empty_offset_is_the_default(api, run):
    assert api.get(url(run), {"log_after": ""}).json()["log_output"] == "one\ntwo"


@pytest.mark.parametrize("run_id", ["999999", "abc", "99999999999999999999999", "1.0", "-1"])
def test_no_such_run_is_404(api, run, run_id):
    assert api.get(f"/api/runs/{run_id}/log/").status_code == 404


def test_one_query_reads_the_run(api, run):
    with CaptureQueriesContext(connection) as queries:
        api.get(url(run))
    reads = [q["sql"] for q in queries.captured_queries if '"runs_run"' in q["sql"]]
    assert len(reads) == 1
    assert '"runs_run"."error"' not in reads[0]  # only the columns it answers with


def test_it_needs_the_view_permission_of_runs(run):
    user = get_user_model().objects.create_user("reader", password="x")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get(url(run)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_run"))
    assert client.get(url(run)).status_code == 200
    assert APIClient().get(url(run)).status_code == 403  # anonymous


def test_a_staff_session_reads_it_as_the_admin_page_does(admin_user, run):
    client = Client()
    client.force_login(admin_user)
    response = client.get(url(run), {"log_after": 4})
    assert response.status_code == 200
    assert response.json()["log_output"] == "two"
