"""The benchmark's tables: both schedulers side by side, the ratio, and the issue's target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, str, Callable[[dict[str, Any]], float | None], str, bool]  # label, target, value, unit, higher better


def _get(*path: Any) -> Callable[[dict[str, Any]], Any]:
    def read(result: dict[str, Any]) -> Any:
        for key in path:
            if not isinstance(result, dict) or key not in result:
                return None
            result = result[key]
        return result

    return read


def _worst_change(field: str, pick: Callable[[list[float]], float]) -> Callable[[dict[str, Any]], float | None]:
    def read(result: dict[str, Any]) -> float | None:
        changes = _get("quiet", "changes")(result) or {}
        values = [values.get(field) for kind, values in changes.items() if kind != "all"]
        return None if not values or None in values else pick(values)

    return read


def _burst(size: int, field: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda result: (
        _get("quiet", "bursts", size)(result) or _get("quiet", "bursts", str(size))(result) or {}
    ).get(field)


def _memory(result: dict[str, Any]) -> float | None:
    values = [v for v in (_get("quiet", "memory_mb")(result), _get("mix", "memory_mb")(result)) if v is not None]
    return max(values) if values else None


ROWS: list[Row] = [
    ("cold start", "≤ 2 s", _get("quiet", "cold_start_s"), "s", False),
    ("idle beat", "≤ 2 % of a core", _get("quiet", "idle_pct"), "%", False),
    ("one change: beat CPU (median)", "≤ 20 ms", _get("quiet", "changes", "all", "cpu_ms"), "ms", False),
    ("one change: beat CPU (worst kind)", "", _worst_change("cpu_ms", max), "ms", False),
    ("one change: until effective (median)", "≤ 1 s", _get("quiet", "changes", "all", "effective_s"), "s", False),
    ("one change: until effective (slowest)", "", _get("quiet", "changes", "all", "worst_effective_s"), "s", False),
    ("1,000 due: publish rate", "", _burst(1000, "rate_per_s"), "/s", True),
    ("1,000 due: last one late by", "≤ 1 s", _burst(1000, "last_late_s"), "s", False),
    ("10,000 due: publish rate", "", _burst(10000, "rate_per_s"), "/s", True),
    ("10,000 due: last one late by", "≤ 5 s", _burst(10000, "last_late_s"), "s", False),
    ("mix: fires asked per minute", "", _get("mix", "asked_per_min"), "", True),
    ("mix: fires published per minute", "", _get("mix", "published_per_min"), "", True),
    ("mix: behind at the end", "0", _get("mix", "behind"), "", False),
    ("mix: beat CPU", "≤ 10 % of a core", _get("mix", "cpu_pct"), "%", False),
    ("mix: lateness p50", "", _get("mix", "lateness_ms", "p50"), "ms", False),
    ("mix: lateness p99", "", _get("mix", "lateness_ms", "p99"), "ms", False),
    ("beat memory (peak)", "≤ 200 MB", _memory, "MB", False),
]


def print_report(results: dict[str, Any], *, sizes_only: bool = False) -> None:
    for n, by_set in results.get("sizes", {}).items():
        ours = {kind: runs.get("crontask") for kind, runs in by_set.items()}
        vanilla = {kind: runs.get("vanilla") for kind, runs in by_set.items()}
        print(f"\nN = {int(n):,} jobs (targets are the issue's, for N = 100,000)")
        print(f"{'':38} {'target':>17} {'crontask':>11} {'vanilla':>11} {'ratio':>9}")
        for label, target, read, unit, higher in ROWS:
            a, b = _safe(read, ours), _safe(read, vanilla)
            print(f"{label:38} {target:>17} {_fmt(a, unit):>11} {_fmt(b, unit):>11} {_ratio(a, b, higher):>9}")
        for name, result in (("crontask", ours), ("vanilla", vanilla)):
            changes = _get("quiet", "changes")(result) or {}
            parts = [
                f"{kind} {_fmt(v['cpu_ms'], 'ms')}/{_fmt(v['effective_s'], 's')}"
                for kind, v in changes.items()
                if kind != "all"
            ]
            if parts:
                print(f"  {name} changes, beat CPU / until effective (medians): " + ", ".join(parts))
    if not sizes_only and results.get("publish"):
        _print_publish(results["publish"])
    if not sizes_only and results.get("lateness"):
        _print_lateness_runs(results["lateness"])


def _print_publish(pub: dict[str, Any]) -> None:
    pct = pub.get("lateness_ms") or {}
    print(f"\n{pub['jobs']:,} second-level jobs, beat alone, {pub['seconds'] / 60:.1f} min (crontask)")
    print(f"  fires asked {pub['asked']:,}, published {pub['published']:,}, missed {pub['missed']}, "
          f"doubled {pub['doubled']}, beat CPU {_fmt(pub['beat_cpu_pct'], '%')}")  # fmt: skip
    lead = pub.get("lead_ms", 0)
    print(f"  lateness (scheduled_for → on the queue): {_percentiles(pct)}"
          + (f" (sent {lead} ms ahead: negative is ahead of time)" if lead else ""))  # fmt: skip


def _print_lateness_runs(by_size: dict[str, dict[str, Any]]) -> None:
    """Each run, then the ratios of the first (the default fire settings) to the last (the baseline)."""
    for size, lat in by_size.items():
        _print_lateness(lat, size)
    if len(by_size) < 2:
        return
    (first, ours), (last, base) = next(iter(by_size.items())), list(by_size.items())[-1]
    rows = [
        ("lateness p50", ours["lateness_ms"].get("p50"), base["lateness_ms"].get("p50")),
        ("lateness p99", ours["lateness_ms"].get("p99"), base["lateness_ms"].get("p99")),
        ("call reached the target p50", _safe(lambda r: r["arrival_lateness_ms"]["p50"], ours),
         _safe(lambda r: r["arrival_lateness_ms"]["p50"], base)),
        ("call reached the target p99", _safe(lambda r: r["arrival_lateness_ms"]["p99"], ours),
         _safe(lambda r: r["arrival_lateness_ms"]["p99"], base)),
        ("machine CPU per run", _safe(lambda r: r["cpu"]["ms_per_run"]["machine"], ours),
         _safe(lambda r: r["cpu"]["ms_per_run"]["machine"], base)),
    ]  # fmt: skip
    print(f"\n  {first} against {last} (the baseline), lower is better:")
    for label, a, b in rows:
        print(f"  {label:30} {_fmt(a, 'ms'):>9} {_fmt(b, 'ms'):>9} {_ratio(a, b, False):>9}")


def _print_lateness(lat: dict[str, Any], size: str = "") -> None:
    """One lateness run; ``size`` says its fire settings ("batches of 20, lead 250 ms")."""
    pct = lat.get("lateness_ms") or {}
    batches = f", {size}" if size else ""
    print(f"\n{lat['jobs']:,} second-level jobs with {lat.get('concurrency', '?')} worker processes, "
          f"{lat['seconds'] / 60:.1f} min (crontask{batches})")  # fmt: skip
    print(f"  fires asked {lat['asked']:,}, runs {lat['runs']:,}, missed {lat['missed']}, doubled runs "
          f"{lat['doubled_runs']}, duplicate deliveries dropped {lat['duplicate_deliveries']}")  # fmt: skip
    print(f"  lateness (scheduled_for → started_at): {_percentiles(pct)} (targets: p50 < 50 ms, p99 < 250 ms)")
    if lat.get("arrival_lateness_ms"):
        print(f"  the call reached the target (scheduled_for → request arrived): "
              f"{_percentiles(lat['arrival_lateness_ms'])}")  # fmt: skip
    print(f"  run statuses {lat['statuses']}, beat CPU {_fmt(lat['beat_cpu_pct'], '%')}")
    cpu = lat.get("cpu")
    if cpu and cpu.get("ms_per_run"):
        parts = ", ".join(f"{name} {value:.2f}" for name, value in cpu["ms_per_run"].items() if name != "machine")
        print(f"  CPU per run (ms): {parts}; the whole machine {cpu['ms_per_run']['machine']:.2f}, "
              f"{cpu['machine_busy_pct']:.0f} % busy on average over {cpu['cores']} cores")  # fmt: skip


def _percentiles(pct: dict[str, float]) -> str:
    """Lateness percentiles; unlike a change's CPU, a negative lateness is real (ahead of time)."""
    return ", ".join(f"{name} {_ms(pct.get(name))}" for name in ("p50", "p90", "p99", "max"))


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"


def _safe(read: Callable[[dict[str, Any]], Any], result: dict[str, Any]) -> float | None:
    try:
        value = read(result)
    except (AttributeError, KeyError, TypeError):
        return None
    return value if isinstance(value, int | float) else None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("s",):
        return f"{value:.2f} s"
    if unit == "ms" and value < 0.05:  # a change's CPU is measured above beat's idle rate: noise
        return "≈ 0 ms"
    if unit == "ms":
        return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:,.0f}"


def _ratio(ours: float | None, vanilla: float | None, higher_better: bool) -> str:
    if ours is None or vanilla is None or ours <= 0 or vanilla <= 0:
        return ""
    ratio = ours / vanilla if higher_better else vanilla / ours
    return f"{ratio:,.1f}x"
