"""The throughput stage's comparison (bench.throughput): each code run twice, A B B A, and the
two rounds of each made one result."""

from __future__ import annotations

from typing import Any

import pytest

from bench.throughput import _mean_of


def round_of(started: float, pool: float, machine: float, *, missed: int = 0) -> dict[str, Any]:
    return {
        "runs": 10, "missed": missed, "doubled": 0, "last_started_s": started, "last_ended_s": started + 1,
        "cpu_ms_per_run": {"worker_pool": pool, "machine": machine},
    }  # fmt: skip


def test_a_code_run_twice_is_the_mean_of_its_rounds_each_kept():
    first, second = round_of(20.0, 3.0, 6.0), round_of(24.0, 2.0, 4.0, missed=1)
    mean = _mean_of([first, second])
    assert mean["last_started_s"] == pytest.approx(22.0)
    assert mean["last_ended_s"] == pytest.approx(23.0)
    assert mean["cpu_ms_per_run"] == pytest.approx({"worker_pool": 2.5, "machine": 5.0})
    assert (mean["runs"], mean["missed"], mean["doubled"]) == (20, 1, 0)  # a round's miss is not averaged away
    assert mean["rounds"] == [first, second]


def test_a_code_run_once_is_its_round():
    only = round_of(20.0, 3.0, 6.0)
    assert _mean_of([only]) is only
