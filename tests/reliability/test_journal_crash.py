"""kill -9 while the journal is being written: the reopened journal is whole and consistent.

A child process runs the order manager's write pattern in a loop (intent, send marker,
accepted, two fills and a replayed fill, filled) and reports each step on stdout only after
the write returned. The test SIGKILLs it at several points (the kill lands wherever the child
is by then, usually in the middle of a later write), reopens the journal and checks that:
nothing the child reported is missing, no order has a hole in its history (no send marker
without its intent, no fill without the acceptance before it, no second fill without the
first), no fill is doubled, SQLite's integrity and foreign-key checks pass, and the journal
can be written again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.journal import Journal
from core.journal_records import FillRecord
from core.model import Fill, IntentSource, OrderIntent, OrderSpec, OrderType, Side
from core.order_state import ManagedOrder, OrderState

REPO_ROOT = Path(__file__).resolve().parents[2]
LIFE = [OrderState.INITIALIZED, OrderState.SUBMITTED, OrderState.ACCEPTED, OrderState.FILLED]
HALF = Decimal("0.5")


def _intent() -> OrderIntent:
    spec = OrderSpec("BTC-USD", Side.BUY, OrderType.LIMIT, base_size=Decimal(1), limit_price=HALF)
    return OrderIntent(spec=spec, source=IntentSource.STRATEGY)


def _fill(coid: str, order_id: str, cumulative: Decimal) -> FillRecord:
    fill = Fill(
        trade_id=f"{order_id}:{cumulative}",
        order_id=order_id,
        product_id="BTC-USD",
        side=Side.BUY,
        price=Decimal(100),
        size=HALF,
        commission=Decimal("0.01"),
        trade_time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return FillRecord(coid, fill, Decimal(50), cumulative, None, external=False)


def child_main(path: str) -> None:
    """The writer the test kills: one order life after another, each step reported."""
    clock = ManualClock()
    journal = Journal.open(Path(path), clock=clock)
    for n in range(1, 1_000_000):
        coid, order_id = f"c{n}", f"ex-{n}"
        journal.record_intent(coid, _intent())
        _say("intent", n)
        order = ManagedOrder(
            client_order_id=coid,
            intent=_intent(),
            state=OrderState.SUBMITTED,
            created_at=clock.time(),
            updated_at=clock.time(),
        )
        journal.record_order_state(order, "sent")
        _say("sent", n)
        order.state, order.order_id = OrderState.ACCEPTED, order_id
        journal.record_order_state(order, "accepted")
        journal.record_fill(_fill(coid, order_id, HALF))
        journal.record_fill(_fill(coid, order_id, HALF))  # a replay: must be ignored
        journal.record_fill(_fill(coid, order_id, Decimal(1)))
        _say("filled", n)
        order.state = OrderState.FILLED
        journal.record_order_state(order, "filled")
        _say("done", n)
        clock.advance(0.001)


def _say(step: str, n: int) -> None:
    sys.stdout.write(f"{step} {n}\n")
    sys.stdout.flush()


@dataclass
class Reported:
    """What the child said it had written before it died."""

    steps: dict[str, int] = field(default_factory=dict)  # step -> highest order number


def run_and_kill(path: Path, kill_after: str) -> Reported:
    """Start the writer, SIGKILL it right after it reports ``kill_after`` (e.g. "sent 7")."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tests.reliability.test_journal_crash import child_main; "
            "child_main(sys.argv[1])",
            str(path),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reported = Reported()
    assert child.stdout is not None
    try:
        for line in child.stdout:
            step, number = line.split()
            reported.steps[step] = int(number)
            if line.strip() == kill_after:
                os.kill(child.pid, signal.SIGKILL)
                break
        else:  # pragma: no cover - only if the child dies on its own
            pytest.fail(f"writer exited early: {child.stderr.read() if child.stderr else ''}")
    finally:
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    return reported


@pytest.mark.parametrize("kill_after", ["intent 1", "sent 3", "filled 12", "done 40", "sent 57"])
def test_kill_9_while_writing_leaves_a_consistent_journal(tmp_path: Path, kill_after: str) -> None:
    path = tmp_path / "journal-live.sqlite3"
    reported = run_and_kill(path, kill_after)
    journal = Journal.open(path, clock=ManualClock())
    try:
        assert journal.integrity_problems() == []
        orders = _all_orders(journal)
        # Nothing reported as written is lost ...
        assert len(orders) >= reported.steps["intent"]
        for step, state in (("sent", OrderState.SUBMITTED), ("done", OrderState.FILLED)):
            for n in range(1, reported.steps.get(step, 0) + 1):
                assert state in [h.state for h in journal.order_history(f"c{n}")]
        for n in range(1, reported.steps.get("filled", 0) + 1):
            assert journal.fill_totals(f"c{n}").size == 1
        # ... no order has holes, and no fill is doubled.
        assert orders == [f"c{n}" for n in range(1, len(orders) + 1)]
        for coid in orders:
            _assert_whole(journal, coid)
        # Unfinished orders come back for the restart with their fills.
        for order in journal.load_orders():
            assert order.state is not OrderState.FILLED
            assert order.filled_size == journal.fill_totals(order.client_order_id).size
        # And the journal takes writes again.
        journal.record_intent("after-crash", _intent())
        assert journal.find_order(client_order_id="after-crash") is not None
    finally:
        journal.close()


def _all_orders(journal: Journal) -> list[str]:
    rows = journal._db.execute("SELECT client_order_id FROM intents ORDER BY rowid").fetchall()
    return [str(row[0]) for row in rows]


def _assert_whole(journal: Journal, coid: str) -> None:
    states = [h.state for h in journal.order_history(coid)]
    assert states == LIFE[: len(states)], (coid, states)  # the intent came before its send
    fills = journal.fills(coid)
    assert [f.cumulative_size for f in fills] == [HALF, Decimal(1)][: len(fills)], coid
    if fills:
        assert OrderState.ACCEPTED in states, coid
    if OrderState.FILLED in states:
        assert len(fills) == 2, coid
