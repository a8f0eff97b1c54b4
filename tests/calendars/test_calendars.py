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
def test_preview_gives_its_times_in_the_jobs_zone_as_the_cron_preview_does(api):
    # The admin labels each fire with the job's zone: a fire in UTC labelled Asia/Shanghai read as
    # 01:20 where the job fires at 09:20.
    after = "2026-06-06T00:00:00Z"
    with time_machine.travel(T0, tick=False):
        job_services.job_create(data={"id": "sh", "cron": "20 9 * * *", "timezone": "Asia/Shanghai", "url": URL})
    listed = api.get("/api/jobs/sh/preview/", {"count": 2, "after": after}).json()["fires"]
    drafted = api.get(
        "/api/cron/preview/job/", {"expr": "20 9 * * *", "timezone": "Asia/Shanghai", "count": 2, "after": after}
    ).json()["fires"]
    described = api.get(
        "/api/cron/preview/", {"expr": "20 9 * * *", "timezone": "Asia/Shanghai", "count": 2, "after": after}
    ).json()["next_fire_times"]
    assert described == ["2026-06-06T09:20:00+08:00", "2026-06-07T09:20:00+08:00"]
    assert [f["at"] for f in listed] == described
    assert [f["at"] for f in drafted] == described


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


@pytest.mark.django_db
def test_a_job_being_written_is_previewed_as_beat_will_fire_it(api):
    """The admin form's live preview (/api/cron/preview/job/): the walk of /api/jobs/{id}/preview/
    for a job not saved yet, from the form's values."""
    calendar = services.calendar_create(
        data={
            "name": "maint",
            "time_zone": "UTC",
            "windows": [{"start": "2026-06-06T02:00:00", "end": "2026-06-06T03:30:00"}],
        }
    )
    query = {"expr": "0 * * * *", "id": "p", "jitter_seconds": 60, "calendars": str(calendar.pk), "count": 5}
    response = api.get("/api/cron/preview/job/", {**query, "after": T0.isoformat()})
    assert response.status_code == 200, response.json()
    listed = response.json()["fires"]
    offset = Job(id="p", cron="0 * * * *", trigger="cron", jitter_seconds=60).schedule.offset_seconds
    assert [datetime.fromisoformat(f["at"]) for f in listed] == [
        T0 + timedelta(hours=h, seconds=offset) for h in range(5)
    ]
    assert [f["skipped"] for f in listed] == [False, False, True, True, False]
    assert "calendar 'maint'" in listed[2]["reasons"][-1]
    # the same as the saved job's preview
    with time_machine.travel(T0, tick=False):
        job_services.job_create(
            data={"id": "p", "cron": "0 * * * *", "url": URL, "calendars": [calendar.pk], "jitter_seconds": 60}
        )
    assert api.get("/api/jobs/p/preview/", {"count": 5, "after": T0.isoformat()}).json()["fires"] == listed
    interval = api.get("/api/cron/preview/job/", {"interval_seconds": 600, "count": 2, "after": T0.isoformat()}).json()
    assert [f["at"] for f in interval["fires"]] == [(T0 + timedelta(minutes=m)).isoformat() for m in (10, 20)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"expr": "61 * * * *"}, "expr"),
        ({}, "expr"),
        ({"expr": "* * * * *", "interval_seconds": 5}, "expr"),
        ({"expr": "* * * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"expr": "* * * * *", "jitter_seconds": 99999}, "jitter_seconds"),
        ({"expr": "* * * * *", "dst_policy": "maybe"}, "dst_policy"),
        ({"expr": "* * * * *", "calendars": "1,x"}, "calendars"),
        ({"expr": "* * * * *", "calendars": "424242"}, "calendars"),
    ],
)
def test_a_bad_draft_is_a_400_naming_the_field(api, query, field):
    response = api.get("/api/cron/preview/job/", query)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_the_draft_preview_needs_the_job_view_permission(client):
    assert client.get("/api/cron/preview/job/", {"expr": "* * * * *"}).status_code in (401, 403)


@pytest.mark.django_db
def test_the_admin_reads_and_shows_a_windows_times_in_the_calendars_zone(staff):
    """As the API reads them: the wall time entered is the calendar's, whatever zone the reader's
    admin shows times in."""
    staff.post("/admin/preferences/", {"timezone": "America/New_York"})
    response = staff.post(
        "/admin/calendars/calendar/add/",
        {
            "name": "shanghai", "description": "", "time_zone": "Asia/Shanghai",
            "windows-TOTAL_FORMS": "1", "windows-INITIAL_FORMS": "0",
            "windows-MIN_NUM_FORMS": "0", "windows-MAX_NUM_FORMS": "1000",
            "windows-0-kind": "range", "windows-0-name": "release",
            "windows-0-start_0": "2026-12-10", "windows-0-start_1": "09:00:00",
            "windows-0-end_0": "2026-12-10", "windows-0-end_1": "11:30:00",
        },
    )  # fmt: skip
    assert response.status_code == 302, [f.errors for f in response.context["inline_admin_formsets"][0].formset]
    window = Calendar.objects.get(name="shanghai").windows.get()
    assert (window.start, window.end) == (
        datetime(2026, 12, 10, 1, 0, tzinfo=UTC),
        datetime(2026, 12, 10, 3, 30, tzinfo=UTC),
    )
    page = staff.get(f"/admin/calendars/calendar/{window.calendar_id}/change/").content.decode()
    assert 'value="09:00:00"' in page
    assert 'value="11:30:00"' in page
    assert "In the calendar&#x27;s time zone: Asia/Shanghai" in page


@pytest.mark.django_db
def test_the_preview_of_an_interval_job_keeps_its_phase_from_next_run_at(api):
    # Made at 00:00 every hour: beat fires it at 01:00, 02:00…, not at 01:30, 02:30 (an hour from "now").
    with time_machine.travel(T0, tick=False):
        job_services.job_create(data={"id": "iv", "interval_seconds": 3600, "url": URL})
    assert Job.objects.get(pk="iv").next_run_at == T0 + timedelta(hours=1)
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        listed = api.get("/api/jobs/iv/preview/", {"count": 2}).json()["fires"]
    assert [f["at"] for f in listed] == [(T0 + timedelta(hours=h)).isoformat() for h in (1, 2)]
    # After a later time: the fires from next_run_at on, in the same phase.
    later = api.get("/api/jobs/iv/preview/", {"count": 2, "after": (T0 + timedelta(hours=5, minutes=30)).isoformat()})
    assert [f["at"] for f in later.json()["fires"]] == [(T0 + timedelta(hours=h)).isoformat() for h in (6, 7)]
    # A draft (not saved) is counted from "after", as a job created then.
    draft = api.get(
        "/api/cron/preview/job/",
        {"interval_seconds": 3600, "count": 2, "after": (T0 + timedelta(minutes=30)).isoformat()},
    )
    assert [f["at"] for f in draft.json()["fires"]] == [
        (T0 + timedelta(hours=h, minutes=30)).isoformat() for h in (1, 2)
    ]


def ics_of(*events: str) -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\n{event}\r\nEND:VEVENT\r\n" for event in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n".encode()


@pytest.fixture
def occurrences_walked(monkeypatch) -> list[int]:
    """How many occurrences dateutil's rules produced (a count, not a time: the machines are shared)."""
    from dateutil.rrule import rrule  # type: ignore[import-untyped]

    walked = [0]
    real = rrule._iter

    def counting(self):
        for occurrence in real(self):
            walked[0] += 1
            yield occurrence

    monkeypatch.setattr(rrule, "_iter", counting)
    return walked


@pytest.mark.django_db
def test_ics_repeating_events_are_walked_not_materialised(occurrences_walked):
    from calendars.ics import MAX_OCCURRENCES, import_ics

    calendar = services.calendar_create(data={"name": "c", "time_zone": "UTC"})
    # Every minute for three years is 1.5 million occurrences; every second, 94 million.
    often = ics_of(
        "SUMMARY:minutely\r\nDTSTART:20260605T000000Z\r\nDURATION:PT30S\r\nRRULE:FREQ=MINUTELY",
        "SUMMARY:secondly\r\nDTSTART:20261101T000000Z\r\nDURATION:PT1S\r\nRRULE:FREQ=SECONDLY;INTERVAL=2",
        # Filters no day passes: dateutil would walk every second to year 9999.
        "SUMMARY:never\r\nDTSTART:20260101T000000Z\r\nDURATION:PT1S\r\nRRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",
        # Started long ago: too many occurrences to walk to now.
        "SUMMARY:old\r\nDTSTART:20000101T000000Z\r\nDURATION:PT1S\r\nRRULE:FREQ=SECONDLY",
    )
    with time_machine.travel(T0, tick=False):
        result = import_ics(calendar=calendar, content=often)
    # Each event walked to its cap (or, started long ago, to the steps allowed), not expanded over
    # the three years (the minutely one alone was 1.5 million occurrences).
    assert occurrences_walked[0] < 30_000
    assert result.added == 2 * MAX_OCCURRENCES
    assert calendar.windows.filter(name="minutely").count() == MAX_OCCURRENCES
    assert calendar.windows.filter(name="never").count() == 0
    assert [s.split(":")[0] for s in result.skipped] == ["old"]
    assert "repeats too often" in result.skipped[0]


@pytest.mark.django_db
def test_ics_import_stops_expanding_past_what_a_calendar_holds(api, occurrences_walked):
    from calendars.services import MAX_WINDOWS

    calendar = services.calendar_create(data={"name": "c", "time_zone": "UTC"})
    many = ics_of(
        *(f"SUMMARY:e{n}\r\nDTSTART:20260606T00{n:02d}00Z\r\nDURATION:PT1S\r\nRRULE:FREQ=MINUTELY" for n in range(6))
    )
    with time_machine.travel(T0, tick=False):
        upload = SimpleUploadedFile("h.ics", many, content_type="text/calendar")
        response = api.post(f"/api/calendars/{calendar.pk}/import-ics/", {"file": upload})
    assert occurrences_walked[0] <= 6 * 500  # each event walked to its cap only, not expanded over 3 years
    assert response.status_code == 400
    assert response.json() == {"windows": [f"At most {MAX_WINDOWS} windows a calendar."]}
    assert calendar.windows.count() == 0


@pytest.mark.django_db
def test_ics_events_with_dates_out_of_range_are_skipped_named_not_a_500(api):
    calendar = services.calendar_create(data={"name": "c", "time_zone": "UTC"})
    content = ics_of(
        "SUMMARY:End of time\r\nDTSTART;VALUE=DATE:99991231",
        "SUMMARY:Ancient\r\nDTSTART;VALUE=DATE:00010101\r\nRRULE:FREQ=YEARLY",
        "SUMMARY:Christmas\r\nDTSTART;VALUE=DATE:20261225",
    )
    upload = SimpleUploadedFile("h.ics", content, content_type="text/calendar")
    with time_machine.travel(T0, tick=False):
        response = api.post(f"/api/calendars/{calendar.pk}/import-ics/", {"file": upload})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["imported"] == 1
    assert body["skipped_events"] == [
        "End of time: its dates are out of range",
        "Ancient: a repeating event must start in 1900 or later",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("window", "reason"),
    [
        # Past what the database holds once in UTC (a psycopg DataError: a 500).
        (
            {"start": "9999-12-31T23:00:00-05:00", "end": "9999-12-31T23:30:00-05:00"},
            "windows[0]: start: a date-time in the years 1970 to 2200 (UTC), not 9999-12-31T23:00:00-05:00.",
        ),
        (
            {"start": "2026-01-01T00:00:00", "end": "2201-01-01T00:00:00"},
            "windows[0]: end: a date-time in the years 1970 to 2200 (UTC), not 2201-01-01T00:00:00.",
        ),
        (
            {"start": "0001-01-01T00:00:00+05:00", "end": "2026-01-01T00:00:00"},
            "windows[0]: start: a date-time in the years 1970 to 2200 (UTC), not 0001-01-01T00:00:00+05:00.",
        ),
        # Messages are sentences, not a printed Python list.
        (
            {"kind": "recurring", "cron": "", "duration_seconds": 5},
            "windows[0]: cron: required for a recurring window.",
        ),
        ({"cron": "61 * * * *", "duration_seconds": 5}, "windows[0]: cron: "),
    ],
)
def test_a_bad_window_is_a_400_naming_it_in_a_sentence(api, window, reason):
    response = api.post("/api/calendars/", {"name": "x", "time_zone": "UTC", "windows": [window]}, format="json")
    assert response.status_code == 400, response.content
    (message,) = response.json()["windows"]
    assert message.startswith(reason) if reason.endswith(" ") else message == reason
    assert "['" not in message
    assert not Calendar.objects.filter(name="x").exists()


@pytest.mark.django_db
def test_ics_events_outside_the_window_years_are_skipped_named(api):
    calendar = services.calendar_create(data={"name": "c", "time_zone": "UTC"})
    content = ics_of("SUMMARY:Far\r\nDTSTART;VALUE=DATE:30000101", "SUMMARY:Christmas\r\nDTSTART;VALUE=DATE:20261225")
    upload = SimpleUploadedFile("h.ics", content, content_type="text/calendar")
    response = api.post(f"/api/calendars/{calendar.pk}/import-ics/", {"file": upload})
    assert response.status_code == 200, response.content
    assert (response.json()["imported"], response.json()["skipped_events"]) == (1, ["Far: its dates are out of range"])


@pytest.mark.django_db(transaction=True)
def test_a_failed_import_holidays_leaves_no_calendar_behind(tmp_path):
    from django.core.management.base import CommandError

    from calendars.services import MAX_WINDOWS

    junk = tmp_path / "junk.ics"
    junk.write_bytes(b"not a calendar")
    with pytest.raises(CommandError, match="Not an iCalendar file"):
        call_command("import_holidays", "new-one", str(junk), stdout=StringIO())
    assert not Calendar.objects.filter(name="new-one").exists()
    # Refused by the service (too many windows) after the calendar was made: undone too.
    many = tmp_path / "many.ics"
    events = (
        f"SUMMARY:e{n}\r\nDTSTART:2026060{n}T000000Z\r\nDURATION:PT1S\r\nRRULE:FREQ=MINUTELY" for n in range(1, 6)
    )
    many.write_bytes(ics_of(*events))
    with time_machine.travel(T0, tick=False), pytest.raises(CommandError, match=f"At most {MAX_WINDOWS} windows"):
        call_command("import_holidays", "new-two", str(many), stdout=StringIO())
    assert not Calendar.objects.filter(name="new-two").exists()
    # An existing calendar keeps its windows when an import into it fails.
    kept = services.calendar_create(
        data={"name": "kept", "windows": [{"start": "2026-12-24T00:00:00", "end": "2026-12-25T00:00:00"}]}
    )
    with time_machine.travel(T0, tick=False), pytest.raises(CommandError):
        call_command("import_holidays", "kept", str(many), "--replace", stdout=StringIO())
    assert kept.windows.count() == 1
