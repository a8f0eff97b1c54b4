"""What the benchmark does to one beat process, and what it reads off it.

``quiet``: cold start, idle CPU, one change at a time (create, edit, pause, resume, delete: beat
CPU and time until it takes effect), bursts of 1,000 and 10,000 jobs due at the same second,
memory. ``mix``: the realistic mix for a while: CPU, fires asked for against fires published.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronsim import CronSim
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from bench.dataset import SENTINEL, URL, Spec
from bench.db import anchor_schedules
from bench.probe import OURS, BeatProcess, Message, QueueWatch
from jobs import services
from jobs.models import Job
from jobs.triggers import get_zone


@dataclass
class Context:
    env: dict[str, str]
    broker_url: str
    queue: str
    logs: Path
    repeat: int = 3
    idle_seconds: float = 20.0
    mix_seconds: float = 120.0
    notes: list[str] = field(default_factory=list)


def extra_specs(now: datetime, repeat: int) -> list[Spec]:
    """The jobs the change tests act on, and the sentinel whose fire marks beat as started."""
    specs = [Spec(SENTINEL, run_at=now - timedelta(seconds=1))]
    for r in range(repeat):
        specs += [
            Spec(f"bench-tick-{r}", status=Job.Status.PAUSED, interval_seconds=1),  # paused, then deleted
            Spec(f"bench-tock-{r}", status=Job.Status.PAUSED, interval_seconds=1),
            Spec(f"bench-date-{r}", run_at=now + timedelta(days=200)),  # edited to run now
            # resumed: its first fire is one interval (1 s) after the resume, so "until effective"
            # includes up to a second of waiting for it
            Spec(f"bench-held-{r}", status=Job.Status.PAUSED, interval_seconds=1),
        ]
    return specs


def run_quiet(ctx: Context, scheduler: str, n: int) -> dict[str, Any]:
    anchor_schedules(timezone.now())
    watch = QueueWatch(ctx.broker_url, ctx.queue)
    beat = BeatProcess(scheduler, ctx.env, ctx.logs / f"quiet-{n}-{_short(scheduler)}.log")
    try:
        result: dict[str, Any] = {"cold_start_s": cold_start(beat, watch)}
        time.sleep(5)
        result["idle_pct"] = 100 * cpu_rate(beat, ctx.idle_seconds)
        result["changes"] = changes(beat, watch, ctx.repeat)
        lead = max(10.0, 2 * result["cold_start_s"] + 5)
        result["bursts"] = {size: burst(beat, watch, size, lead) for size in (1_000, 10_000) if size <= n}
        result["memory_mb"] = beat.peak_rss / 2**20
        return result
    finally:
        beat.stop()
        watch.close()


def run_mix(ctx: Context, scheduler: str, n: int) -> dict[str, Any]:
    anchor = timezone.now()
    anchor_schedules(anchor)
    watch = QueueWatch(ctx.broker_url, ctx.queue)
    beat = BeatProcess(scheduler, ctx.env, ctx.logs / f"mix-{n}-{_short(scheduler)}.log")
    try:
        cold = cold_start(beat, watch)
        time.sleep(60 - time.time() % 60 + 5)  # windows start 5 s past a minute: each sees the same minutes
        mark, w0, cpu0 = watch.count(), time.time(), beat.cpu()
        time.sleep(ctx.mix_seconds)
        w1, cpu1 = time.time(), beat.cpu()
        published = watch.messages(mark)
        memory = beat.peak_rss / 2**20
    finally:
        beat.stop()
        watch.close()
    start, end = _utc(w0), _utc(w1 - 2)  # fires due up to 2 s before the end must be out by then
    asked = expected_fires(anchor, start, end, seconds=scheduler == OURS)
    result = served(asked, [m for m in published if m.seen_at <= w1], start, end, exact=scheduler == OURS)
    minutes = (end - start).total_seconds() / 60
    result.update(cold_start_s=cold, cpu_pct=100 * (cpu1 - cpu0) / (w1 - w0), memory_mb=memory,
                  asked_per_min=result["asked"] / minutes, published_per_min=result["published"] / minutes)  # fmt: skip
    return result


def cold_start(beat: BeatProcess, watch: QueueWatch, cap: float = 300) -> float:
    """Seconds from starting the process until it published the sentinel job, due all along."""
    deadline = time.time() + cap
    while time.time() < deadline:
        hit = [m for m in watch.messages() if m.job_id == SENTINEL]
        if hit:
            return hit[0].seen_at - beat.started_at
        if not beat.alive():
            raise RuntimeError(f"beat ({beat.scheduler}) exited with {beat.proc.returncode}")
        time.sleep(0.01)
    raise RuntimeError(f"beat ({beat.scheduler}) did not fire the sentinel within {cap} s")


def cpu_rate(beat: BeatProcess, seconds: float) -> float:
    """Beat's CPU over the next ``seconds``, in cores."""
    t0, cpu0 = time.time(), beat.cpu()
    time.sleep(seconds)
    return (beat.cpu() - cpu0) / (time.time() - t0)


def settle(beat: BeatProcess, baseline: float, cap: float = 120) -> None:
    """Wait until beat's CPU is back to ``baseline`` (cores) for two seconds running."""
    calm, deadline = 0, time.time() + cap
    while calm < 2 and time.time() < deadline:
        calm = calm + 1 if cpu_rate(beat, 1.0) <= baseline + 0.03 else 0


# --- one change at a time ----------------------------------------------------------------

Change = tuple[str, Callable[[], str], bool]  # (kind, act returning the job id, shows as a first fire?)


def change_plan(r: int) -> list[Change]:
    def now_iso() -> str:
        return timezone.now().isoformat()

    return [
        ("create", lambda: services.job_create(
            data={"id": f"bench-new-{r}", "run_at": now_iso(), "run_if_past": True, "url": URL}).id, True),
        ("edit", lambda: services.job_update(
            job=Job.objects.get(pk=f"bench-date-{r}"), data={"run_at": now_iso(), "run_if_past": True}).id, True),
        ("pause", lambda: services.job_pause(job=Job.objects.get(pk=f"bench-tick-{r}")).id, False),
        ("resume", lambda: services.job_resume(job=Job.objects.get(pk=f"bench-held-{r}")).id, True),
        ("delete", lambda: _delete(f"bench-tock-{r}"), False),
    ]  # fmt: skip


def _delete(job_id: str) -> str:
    services.job_delete(job=Job.objects.get(pk=job_id))
    return job_id


def changes(beat: BeatProcess, watch: QueueWatch, repeat: int) -> dict[str, dict[str, float | None]]:
    """Median beat CPU and time until effective of each kind of change, ``repeat`` times each."""
    for r in range(repeat):  # the every-second jobs that pause and delete stop
        for prefix in ("tick", "tock"):
            services.job_resume(job=Job.objects.get(pk=f"bench-{prefix}-{r}"))
    time.sleep(5)
    settle(beat, 0.0, cap=60)
    samples: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    for r in range(repeat):
        for kind, act, shows_as_fire in change_plan(r):
            samples[kind].append(_measure(beat, watch, act, shows_as_fire))
    result: dict[str, dict[str, float | None]] = {
        kind: {
            "cpu_ms": statistics.median(cpu for cpu, _ in values),
            "effective_s": _median_or_none([eff for _, eff in values]),
            "worst_effective_s": _max_or_none([eff for _, eff in values]),
        }
        for kind, values in samples.items()
    }
    every = [sample for values in samples.values() for sample in values]
    result["all"] = {
        "cpu_ms": statistics.median(cpu for cpu, _ in every),
        "effective_s": _median_or_none([eff for _, eff in every]),
        "worst_effective_s": _max_or_none([eff for _, eff in every]),
    }
    return result


def _measure(
    beat: BeatProcess, watch: QueueWatch, act: Callable[[], str], shows_as_fire: bool
) -> tuple[float, float | None]:
    """Beat's CPU for one change above its rate just before it, and how long until it showed."""
    baseline = cpu_rate(beat, 2.0)  # the every-second jobs' fires, the ticks, the reconciliation
    mark, cpu0 = watch.count(), beat.cpu()
    job_id = act()
    t0 = time.time()  # the service's transaction has committed
    deadline = t0 + 120
    while time.time() < deadline:
        fires = [m for m in watch.messages(mark) if m.job_id == job_id]
        done = bool(fires) if shows_as_fire else (not fires or time.time() - fires[-1].seen_at > 3)
        if done:
            settle(beat, baseline)
            break
        time.sleep(0.05)
    t1, cpu1 = time.time(), beat.cpu()
    fires = [m for m in watch.messages(mark) if m.job_id == job_id]
    if shows_as_fire:
        effective = fires[0].seen_at - t0 if fires else None
    else:  # stopped: the last fire it still made
        effective = max(0.0, fires[-1].seen_at - t0) if fires else 0.0
    return 1000 * (cpu1 - cpu0 - baseline * (t1 - t0)), effective


# --- bursts ------------------------------------------------------------------------------


def burst(beat: BeatProcess, watch: QueueWatch, size: int, lead: float, cap: float = 90) -> dict[str, Any]:
    """Point ``size`` jobs at the same minute; how fast are they all out?"""
    now = timezone.now()
    due = (now + timedelta(seconds=lead + 60)).replace(second=0, microsecond=0)
    ids = [f"bench-{i:06d}" for i in range(size)]
    _point_at(ids, due)
    mark, wanted = watch.count(), set(ids)
    deadline = due.timestamp() + cap
    seen: dict[str, float] = {}

    def this_fire(message: Message) -> bool:
        # The 1,000 burst's fires of the same jobs, still queued (nothing consumes them here), are
        # sent again by beat after half of CRONTASK_LOST_GRACE_SECONDS, during this burst: they are
        # not this fire's doubles. The stock scheduler's messages name no time.
        return message.job_id in wanted and message.scheduled_for in (None, due)

    while time.time() < deadline and len(seen) < size:
        time.sleep(0.05)
        for message in watch.messages(mark):
            if this_fire(message) and message.job_id is not None:
                seen.setdefault(message.job_id, message.seen_at)
    doubles = sum(1 for m in watch.messages(mark) if this_fire(m)) - len(seen)
    last = max(seen.values(), default=None)
    late = (last - due.timestamp()) if last is not None and len(seen) == size else None
    return {
        "size": size,
        "published": len(seen),
        "doubled": doubles,
        "last_late_s": late,
        "rate_per_s": len(seen) / max((last or deadline) - due.timestamp(), 1e-3),
        "capped_at_s": cap,
    }


def _point_at(ids: list[str], due: datetime) -> None:
    """The burst's jobs become ``M H * * *`` crons due at ``due`` (UTC), for both schedulers."""
    cron = f"{due.minute} {due.hour} * * *"
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=str(due.minute), hour=str(due.hour), day_of_month="*", month_of_year="*", day_of_week="*",
        timezone="UTC",
    )  # fmt: skip
    with transaction.atomic():
        for start in range(0, len(ids), 5_000):
            chunk = ids[start : start + 5_000]
            Job.objects.filter(id__in=chunk).update(
                trigger=Job.Trigger.CRON, cron=cron, interval_seconds=None, run_at=None, timezone="UTC",
                status=Job.Status.ACTIVE, next_run_at=due,
            )  # fmt: skip
            PeriodicTask.objects.filter(crontask_job__id__in=chunk).update(
                crontab=crontab, interval=None, clocked=None, one_off=False, enabled=True, last_run_at=timezone.now()
            )
    PeriodicTasks.update_changed()


# --- the realistic mix -------------------------------------------------------------------


def expected_fires(anchor: datetime, start: datetime, end: datetime, *, seconds: bool) -> dict[str, list[datetime]]:
    """Each active job's nominal fires in (start, end]; ``seconds=False`` reads crons as a crontab row does."""
    asked: dict[str, list[datetime]] = {}
    cache: dict[tuple[str, str], list[datetime]] = {}
    rows = Job.objects.filter(status=Job.Status.ACTIVE, id__startswith="bench-0").values_list(
        "id", "trigger", "cron", "interval_seconds", "timezone"
    )
    for job_id, trigger, cron, every, tz in rows.iterator(chunk_size=10_000):
        if trigger == Job.Trigger.CRON:
            expr = cron if seconds else " ".join(cron.split()[-5:])
            if (expr, tz) not in cache:
                cache[(expr, tz)] = _cron_between(expr, tz, start, end)
            fires = cache[(expr, tz)]
        elif trigger == Job.Trigger.INTERVAL and every:
            step, first = timedelta(seconds=every), anchor.replace(microsecond=0)
            k = max(1, math.ceil((start - first) / step))
            fires = []
            while first + k * step <= end:
                if first + k * step > start:
                    fires.append(first + k * step)
                k += 1
        else:
            continue
        if fires:
            asked[job_id] = fires
    return asked


def _cron_between(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    fires = []
    for fire in CronSim(expr, start.astimezone(get_zone(tz)).replace(microsecond=0)):
        if fire > end:
            break
        fires.append(fire.astimezone(UTC))
    return fires


def served(
    asked: dict[str, list[datetime]], published: list[Message], start: datetime, end: datetime, *, exact: bool
) -> dict[str, Any]:
    """Fires asked for against fires published. Ours name their nominal time; the stock scheduler's
    do not, so for it only the counts compare (what is not out by the end is behind)."""
    demand = sum(len(fires) for fires in asked.values())
    ours = [m for m in published if m.job_id in asked]
    if not exact:
        count = len(ours)
        return {"asked": demand, "published": count, "behind": max(0, demand - count), "lateness_ms": None}
    wanted = {(job_id, fire) for job_id, fires in asked.items() for fire in fires}
    hits = {(m.job_id, m.scheduled_for): m for m in ours if (m.job_id, m.scheduled_for) in wanted}
    late = sorted(late for m in hits.values() if (late := m.lateness_ms) is not None)
    return {
        "asked": demand,
        "published": len(hits),
        "behind": len(wanted) - len(hits),
        "doubled": len([m for m in ours if (m.job_id, m.scheduled_for) in wanted]) - len(hits),
        "lateness_ms": percentiles(late),
    }


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1]}


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _short(scheduler: str) -> str:
    return "crontask" if scheduler == OURS else "vanilla"


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) else None


def _max_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if len(known) == len(values) else None
