"""Calendars: windows' maths, the API (with its 400s), jobs naming calendars, .ics import, and
what beat does with a fire in a blackout (skip, defer), with simulated time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from calendars import services
from calendars.models import Calendar
from calendars.windows import WindowSpec, blackout_at, blackout_end
from jobs import services as job_services
from jobs.models import Job
from runs.models import Run
from scheduling import fires

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 6, 6, 0, 0, tzinfo=UTC)  # a Saturday
URL = "http://127.0.0.1:9/"

HOLIDAYS_ICS = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//holidays//EN
BEGIN:VEVENT
UID:1@test
DTSTART;VALUE=DATE:20261225
DTEND;VALUE=DATE:20261227
SUMMARY:Christmas
END:VEVENT
BEGIN:VEVENT
UID:2@test
DTSTART;VALUE=DATE:20270101
SUMMARY:New Year
END:VEVENT
BEGIN:VEVENT
UID:3@test
DTSTART:20261003T090000
DTEND:20261003T120000
SUMMARY:Maintenance
END:VEVENT
END:VCALENDAR
"""


def test_a_recurring_window_covers_its_duration_from_each_start():
    saturday = WindowSpec(calendar="maint", name="", zone=BERLIN, cron="0 0 * * 6", duration=timedelta(hours=6))
    inside = datetime(2026, 6, 6, 5, 59, tzinfo=BERLIN)
    found = blackout_at([saturday], inside)
    assert found is not None
    assert (found.start, found.end) == (
        datetime(2026, 6, 6, 0, 0, tzinfo=BERLIN),
        datetime(2026, 6, 6, 6, tzinfo=BERLIN),
    )
    assert blackout_at([saturday], datetime(2026, 6, 6, 6, 0, tzinfo=BERLIN)) is None  # the end is excluded
    assert blackout_at([saturday], datetime(2026, 6, 5, 23, 59, tzinfo=BERLIN)) is None


def test_a_blackouts_end_follows_windows_that_go_on_from_it():
    a = WindowSpec(calendar="c", name="a", zone=BERLIN, start=T0, end=T0 + timedelta(hours=1))
    b = WindowSpec(calendar="c", name="b", zone=BERLIN, start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=2))
    found = blackout_at([a, b], T0 + timedelta(minutes=10))
    assert found is not None
    assert blackout_end([a, b], found) == T0 + timedelta(hours=2)


@pytest.mark.django_db
def test_api_creates_a_calendar_with_windows_read_in_its_zone(api):
    response = api.post(
        "/api/calendars/",
        {
            "name": "berlin-maint",
            "time_zone": "Europe/Berlin",
            "windows": [
                {"start": "2026-12-24T00:00:00", "end": "2026-12-27T00:00:00", "name": "Christmas"},
                {"cron": "0 0 * * 6", "duration_seconds": 21600, "name": "Saturday maintenance"},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [w["kind"] for w in body["windows"]] == ["range", "recurring"] or len(body["windows"]) == 2
    christmas = next(w for w in body["windows"] if w["name"] == "Christmas")
    assert datetime.fromisoformat(christmas["start"]) == datetime(2026, 12, 24, tzinfo=BERLIN)
    assert api.get("/api/calendars/").json()["count"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"name": "x", "time_zone": "Mars/Olympus"}, "time_zone", "Unknown time zone"),
        (
            {"name": "x", "windows": [{"start": "2026-01-02T00:00", "end": "2026-01-01T00:00"}]},
            "windows",
            "after start",
        ),
        ({"name": "x", "windows": [{"cron": "61 * * * *", "duration_seconds": 60}]}, "windows", "cron"),
        ({"name": "x", "windows": [{"cron": "0 0 * * 6"}]}, "windows", "duration_seconds"),
        ({"name": "x", "windows": [{"start": "soon", "end": "2026-01-01T00:00"}]}, "windows", "ISO 8601"),
    ],
)
def test_api_refuses_bad_calendars_with_the_field_and_reason(api, data, field, words):
    response = api.post("/api/calendars/", data, format="json")
    assert response.status_code == 400, response.json()
    assert words in str(response.json()[field])


@pytest.mark.django_db
def test_a_job_names_calendars_by_id_and_a_used_calendar_cannot_be_deleted(api):
    calendar = services.calendar_create(data={"name": "c"})
    bad = api.post("/api/jobs/", {"id": "j", "cron": "0 * * * *", "url": URL, "calendars": [999]}, format="json")
    assert bad.status_code == 400
    assert "999" in bad.json()["calendars"][0]
    made = api.post(
        "/api/jobs/",
        {"id": "j", "cron": "0 * * * *", "url": URL, "calendars": [calendar.pk], "blackout_policy": "defer"},
        format="json",
    )
    assert made.status_code == 201, made.json()
    assert (made.json()["calendars"], made.json()["blackout_policy"]) == ([calendar.pk], "defer")
    refused = api.delete(f"/api/calendars/{calendar.pk}/")
    assert refused.status_code == 400
    assert "j" in refused.json()["calendar"][0]
    api.patch("/api/jobs/j/", {"calendars": []}, format="json")
    assert api.delete(f"/api/calendars/{calendar.pk}/").status_code == 204


@pytest.mark.django_db
def test_ics_import_by_command_and_api(api, tmp_path):
    path = tmp_path / "holidays.ics"
    path.write_bytes(HOLIDAYS_ICS)
    out = StringIO()
    call_command("import_holidays", "holidays", str(path), "--time-zone", "Europe/Berlin", stdout=out)
    assert "3 window(s) added" in out.getvalue()
    calendar = Calendar.objects.get(name="holidays")
    spans = {w.name: (w.start, w.end) for w in calendar.windows.all()}
    assert spans["Christmas"] == (datetime(2026, 12, 25, tzinfo=BERLIN), datetime(2026, 12, 27, tzinfo=BERLIN))
    assert spans["New Year"] == (datetime(2027, 1, 1, tzinfo=BERLIN), datetime(2027, 1, 2, tzinfo=BERLIN))
    assert spans["Maintenance"] == (datetime(2026, 10, 3, 9, tzinfo=BERLIN), datetime(2026, 10, 3, 12, tzinfo=BERLIN))

    upload = SimpleUploadedFile("h.ics", HOLIDAYS_ICS, content_type="text/calendar")
    response = api.post(f"/api/calendars/{calendar.pk}/import-ics/", {"file": upload, "replace": True})
    assert response.status_code == 200, response.json()
    assert (response.json()["imported"], len(response.json()["windows"])) == (3, 3)
    junk = SimpleUploadedFile("h.ics", b"not a calendar", content_type="text/calendar")
    bad = api.post(f"/api/calendars/{calendar.pk}/import-ics/", {"file": junk})
    assert bad.status_code == 400
    assert "file" in bad.json()


def beat_run(make_beat, start: datetime, end: datetime) -> None:
    scheduler = make_beat()
    scheduler.publish = lambda batch: None
    for _ in range(500):
        due = fires.next_due_at()
        if due is None or due >= end:
            break
        with time_machine.travel(max(due, start) + timedelta(milliseconds=3), tick=False):
            scheduler.fire_due_jobs()


@pytest.mark.django_db
@pytest.mark.parametrize("policy", ["skip", "defer"])
def test_beat_holds_back_fires_in_a_blackout(make_beat, policy):
    calendar = services.calendar_create(
        data={"name": "saturday", "time_zone": "UTC", "windows": [{"cron": "0 2 * * 6", "duration_seconds": 10800}]}
    )
    with time_machine.travel(T0, tick=False):
        job_services.job_create(
            data={
                "id": "hourly",
                "cron": "0 * * * *",
                "url": URL,
                "calendars": [calendar.pk],
                "blackout_policy": policy,
            }
        )
    beat_run(make_beat, T0, T0 + timedelta(hours=7))
    runs = {r.scheduled_for.hour: (r.status, r.error) for r in Run.objects.filter(job_id="hourly") if r.scheduled_for}
    assert {h: s for h, (s, _) in runs.items() if s == "queued"}.keys() == {1, 5, 6}
    if policy == "skip":
        assert sorted(h for h, (s, _) in runs.items() if s == "skipped") == [2, 3, 4]
        assert "calendar 'saturday'" in runs[3][1]
    else:
        # the 02:00 fire is deferred to 05:00, where the job runs once; 03:00 and 04:00 never fire
        assert sorted(h for h, (s, _) in runs.items() if s == "skipped") == [2]
        assert "deferred: the job runs once at 2026-06-06T05:00:00+00:00" in runs[2][1]
    assert Job.objects.get(pk="hourly").next_run_at == T0 + timedelta(hours=7)


@pytest.mark.django_db
def test_preview_marks_jitter_dst_and_blackouts(api):
    calendar = services.calendar_create(
        data={
            "name": "maint",
            "time_zone": "UTC",
            "windows": [{"start": "2026-06-06T02:00:00", "end": "2026-06-06T03:30:00"}],
        }
    )
    with time_machine.travel(T0, tick=False):
        job_services.job_create(
            data={"id": "p", "cron": "0 * * * *", "url": URL, "calendars": [calendar.pk], "jitter_seconds": 60}
        )
    offset = Job.objects.get(pk="p").schedule.offset_seconds
    response = api.get("/api/jobs/p/preview/", {"count": 5, "after": T0.isoformat()})
    assert response.status_code == 200, response.json()
    listed = response.json()["fires"]
    assert [datetime.fromisoformat(f["at"]) for f in listed] == [
        T0 + timedelta(hours=h, seconds=offset) for h in range(5)
    ]
    assert [f["skipped"] for f in listed] == [False, False, True, True, False]
    assert "calendar 'maint'" in listed[2]["reasons"][-1]
    assert all(f["moved"] == (offset > 0) for f in listed if not f["skipped"])
    deferred = api.patch("/api/jobs/p/", {"blackout_policy": "defer"}, format="json")
    assert deferred.status_code == 200
    again = api.get("/api/jobs/p/preview/", {"count": 4, "after": T0.isoformat()}).json()["fires"]
    assert [f["at"][11:16] for f in again] == [f"0{h}:{offset // 60:02d}" for h in (0, 1, 2)] + ["03:30"]
    assert "deferred" in again[3]["reasons"][-1]
    assert api.get("/api/jobs/p/preview/", {"count": 0}).status_code == 400
    assert api.get("/api/jobs/nope/preview/").status_code == 404


@pytest.mark.django_db
def test_preview_lists_a_dst_skip(api):
    with time_machine.travel(datetime(2026, 3, 7, 12, tzinfo=UTC), tick=False):
        job_services.job_create(
            data={
                "id": "d",
                "cron": "30 2 * * *",
                "timezone": "America/New_York",
                "url": URL,
                "dst_policy": "skip_once",
            }
        )
    listed = api.get("/api/jobs/d/preview/", {"count": 3, "after": "2026-03-07T12:00:00Z"}).json()["fires"]
    assert [f["skipped"] for f in listed] == [True, False, False]
    assert "DST" in listed[0]["reasons"][0]


@pytest.mark.django_db
def test_cron_preview_takes_after(api):
    response = api.get(
        "/api/cron/preview/", {"expr": "0 0 1 1 *", "timezone": "UTC", "count": 2, "after": "2030-06-01T00:00:00Z"}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["next_fire_times"] == ["2031-01-01T00:00:00+00:00", "2032-01-01T00:00:00+00:00"]
    assert api.get("/api/cron/preview/", {"expr": "* * * * *", "after": "later"}).status_code == 400


@pytest.mark.django_db
def test_the_admin_edits_calendars_imports_holidays_and_shows_a_jobs_next_fires(staff):
    response = staff.post(
        "/admin/calendars/calendar/add/",
        {
            "name": "office", "description": "", "time_zone": "UTC",
            "windows-TOTAL_FORMS": "1", "windows-INITIAL_FORMS": "0",
            "windows-MIN_NUM_FORMS": "0", "windows-MAX_NUM_FORMS": "1000",
            "windows-0-kind": "recurring", "windows-0-name": "weekend", "windows-0-cron": "0 0 * * 6",
            "windows-0-duration_seconds": "172800",
        },
    )  # fmt: skip
    assert response.status_code == 302, [f.errors for f in response.context["inline_admin_formsets"][0].formset]
    calendar = Calendar.objects.get(name="office")
    assert [w.cron for w in calendar.windows.all()] == ["0 0 * * 6"]
    bad = staff.post(
        "/admin/calendars/calendar/add/",
        {
            "name": "bad", "time_zone": "UTC",
            "windows-TOTAL_FORMS": "1", "windows-INITIAL_FORMS": "0",
            "windows-MIN_NUM_FORMS": "0", "windows-MAX_NUM_FORMS": "1000",
            "windows-0-kind": "recurring", "windows-0-cron": "0 0 * * 6",
        },
    )  # fmt: skip
    assert bad.status_code == 200
    assert "duration_seconds" in bad.content.decode()

    upload = SimpleUploadedFile("h.ics", HOLIDAYS_ICS, content_type="text/calendar")
    imported = staff.post(f"/admin/calendars/calendar/{calendar.pk}/import-ics/", {"file": upload}, follow=True)
    assert "3 windows imported" in imported.content.decode()
    assert calendar.windows.count() == 4

    job_services.job_create(data={"id": "j", "cron": "0 12 * * *", "url": URL, "calendars": [calendar.pk]})
    page = staff.get("/admin/jobs/job/j/change/").content.decode()
    assert "ct-next-fires" in page
    assert "used by jobs" in staff.get(f"/admin/calendars/calendar/{calendar.pk}/change/").content.decode().lower()


@pytest.mark.django_db
def test_the_job_form_picks_calendars_by_name(staff):
    calendar = services.calendar_create(data={"name": "holidays"})
    job_services.job_create(data={"id": "j", "cron": "0 12 * * *", "url": URL})
    page = staff.get("/admin/jobs/job/j/change/")
    assert "holidays (UTC)" in page.content.decode()
    form = {k: v for k, v in page.context["adminform"].form.initial.items() if v is not None}
    form.update(headers="{}", handler_kwargs="{}", calendars=[str(calendar.pk)], blackout_policy="defer")
    response = staff.post("/admin/jobs/job/j/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert (Job.objects.get(pk="j").calendars, Job.objects.get(pk="j").blackout_policy) == ([calendar.pk], "defer")


@pytest.mark.django_db
def test_the_admin_refuses_an_unknown_time_zone_as_the_api_does(staff):
    response = staff.post(
        "/admin/calendars/calendar/add/",
        {
            "name": "mars", "time_zone": "Mars/Olympus",
            "windows-TOTAL_FORMS": "0", "windows-INITIAL_FORMS": "0",
            "windows-MIN_NUM_FORMS": "0", "windows-MAX_NUM_FORMS": "1000",
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert "Unknown time zone" in response.content.decode()
    assert not Calendar.objects.filter(name="mars").exists()
