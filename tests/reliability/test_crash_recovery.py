"""Crash recovery (CI): kill -9 the engine's process before an order's request, after it,
after its acknowledgement and between two of its fills; after each restart on the same
journal, reconciliation arrives at the exchange's state with nothing lost or doubled (see
``tests/reliability/crash_recovery.py``; ``scripts/soak.py --crash-cycles N`` runs many).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from core.clock import ManualClock
from core.journal import Journal
from tests.reliability.crash_child import CRASH_POINTS, JOURNAL_NAME
from tests.reliability.crash_recovery import CrashConfig, run_crash_loop


async def test_kill_9_at_every_point_of_an_order_life_then_restart_recovers(
    tmp_path: Path,
) -> None:
    report = await run_crash_loop(CrashConfig(seed=11), tmp_path)
    print(report.table())
    assert report.ok, report.table()
    assert report.kills == Counter(dict.fromkeys(CRASH_POINTS, 1))
    # One restart after each crash, and the clean run at the end.
    assert report.restarts == len(CRASH_POINTS) + 1
    assert report.checks == report.restarts
    # Our orders but the one killed before its send, and the two market orders that filled
    # the between-fills one.
    assert report.orders == len(CRASH_POINTS) - 1 + 2
    assert report.fills == 4
    # Four kill -9 mid-write left a journal SQLite still finds whole.
    journal = Journal.open(tmp_path / JOURNAL_NAME, clock=ManualClock())
    try:
        assert journal.integrity_problems() == []
    finally:
        journal.close()


def test_the_long_run_draws_its_crash_points_from_the_seed() -> None:
    first = CrashConfig.random(seed=3, cycles=40)
    assert first == CrashConfig.random(seed=3, cycles=40)
    assert set(first.cycles) == set(CRASH_POINTS)
    assert first.cycles != CrashConfig.random(seed=4, cycles=40).cycles
