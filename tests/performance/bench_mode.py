"""Whether this run measures speed (``--benchmark-enable``, as ``make bench`` runs it).

The README's test command runs with benchmarks disabled: the performance tests then check only
behaviour (nothing lost, every order acknowledged, every kill latched) on a short run, because
the CI box is shared and a wall-clock figure there says more about the neighbours than the code.
With ``--benchmark-enable`` they run longer and print the figures with a verdict each; only with
``CRYPTOJ_BENCH_STRICT=1`` (a quiet machine) does a missed target fail the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

# Fail a benchmark whose figure misses its target (else the verdict is printed only).
STRICT = os.environ.get("CRYPTOJ_BENCH_STRICT") == "1"


def benchmarks_enabled(config: pytest.Config) -> bool:
    """pytest-benchmark's switch: ``--benchmark-enable`` wins over the default disable."""
    return bool(config.getoption("benchmark_enable")) or not config.getoption("benchmark_disable")


@dataclass(frozen=True)
class Verdict:
    """A benchmark figure against its target: the report line, and whether it was met."""

    line: str
    met: bool

    def __str__(self) -> str:
        return self.line


def verdict(name: str, value: float, target: float, unit: str) -> Verdict:
    """One line of a benchmark's report: the figure against its target (at most)."""
    met = value <= target
    status = "PASS" if met else "FAIL"
    return Verdict(f"  {status}  {name}: {value:,.2f} {unit} (target <= {target:g} {unit})", met)


def floor_verdict(name: str, value: float, floor: float, unit: str) -> Verdict:
    """One line of a benchmark's report for a figure that must reach ``floor``."""
    met = value >= floor
    status = "PASS" if met else "FAIL"
    return Verdict(f"  {status}  {name}: {value:,.0f} {unit} (target >= {floor:,.0f} {unit})", met)


def hold_to_targets(*verdicts: Verdict) -> None:
    """The one place a missed speed target fails a run: only with ``CRYPTOJ_BENCH_STRICT=1``
    (a quiet machine); otherwise the printed verdicts are the report."""
    missed = [verdict.line for verdict in verdicts if not verdict.met]
    if STRICT and missed:
        pytest.fail("speed targets missed:\n" + "\n".join(missed))
