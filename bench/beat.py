"""Beat at scale: our scheduler and django-celery-beat's stock DatabaseScheduler, side by side.

    bench/run                        N = 1,000 and 10,000, then 1,000 second-level jobs for 10 min
                                     with beat alone and 10 min with workers
    bench/run --full                 adds N = 100,000
    bench/run --sizes 100000,1000000 --schedulers crontask --kinds quiet
                                     our scheduler at 1,000,000 jobs (the stock one is skipped above
                                     --stock-max jobs: it needs 708 MB and 26 s to start at 100,000)
    bench/run --stages writes        the write path and the runs at scale (bench.writes), minutes
    bench/run --sizes 1000 --publish-minutes 2 --lateness-minutes 2
    bench/run --sizes '' --publish-minutes 0 --second-level-jobs 100
                                     only the second-level jobs with workers, 100 of them
    bench/run --sizes '' --publish-minutes 0 --fire-settings 20:250,20:0,1:0
                                     with workers, fires sent 250 ms ahead in batches of 20 (the
                                     defaults), then at their time, then each alone at its time

For each N it builds two data sets (see bench.dataset), freezes each as a template database, and
runs a real ``celery beat`` process on it once with each scheduler class, against PostgreSQL and
Redis (``DATABASE_URL``'s server, ``CELERY_BROKER_URL``; defaults: this machine's). It prints one
table per N with both columns, their ratio and the target from the issue, and writes every number
to ``var/bench/``. The baseline is the stock scheduler measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used at run time: after django.setup()
    from bench.db import Databases
    from bench.scenarios import Context

ROOT = Path(__file__).resolve().parents[1]
WORK = os.environ.get("CRONTASK_BENCH_DATABASE", "crontask_bench")  # bench.db's default (imported after setup)
#: Above this many jobs the stock scheduler is not run (``--stock-max``): at 100,000 it took 26 s
#: to start and 708 MB, and both grow with N.
STOCK_MAX = 100_000


def _empty(dbs: Databases) -> str:
    return f"{dbs.work}_empty"


def _template(dbs: Databases) -> str:
    return f"{dbs.work}_tpl"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stages = {stage.strip() for stage in args.stages.split(",") if stage.strip()}
    if stages - {"beat", "writes", "throughput"}:
        unknown = ", ".join(sorted(stages - {"beat", "writes", "throughput"}))
        print(f"Unknown stages: {unknown} (beat, writes, throughput).", file=sys.stderr)
        return 2
    from bench.speed import report as machine_speed

    speeds = {"before": machine_speed("before the stages")}  # bench/speed.py: read the numbers against it
    if "writes" in stages:  # imports, API creates, the runs lists, retention (bench.writes), before beat
        # In a process of its own: it sets Django up on a database it makes and drops, and the stages
        # after it set Django up on theirs.
        subprocess.run(
            [sys.executable, "-m", "bench.writes", "--import-jobs", str(args.import_jobs),
             "--api-jobs", str(args.api_jobs), "--runs", str(args.runs), "--baseline-sample", str(args.baseline_sample),
             "--writes-parts", args.writes_parts, "--writes-database", args.writes_database,
             "--api-clients", str(args.api_clients)],
            cwd=ROOT, check=True,
        )  # fmt: skip
        speeds["after writes"] = machine_speed("after the writes stage")
        if not stages - {"writes"}:
            return 0
    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    broker = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
    if not server.startswith("postgres") or not broker.startswith("redis"):
        print("The benchmark needs PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL).", file=sys.stderr)
        return 2
    logs = Path(tempfile.mkdtemp(prefix="crontask-bench-"))
    ctx = _configure(server, broker, logs, args)

    from bench.db import Databases
    from bench.report import print_report

    dbs = Databases(server, work=args.db_prefix)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} | ({100_000} if args.full else set()))
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(), "logs": str(logs), "sizes": {}, "machine_speed_ms": speeds,
    }  # fmt: skip
    out = ROOT / "var" / "bench" / f"beat-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every stage, so an interrupted run keeps what it measured
        out.write_text(json.dumps(results, indent=2, default=str))

    try:
        _migrate_empty(dbs)
        if "throughput" in stages:  # N HTTP jobs due at once, real beat and workers (bench.throughput)
            from bench.throughput import print_comparison, run_throughput

            baseline = Path(args.run_baseline_code) if args.run_baseline_code else None
            results["throughput"] = run_throughput(
                ctx, dbs, _empty(dbs), jobs=args.run_jobs, concurrency=args.run_concurrency, baseline_code=baseline
            )
            speeds["after throughput"] = machine_speed("after the throughput stage")
            save()
            print_comparison(results["throughput"])
            if "beat" not in stages:
                print(f"\nall numbers: {out}\nlogs: {logs}")
                return 0
        for n in sizes:
            results["sizes"][n] = _one_size(ctx, dbs, n, args)
            save()
            print_report({"sizes": {n: results["sizes"][n]}}, sizes_only=True)
        if args.publish_minutes > 0:
            results["publish"] = _publish(ctx, dbs, args)
            save()
        if args.lateness_minutes > 0:
            results["lateness"] = _lateness(ctx, dbs, args)
            save()
    finally:
        for name in (dbs.work, _template(dbs), _empty(dbs)):
            dbs.drop(name)
    print_report(results)
    speeds["after"] = machine_speed("after the stages")
    save()
    print(f"\nall numbers: {out}\nbeat logs: {logs}")
    return 0


def writes_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.writes import add_part_arguments

    add_part_arguments(parser)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--stages", default="beat", help="beat (the scheduler at N jobs), writes (bench.writes: imports, API "
        "creates, runs lists, retention), throughput (bench.throughput: N HTTP jobs due at once, run by real "
        "workers), or several: beat,writes"
    )  # fmt: skip
    parser.add_argument("--run-jobs", type=int, default=10_000, help="throughput: HTTP jobs due at the same minute")
    parser.add_argument("--run-concurrency", type=int, default=4, help="throughput: worker processes")
    parser.add_argument("--run-baseline-code", default="", help="throughput: a code tree to run beside this one")
    parser.add_argument("--import-jobs", type=int, default=20_000, help="writes: jobs in the import stage")
    parser.add_argument("--api-jobs", type=int, default=1_000, help="writes: POST /api/jobs/ creates")
    parser.add_argument("--runs", type=int, default=2_000_000, help="writes: runs for the runs list stage")
    parser.add_argument("--baseline-sample", type=int, default=1_000, help="writes: imports one by one (baseline)")
    writes_arguments(parser)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated numbers of jobs ('': none)")
    parser.add_argument("--full", action="store_true", help="add N = 100,000")
    parser.add_argument("--schedulers", default="crontask,vanilla", help="crontask, vanilla or both")
    parser.add_argument(
        "--stock-max", type=int, default=STOCK_MAX, help="the stock scheduler (vanilla) is skipped above this N"
    )
    parser.add_argument("--kinds", default="quiet,mix", help="data sets per N: quiet (start, idle, changes, "
                        "bursts, memory), mix (the realistic mix), or both")  # fmt: skip
    parser.add_argument(
        "--db-prefix",
        default=WORK,
        help="the work database's name; its templates are NAME_empty and NAME_tpl (default: $CRONTASK_BENCH_DATABASE "
        "or crontask_bench); give each benchmark running at once its own",
    )
    parser.add_argument("--repeat", type=int, default=3, help="times each kind of change is measured")
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--mix-seconds", type=float, default=120, help="how long the realistic mix runs")
    parser.add_argument("--publish-minutes", type=float, default=10, help="second-level jobs, beat alone (0: skip)")
    parser.add_argument("--lateness-minutes", type=float, default=10, help="the same with workers (0: skip)")
    parser.add_argument("--concurrency", type=int, default=8, help="worker processes for the lateness run")
    parser.add_argument("--second-level-jobs", type=int, default=1000, help="jobs for the two runs above")
    parser.add_argument("--same-second", action="store_true", help="all second-level jobs on one second")
    parser.add_argument(
        "--fire-settings",
        default="20:250,20:0",
        help="one lateness run per BATCH:LEAD_MS (CRONTASK_FIRE_BATCH_SIZE and CRONTASK_FIRE_LEAD_MS): "
        "the defaults, then the last one is the baseline (20:0, fires sent at their time; 1:0, each alone too)",
    )
    return parser


def _configure(server: str, broker: str, logs: Path, args: argparse.Namespace) -> Context:
    """Point this process (Django) and the beat processes at the benchmark's database and queue."""
    from urllib.parse import urlsplit, urlunsplit

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    work_url = urlunsplit(urlsplit(server)._replace(path=f"/{args.db_prefix}"))
    env = {
        **os.environ,
        "DATABASE_URL": work_url,
        "CELERY_BROKER_URL": broker,
        "CRONTASK_QUEUE": queue,
        "CRONTASK_VAR_DIR": str(logs / "var"),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        # The beat-at-N stages measure ours like the stock scheduler: each fire sent at its time.
        # The second-level stages set the lead they measure (--fire-settings).
        "CRONTASK_FIRE_LEAD_MS": "0",
    }
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "CELERY_BROKER_URL", "CRONTASK_QUEUE", "CRONTASK_VAR_DIR")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crontask.settings")
    import django

    django.setup()
    from bench.scenarios import Context

    return Context(env=env, broker_url=broker, queue=queue, logs=logs, repeat=args.repeat,
                   idle_seconds=args.idle_seconds, mix_seconds=args.mix_seconds)  # fmt: skip


def _migrate_empty(dbs: Databases) -> None:
    from django.core.management import call_command

    dbs.recreate()
    call_command("migrate", verbosity=0)
    dbs.freeze(_empty(dbs))


def _one_size(ctx: Context, dbs: Databases, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from django.utils import timezone

    from bench.dataset import insert, mix_specs, quiet_specs
    from bench.probe import OURS, VANILLA
    from bench.scenarios import extra_specs, run_mix, run_quiet
    from jobs import services

    wanted = {"crontask": OURS, "vanilla": VANILLA}
    schedulers = [wanted[name] for name in ("crontask", "vanilla") if name in args.schedulers]
    if VANILLA in schedulers and n > args.stock_max:
        schedulers.remove(VANILLA)
        print(f"N={n:,}: the stock scheduler is skipped above {args.stock_max:,} jobs (--stock-max): it holds "
              "every task in memory and reloads them all on each change (708 MB and 26 s to start at 100,000)",
              flush=True)  # fmt: skip
    kinds = {kind.strip() for kind in args.kinds.split(",")}
    out: dict[str, Any] = {}
    for kind, specs, runner in (("quiet", quiet_specs, run_quiet), ("mix", mix_specs, run_mix)):
        if kind not in kinds or not schedulers:
            continue
        dbs.recreate(_empty(dbs))
        now = timezone.now()
        started = time.monotonic()
        count = insert(chain(specs(n, now, random.Random(n)), extra_specs(now, args.repeat)), now=now)
        services.ensure_system_jobs()
        _settle()
        dbs.freeze(_template(dbs))
        print(f"N={n:,} {kind}: {count:,} jobs (built in {time.monotonic() - started:.0f} s)", flush=True)
        out[kind] = {}
        for scheduler in schedulers:
            dbs.recreate(_template(dbs))
            name = "crontask" if scheduler == OURS else "vanilla"
            print(f"  {name} …", flush=True)
            out[kind][name] = runner(ctx, scheduler, n)
    return out


def _settle() -> None:
    """``VACUUM ANALYZE`` the data set just written, as autovacuum does within a minute of such a
    load, so each copy of the template starts as a database that has been running does.

    Without it, beat's start was measured on tables no one had read yet: with no statistics the
    planner read the housekeeping PeriodicTasks (a handful, behind a partial index) with a full
    scan of the 1,000,000 just copied, twice, and that first reader set the hint bits of every
    row: 0.45 and 0.2 s of a 1.7 to 1.9 s cold start (runs E and F: 2.26 and 2.38 s), against about
    20 ms each on the same data analysed.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.close()


def _publish(ctx: Context, dbs: Databases, args: argparse.Namespace) -> dict[str, Any]:
    from bench.lateness import run_publish_lateness

    dbs.recreate(_empty(dbs))
    size, lead = _fire_settings(args)[0]
    print(f"{args.second_level_jobs:,} second-level jobs, beat alone, for {args.publish_minutes} min, "
          f"lead {lead} ms …", flush=True)  # fmt: skip
    result = run_publish_lateness(
        _with_fire_settings(ctx, size, lead),
        minutes=args.publish_minutes,
        same_second=args.same_second,
        jobs=args.second_level_jobs,
    )
    return {**result, "lead_ms": lead}


def _lateness(ctx: Context, dbs: Databases, args: argparse.Namespace) -> dict[str, Any]:
    """One run per fire setting, each on a fresh database; keyed by "batches of B, lead L ms"."""
    from bench.lateness import run_lateness

    out = {}
    for size, lead in _fire_settings(args):
        dbs.recreate(_empty(dbs))
        label = f"batches of {size}, lead {lead} ms"
        print(f"{args.second_level_jobs:,} second-level jobs with workers for {args.lateness_minutes} min, "
              f"{label} …", flush=True)  # fmt: skip
        out[label] = run_lateness(
            _with_fire_settings(ctx, size, lead),
            minutes=args.lateness_minutes,
            concurrency=args.concurrency,
            same_second=args.same_second,
            jobs=args.second_level_jobs,
        )
    return out


def _fire_settings(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(batch size, lead in ms) of each lateness run, from ``--fire-settings``."""
    pairs = [item.split(":") for item in args.fire_settings.split(",") if item.strip()]
    return [(int(size), int(lead)) for size, lead in pairs]


def _with_fire_settings(ctx: Context, size: int, lead: int) -> Context:
    return replace(ctx, env={**ctx.env, "CRONTASK_FIRE_BATCH_SIZE": str(size), "CRONTASK_FIRE_LEAD_MS": str(lead)})


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
