"""Whether this run measures speed (``--benchmark-enable``, as ``make bench`` runs it).

The README's test command runs with benchmarks disabled: the performance tests then check only
behaviour (nothing lost, every order acknowledged, every kill latched) on a short run, because
the CI box is shared and a wall-clock figure there says more about the neighbours than the code.
With ``--benchmark-enable`` they run longer and print the figures with a verdict each; only with
``CRYPTOJ_BENCH_STRICT=1`` (a quiet machine) does a missed target fail the run.
"""

from __future__ import annotations

import os

import pytest

# Fail a benchmark whose figure misses its target (else the verdict is printed only).
STRICT = os.environ.get("CRYPTOJ_BENCH_STRICT") == "1"


def benchmarks_enabled(config: pytest.Config) -> bool:
    """pytest-benchmark's switch: ``--benchmark-enable`` wins over the default disable."""
    return bool(config.getoption("benchmark_enable")) or not config.getoption("benchmark_disable")


def verdict(name: str, value: float, target: float, unit: str) -> str:
    """One line of a benchmark's report: the figure against its target."""
    status = "PASS" if value <= target else "FAIL"
    return f"  {status}  {name}: {value:,.2f} {unit} (target <= {target:g} {unit})"


def floor_verdict(name: str, value: float, floor: float, unit: str) -> str:
    """One line of a benchmark's report for a figure that must reach ``floor``."""
    status = "PASS" if value >= floor else "FAIL"
    return f"  {status}  {name}: {value:,.0f} {unit} (target >= {floor:,.0f} {unit})"
