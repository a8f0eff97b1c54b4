"""APScheduler-style field input is normalised to the canonical fields and stored once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from jobs import services
from jobs.models import MAX_INTERVAL_SECONDS, Job
from jobs.trigger_args import normalise_trigger_args

HTTP = {"url": "http://127.0.0.1:9/"}


@pytest.mark.parametrize(
    ("args", "cron"),
    [
        (
            {"second": "0", "minute": "*/3", "hour": "*", "day": "*", "month": "*", "day_of_week": "mon-fri"},
            "0 */3 * * * mon-fri",
        ),
        ({"minute": "*/5"}, "*/5 * * * *"),
        ({"hour": "9"}, "0 9 * * *"),  # finer fields default to their minimum, as in APScheduler
        ({"hour": "9", "second": "30"}, "30 0 9 * * *"),
        ({"day_of_week": "0", "hour": "8"}, "0 8 * * 1"),  # APScheduler's Monday is 0
        ({"day_of_week": "0-4", "hour": "8"}, "0 8 * * 1,2,3,4,5"),
        ({"day_of_week": "5,6", "hour": "8"}, "0 8 * * 6,0"),
        ({"day": "last", "hour": "23", "minute": "59"}, "59 23 L * *"),
    ],
)
def test_cron_trigger_args_become_a_cron_expression(args, cron):
    assert normalise_trigger_args({"trigger": "cron", "trigger_args": args}) == {"trigger": "cron", "cron": cron}


def test_interval_trigger_args_are_summed_into_seconds():
    data = normalise_trigger_args({"trigger": "interval", "trigger_args": {"hours": 1, "minutes": 30}})
    assert data == {"trigger": "interval", "interval_seconds": 5400}
    data = normalise_trigger_args({"trigger": "interval", "trigger_args": {"weeks": 1, "days": 1, "seconds": 5}})
    assert data["interval_seconds"] == 7 * 86400 + 86400 + 5


@pytest.mark.parametrize(
    ("trigger", "args"),
    [
        ("interval", {"hours": -1}),
        ("interval", {"seconds": 0}),
        ("interval", {"fortnights": 1}),
        ("interval", {"minutes": "ten"}),
        ("cron", {"year": "2027"}),
        ("cron", {}),
        ("date", {"run_date": "someday"}),
        ("manual", {"minutes": 1}),
    ],
)
def test_bad_trigger_args_are_refused_with_the_reason(trigger, args):
    with pytest.raises(ValidationError) as exc:
        normalise_trigger_args({"trigger": trigger, "trigger_args": args})
    assert "trigger_args" in exc.value.message_dict


@pytest.mark.django_db
def test_field_style_input_is_stored_once_in_canonical_form():
    services.job_create(
        data={"id": "aps", "trigger": "date", "trigger_args": {"run_date": "2099-12-31T23:59:59+08:00"}, **HTTP}
    )
    job = Job.objects.get(pk="aps")
    assert (job.trigger, job.run_at) == ("date", datetime(2099, 12, 31, 15, 59, 59, tzinfo=UTC))
    services.job_update(job=job, data={"trigger": "interval", "trigger_args": {"hours": 1, "minutes": 30}})
    job.refresh_from_db()
    assert (job.trigger, job.interval_seconds, job.run_at) == ("interval", 5400, None)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)),  # settings.TIME_ZONE is UTC
        ({"timezone": "Asia/Shanghai"}, datetime(2099, 12, 31, 15, 59, 59, tzinfo=UTC)),
        ({"timezone": "America/New_York"}, datetime(2100, 1, 1, 4, 59, 59, tzinfo=UTC)),
    ],
)
def test_it_reads_a_naive_run_date_in_the_jobs_time_zone(data, expected):
    args = {"trigger": "date", "trigger_args": {"run_date": "2099-12-31T23:59:59"}, **data}
    assert normalise_trigger_args(args)["run_at"] == expected


@pytest.mark.django_db
def test_it_saves_a_job_given_a_naive_run_date():
    job = services.job_create(
        data={
            "id": "naive",
            "trigger": "date",
            "trigger_args": {"run_date": "2099-12-31T23:59:59"},
            "timezone": "Asia/Shanghai",
            **HTTP,
        }
    )
    assert Job.objects.get(pk=job.pk).run_at == datetime(2099, 12, 31, 15, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"timezone": 5}, "timezone"),
        ({"trigger_args": {"run_date": "2099-02-30T00:00:00"}}, "trigger_args"),  # well formed, no such day
        ({"trigger_args": {"run_date": "9999-12-31T23:59:59-12:00"}}, "trigger_args"),  # past year 9999 in UTC
        ({"trigger_args": {"run_date": "9999-12-31T23:59:59"}, "timezone": "America/New_York"}, "trigger_args"),
    ],
)
def test_it_refuses_a_run_date_it_cannot_place_in_time(data, field):
    args = {"trigger": "date", "trigger_args": {"run_date": "2099-12-31T23:59:59"}, **data}
    with pytest.raises(ValidationError) as exc:
        normalise_trigger_args(args)
    assert field in exc.value.message_dict


@pytest.mark.parametrize(
    "args",
    [
        pytest.param({"weeks": 1e308}, id="overflows-a-float"),
        pytest.param({"hours": float("inf")}, id="infinite"),
        pytest.param({"hours": float("nan")}, id="nan"),
        pytest.param({"hours": "9" * 5000}, id="digits-as-text"),
        pytest.param({"hours": "1"}, id="a-number-as-text"),
        pytest.param({"hours": 10**5000}, id="a-5000-digit-int"),
        pytest.param({"days": 3661}, id="just-over-ten-years"),
        pytest.param({"seconds": MAX_INTERVAL_SECONDS + 1}, id="one-second-over"),
        pytest.param({"weeks": 500, "days": 200}, id="over-in-sum"),
        pytest.param({"seconds": [1]}, id="a-list"),
        pytest.param({"seconds": True}, id="a-bool"),
    ],
)
def test_it_refuses_intervals_that_are_not_finite_numbers_within_the_limit(args):
    with pytest.raises(ValidationError) as exc:
        normalise_trigger_args({"trigger": "interval", "trigger_args": args})
    assert "trigger_args" in exc.value.message_dict


def test_it_accepts_an_interval_up_to_the_limit():
    data = normalise_trigger_args({"trigger": "interval", "trigger_args": {"seconds": MAX_INTERVAL_SECONDS}})
    assert data["interval_seconds"] == MAX_INTERVAL_SECONDS
    data = normalise_trigger_args({"trigger": "interval", "trigger_args": {"minutes": 1.5}})
    assert data["interval_seconds"] == 90


@pytest.mark.parametrize(
    ("day_of_week", "cron_dow"),
    [
        ("*/2", "1,3,5,0"),
        ("1-5/2", "2,4,6"),
        ("mon-fri", "mon-fri"),
        ("MON,wed", "mon,wed"),
        ("sat-sun", "sat-sun"),
        ("6", "0"),
        ("*", "*"),
    ],
)
def test_it_translates_apscheduler_weekdays_to_crons(day_of_week, cron_dow):
    data = normalise_trigger_args({"trigger": "cron", "trigger_args": {"day_of_week": day_of_week, "hour": "8"}})
    assert data["cron"] == f"0 8 * * {cron_dow}"


@pytest.mark.parametrize(
    ("day_of_week", "reason"),
    [
        ("0-999999999", "0-6"),
        ("7", "0-6"),
        ("9" * 5000, "0-6"),
        ("*/" + "9" * 5000, "0-6"),
        ("*/0", "step"),
        ("5-1", "sat-tue"),  # APScheduler numbers: 5 is Saturday
        ("fri-mon", "fri-mon"),
        ("monday", "0-6"),
        ("5L", "0-6"),
        ("mon#2", "0-6"),
        ("1,,2", "0-6"),
    ],
    ids=lambda value: value[:20],
)
def test_it_refuses_weekdays_that_are_not_0_to_6_or_names_with_the_reason(day_of_week, reason):
    with pytest.raises(ValidationError) as exc:
        normalise_trigger_args({"trigger": "cron", "trigger_args": {"day_of_week": day_of_week}})
    message = " ".join(exc.value.message_dict["trigger_args"])
    assert "day_of_week" in message
    assert reason in message


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, [1], True, 10**5000],
    ids=["dict", "list", "bool", "huge-int"],
)
def test_it_refuses_cron_trigger_args_that_are_not_text_or_small_numbers(value):
    with pytest.raises(ValidationError) as exc:
        normalise_trigger_args({"trigger": "cron", "trigger_args": {"minute": value}})
    assert "trigger_args" in exc.value.message_dict


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"trigger": "cron", "cron": "* * * * *", "trigger_args": {"hour": "9"}}, "cron"),
        ({"trigger": "interval", "interval_seconds": 60, "trigger_args": {"hours": 1}}, "interval_seconds"),
        ({"trigger": "date", "run_at": "2099-01-01T00:00:00Z", "trigger_args": {"run_date": "2099-02-01"}}, "run_at"),
    ],
)
def test_it_refuses_a_canonical_field_given_with_trigger_args(data, field):
    with pytest.raises(ValidationError) as exc:
        normalise_trigger_args(data)
    message = " ".join(exc.value.message_dict["trigger_args"])
    assert f"Give one of {field} or trigger_args" in message


def test_an_empty_canonical_field_next_to_trigger_args_is_no_conflict():
    # A GET's output sent back in a PUT carries "cron": "" for a job that has no cron.
    data = normalise_trigger_args({"trigger": "cron", "cron": "", "trigger_args": {"hour": "9"}})
    assert data["cron"] == "0 9 * * *"
