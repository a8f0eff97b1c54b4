"""A job's next fires as beat will make them: after its jitter, its DST policy and its calendars,
each marked with what moved or skipped it (``GET /api/jobs/{id}/preview/``, the admin form)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils.translation import gettext as _

from calendars.selectors import calendar_windows
from calendars.windows import WindowSpec, blackout_at, blackout_end
from jobs.models import Job
from jobs.triggers import DstPolicy, Schedule, dst_policy_applies, get_zone

MAX_PREVIEW = 100


def job_preview(*, job: Job, after: datetime, count: int) -> dict[str, Any]:
    """The next ``count`` fires of ``job`` after ``after`` (skipped ones included, marked)."""
    schedule = job.schedule
    windows = [spec for _, specs in calendar_windows(job.calendars or []).values() for spec in specs]
    fires: list[dict[str, Any]] = []
    if job.trigger in (Job.Trigger.CRON, Job.Trigger.INTERVAL, Job.Trigger.DATE):
        fires = _walk(job, schedule, windows, after, count)
    return {
        "id": job.pk,
        "status": job.status,
        "paused_until": job.paused_until.isoformat() if job.paused_until else None,
        "timezone": job.timezone,
        "jitter_offset_seconds": schedule.offset_seconds,
        "dst_policy": job.dst_policy,
        "blackout_policy": job.blackout_policy,
        "calendars": job.calendars,
        "fires": fires[:count],
    }


def _walk(
    job: Job, schedule: Schedule, windows: Sequence[WindowSpec], after: datetime, count: int
) -> list[dict[str, Any]]:
    """Beat's steps: the first fire, then each following fire from the one before; a fire in a
    blackout is skipped, or deferred to the blackout's end (and the next counted from there)."""
    out: list[dict[str, Any]] = []
    fire = _start(job, schedule, after)
    deferred_to: datetime | None = None
    dst_skipped = _dst_skipped(schedule, after)
    for _step in range(count * 4):
        if fire is None or len(out) >= count:
            break
        while dst_skipped and dst_skipped[0][0] < fire and len(out) < count:
            out.append(dst_skipped.pop(0)[1])
        entry = _entry(schedule, fire)
        blackout = blackout_at(windows, fire) if windows else None
        if blackout is not None and job.blackout_policy == Job.BlackoutPolicy.DEFER:
            end = blackout_end(windows, blackout)
            entry.update(skipped=True, reasons=[*entry["reasons"], _deferred(schedule, end, blackout.reason)])
            out.append(entry)
            if deferred_to != end:
                deferred_to = end
                fire = end
                continue
        elif blackout is not None:
            entry.update(
                skipped=True, reasons=[*entry["reasons"], _("blackout: %(reason)s") % {"reason": blackout.reason}]
            )
            out.append(entry)
        else:
            if deferred_to is not None and fire == deferred_to:
                entry.update(moved=True, reasons=[*entry["reasons"], _("deferred: the blackout's end")])
            out.append(entry)
        if job.trigger == Job.Trigger.DATE:
            break
        fire = schedule.next_fire(fire, fire)
    return out


def _start(job: Job, schedule: Schedule, after: datetime) -> datetime | None:
    """The walk's first fire. A saved, active job's is beat's: its stored ``next_run_at`` (an
    interval's phase is counted from its creation, a deferred fire sits at a blackout's end),
    or, when that is not after ``after``, the first fire from it that is. A draft (not saved)
    fires first as a job created at ``after`` would."""
    stored = job.next_run_at
    recurring = job.trigger in (Job.Trigger.CRON, Job.Trigger.INTERVAL)
    if job._state.adding or job.status != Job.Status.ACTIVE or stored is None or not recurring:
        return schedule.first_fire(after)
    if stored > after:
        return stored
    return schedule.next_fire(stored, after)


def _deferred(schedule: Schedule, end: datetime, reason: str) -> str:
    return _("deferred to %(end)s: %(reason)s") % {"end": _local(schedule, end), "reason": reason}


def _local(schedule: Schedule, moment: datetime) -> str:
    """ISO 8601 in the job's own zone, with its offset: as /api/cron/preview/ gives its times, and
    as the admin labels them with that zone."""
    return moment.astimezone(get_zone(schedule.timezone)).isoformat()


# What daylight saving does to a fire of a cron that names its time (``_dst_change``).
DST_MISSING = "missing"  # the time named does not exist that day
DST_REPEATED = "repeated"  # the time named occurs twice that day; this is its second occurrence


def _dst_change(schedule: Schedule, fire: datetime) -> str | None:
    """DST_MISSING, DST_REPEATED or None for ``fire`` of ``schedule``."""
    if schedule.trigger != Job.Trigger.CRON or not dst_policy_applies(schedule.cron):
        return None
    zone = get_zone(schedule.timezone)
    local = (fire - schedule.offset).astimezone(zone)
    hours, minutes = _named(schedule.cron)
    if (hours is not None and local.hour not in hours) or (minutes is not None and local.minute not in minutes):
        return DST_MISSING
    if local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset() and local.fold == 1:
        return DST_REPEATED
    return None


def _entry(schedule: Schedule, fire: datetime) -> dict[str, Any]:
    reasons: list[str] = []
    moved = False
    change = _dst_change(schedule, fire)
    if change == DST_MISSING:
        moved = True
        reasons.append(_("DST: the time named does not exist that day; at the next valid time"))
    elif change == DST_REPEATED:
        reasons.append(_("DST: the time named occurs twice that day; its second occurrence"))
    if schedule.offset_seconds:
        moved = True
        reasons.append(_("jitter: +%(seconds)s s") % {"seconds": schedule.offset_seconds})
    return {"at": _local(schedule, fire), "moved": moved, "skipped": False, "reasons": reasons}


def _dst_skipped(schedule: Schedule, after: datetime) -> list[tuple[datetime, dict[str, Any]]]:
    """The fires a ``skip_*`` policy drops in the coming year (a few), listed as skipped."""
    if schedule.trigger != Job.Trigger.CRON or not schedule.dst_policy.startswith("skip"):
        return []
    if not dst_policy_applies(schedule.cron):
        return []
    shifted = Schedule(
        trigger=schedule.trigger, cron=schedule.cron, timezone=schedule.timezone,
        offset_seconds=schedule.offset_seconds, dst_policy=DstPolicy.SHIFT_ONCE,
    )  # fmt: skip
    dropped: list[tuple[datetime, dict[str, Any]]] = []
    for steps, fire in enumerate(shifted.fires(after)):
        if (fire - after).days > 400 or len(dropped) >= 3 or steps > 5000:
            break
        if _dst_change(shifted, fire) == DST_MISSING:
            reasons = [_("DST: the time named does not exist that day; skipped by the job's DST policy")]
            dropped.append((fire, {"at": _local(schedule, fire), "moved": False, "skipped": True, "reasons": reasons}))
    return dropped


def _named(expr: str) -> tuple[set[int] | None, set[int] | None]:
    from cronsim import CronSim

    sim = CronSim(expr, datetime(2000, 1, 1))
    return set(sim.hours), set(sim.minutes)
