"""Job tags (issue #22): one set of rules for the API, the admin and imports; the API's ``?tag=``
(every tag given), the admin's filter by tag, export and import, and versions."""

from __future__ import annotations

import json
from io import StringIO

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs.models import VERSIONED_FIELDS, Job, JobVersion
from jobs.tags import has_all_tags, has_any_tag, tags_in_use
from runs.retention import run_cleanup
from tests.admin.test_admin_basics import form

pytestmark = pytest.mark.django_db
URL = "http://127.0.0.1:9/"


def make(job_id: str, tags: list[str] | None = None) -> Job:
    data = {"id": job_id, "interval_seconds": 60, "url": URL}
    if tags is not None:
        data["tags"] = tags
    return services.job_create(data=data)


def test_it_stores_tags_lowercased_and_deduplicated_in_order():
    job = make("a", ["Prod", "team:billing", "prod", "db.main", "nightly_2"])
    job.refresh_from_db()
    assert job.tags == ["prod", "team:billing", "db.main", "nightly_2"]
    assert make("b").tags == []


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("prod", "Give a list of tags"),
        ({"a": 1}, "Give a list of tags"),
        ([""], "Not a tag: ''"),
        (["has space"], "Not a tag: 'has space'"),
        (["x" * 51], "Not a tag"),
        (["ünïcode"], "Not a tag"),
        (["a,b"], "Not a tag: 'a,b'"),
        ([f"t{i}" for i in range(21)], "At most 20 tags; got 21."),
        ([1], "Not a tag: 1"),
        (["nul\x00"], "Not a tag"),
    ],
)
def test_it_refuses_bad_tags_on_the_tags_field(tags, message):
    with pytest.raises(ValidationError) as caught:
        services.job_create(data={"id": "bad", "interval_seconds": 60, "url": URL, "tags": tags})
    assert message in " ".join(caught.value.message_dict["tags"])
    assert not Job.objects.exists()


def test_fifty_characters_and_twenty_tags_are_allowed_and_duplicates_do_not_count():
    job = make("a", ["x" * 50, *[f"t{i}" for i in range(19)], "T0", "t1"])
    assert len(job.tags) == 20


def test_the_api_takes_tags_and_answers_400_naming_the_field(api):
    response = api.post("/api/jobs/", {"id": "a", "interval_seconds": 60, "url": URL, "tags": ["Prod"]}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tags"] == ["prod"]
    response = api.patch("/api/jobs/a/", {"tags": ["ok", "not ok"]}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["tags"]
    assert "Not a tag: 'not ok'" in response.json()["tags"][0]
    response = api.patch("/api/jobs/a/", {"tags": "prod"}, format="json")
    assert (response.status_code, list(response.json())) == (400, ["tags"])
    response = api.patch("/api/jobs/a/", {"tags": [{"x": 1}]}, format="json")
    assert (response.status_code, list(response.json())) == (400, ["tags"])
    assert api.patch("/api/jobs/a/", {"tags": []}, format="json").json()["tags"] == []


def test_the_api_filters_by_tag_and_repeated_tags_mean_every_one(api):
    make("both", ["prod", "db"])
    make("prod-only", ["prod"])
    make("db-only", ["db"])
    make("none")
    make("prefix", ["production", "dbx"])  # not a match for prod or db: whole tags only

    def ids(query: str) -> list[str]:
        response = api.get(f"/api/jobs/?{query}")
        assert response.status_code == 200, response.json()
        return [job["id"] for job in response.json()["results"]]

    assert ids("tag=prod") == ["both", "prod-only"]
    assert ids("tag=PROD") == ["both", "prod-only"]
    assert ids("tag=prod&tag=db") == ["both"]
    assert ids("tag=db&status=active") == ["both", "db-only"]
    assert ids("tag=missing") == []
    assert len(ids("")) == 5
    assert len(ids("tag=&status=active")) == 5  # an empty value is no filter, as for the other fields
    response = api.get("/api/jobs/?tag=a%25b")
    assert (response.status_code, list(response.json())) == (400, ["tag"])
    response = api.get("/api/jobs/?tag=a,b")
    assert (response.status_code, list(response.json())) == (400, ["tag"])


def test_tag_queries_match_whole_tags_with_like_wildcards_escaped():
    make("a", ["a_b", "x.y"])
    make("b", ["axb", "xzy"])
    assert list(Job.objects.filter(has_all_tags(["a_b"])).values_list("pk", flat=True)) == ["a"]
    assert list(Job.objects.filter(has_any_tag(["xzy", "nope"])).values_list("pk", flat=True)) == ["b"]
    assert not Job.objects.filter(has_any_tag([])).exists()
    assert tags_in_use() == ["a_b", "axb", "x.y", "xzy"]  # noted as the jobs were saved


def test_the_admin_form_takes_tags_as_text_and_shows_the_same_errors(admin_client):
    response = admin_client.post("/admin/jobs/job/add/", form(tags="Prod, team:billing  db"))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Job.objects.get(pk="from-admin").tags == ["prod", "team:billing", "db"]
    page = admin_client.get("/admin/jobs/job/from-admin/change/").content.decode()
    assert 'value="prod, team:billing, db"' in page
    response = admin_client.post("/admin/jobs/job/add/", form(id="bad", tags="ok, no/slash"))
    assert response.status_code == 200
    assert "Not a tag: &#x27;no/slash&#x27;" in response.content.decode()
    assert not Job.objects.filter(pk="bad").exists()


def test_the_admin_job_list_filters_by_tag(admin_client):
    make("tagged", ["prod"])
    make("other", ["dev"])
    page = admin_client.get("/admin/jobs/job/").content.decode()
    assert "?tag=prod" in page
    assert "?tag=dev" in page
    page = admin_client.get("/admin/jobs/job/?tag=prod").content.decode()
    assert "/admin/jobs/job/tagged/change/" in page
    assert "/admin/jobs/job/other/change/" not in page


def test_tags_are_exported_and_imported_back(tmp_path):
    make("a", ["prod", "db"])
    make("b")
    for export_format in ("json", "yaml"):
        path = tmp_path / f"jobs.{export_format}"
        call_command("export_jobs", "--format", export_format, "-o", str(path), stderr=StringIO())
        loader = json.loads if export_format == "json" else yaml.safe_load
        assert {job["id"]: job["tags"] for job in loader(path.read_text())} == {"a": ["prod", "db"], "b": []}
        Job.objects.all().delete()
        out = StringIO()
        call_command("import_jobs", str(path), stdout=out, stderr=StringIO())
        assert out.getvalue().strip() == "created 2, updated 0, unchanged 0, invalid 0"
        assert Job.objects.get(pk="a").tags == ["prod", "db"]


def test_an_import_with_bad_tags_reports_the_entry_and_the_field(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{"id": "x", "interval_seconds": 60, "url": URL, "tags": ["bad tag"]}]))
    err = StringIO()
    with pytest.raises(SystemExit):
        call_command("import_jobs", str(path), stdout=StringIO(), stderr=err)
    assert "invalid x: tags: Not a tag: 'bad tag'" in err.getvalue()


def test_tags_are_versioned_and_a_revert_brings_them_back():
    assert "tags" in VERSIONED_FIELDS
    job = make("a", ["prod"])
    job = services.job_update(job=job, data={"tags": ["prod", "db"]})
    latest = JobVersion.objects.filter(job_id="a").order_by("-number").first()
    assert latest is not None
    assert (latest.changed_fields, latest.definition["tags"]) == (["tags"], ["prod", "db"])
    job = services.job_revert(job=job, number=1)
    assert job.tags == ["prod"]


def test_a_version_from_before_tags_counts_as_no_tags():
    """Versions recorded before tags existed lack the key: the next change does not list tags as
    changed, and reverting to such a version clears the tags."""
    job = make("a")
    first = JobVersion.objects.get(job_id="a", number=1)
    del first.definition["tags"]
    first.save()
    job = services.job_update(job=job, data={"name": "renamed"})
    assert JobVersion.objects.get(job_id="a", number=2).changed_fields == ["name"]
    job = services.job_update(job=job, data={"tags": ["prod"]})
    job = services.job_revert(job=job, number=1)
    assert job.tags == []


def test_an_import_can_tag_every_job_it_brings_a_crontabs_lines_included(tmp_path, settings):
    settings.CRONTASK_ALLOW_SHELL = True
    crontab = tmp_path / "crontab"
    crontab.write_text("*/5 * * * * /bin/true\n61 * * * * /bin/false\n")
    err = StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "import_jobs", str(crontab), "--tag", "From-Cron", "--tag", "legacy", stdout=StringIO(), stderr=err
        )
    assert "invalid line 2: cron:" in err.getvalue()  # still named by its line
    assert Job.objects.get().tags == ["from-cron", "legacy"]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([{"id": "x", "interval_seconds": 60, "url": URL, "tags": ["own"]}]))
    call_command("import_jobs", str(path), "--tag", "legacy", stdout=StringIO())
    assert Job.objects.get(pk="x").tags == ["own", "legacy"]
    with pytest.raises(CommandError, match="--tag: Not a tag: 'no way'"):
        call_command("import_jobs", str(path), "--tag", "no way")


def test_the_tags_offered_are_kept_as_jobs_are_saved_and_rebuilt_by_sync_and_the_cleanup():
    job = make("a", ["prod", "db"])
    make("b", ["prod"])
    assert tags_in_use() == ["db", "prod"]
    services.job_update(job=job, data={"tags": ["prod", "new"]})
    assert tags_in_use() == ["db", "new", "prod"]  # "db" is had by no job now, until the next rebuild
    out = StringIO()
    call_command("sync_schedules", stdout=out)
    assert out.getvalue().rstrip().endswith("tags in use: 0 added, 1 dropped.")
    assert tags_in_use() == ["new", "prod"]
    Job.objects.filter(pk="b").update(tags=["added-behind-the-services"])
    services.job_delete(job=Job.objects.get(pk="a"))
    assert run_cleanup()["tags_dropped"] == 2
    assert tags_in_use() == ["added-behind-the-services"]


def test_the_admin_job_list_reads_no_distinct_tags_of_the_table(admin_client):
    make("tagged", ["prod"])
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client.get("/admin/jobs/job/").content.decode()
    assert "?tag=prod" in page
    assert not [q["sql"] for q in ctx.captured_queries if "json_each" in q["sql"] or "jsonb_array" in q["sql"]]
