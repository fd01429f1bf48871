"""The benchmarks' verdicts: a missed target fails a run only under CRYPTOJ_BENCH_STRICT=1."""

from __future__ import annotations

import pytest

from tests.performance import bench_mode
from tests.performance.bench_mode import floor_verdict, hold_to_targets, verdict


def test_a_verdict_reads_pass_or_fail_against_its_target() -> None:
    assert verdict("lag", 4.0, 5.0, "ms").met
    assert str(verdict("lag", 6.0, 5.0, "ms")).startswith("  FAIL  lag: 6.00 ms")
    assert floor_verdict("rate", 5000, 3000, "per s").met
    assert not floor_verdict("rate", 2000, 3000, "per s").met


def test_a_miss_only_prints_unless_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_mode, "STRICT", False)
    hold_to_targets(verdict("lag", 6.0, 5.0, "ms"))  # no failure: the line is the report


def test_a_miss_fails_a_strict_run_and_names_the_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_mode, "STRICT", True)
    hold_to_targets(verdict("lag", 4.0, 5.0, "ms"))  # met: nothing happens
    with pytest.raises(pytest.fail.Exception, match="FAIL  kill p99"):
        hold_to_targets(verdict("lag", 4.0, 5.0, "ms"), verdict("kill p99", 9.0, 5.0, "ms"))
