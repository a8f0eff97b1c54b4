"""APScheduler-style field input is normalised to the canonical fields and stored once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from jobs import services
from jobs.models import Job
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
