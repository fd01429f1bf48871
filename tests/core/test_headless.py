"""``core.headless``: the JSON lines and the exit paths, with a paper-mode engine in process.

The paper engine needs no network: its venue fills on the (here empty) book and its stream is
always up, so it reconciles and starts at once. A real signal sent to this process stops
``run_headless``. The demo path against the simulated exchange (a child process, SIGTERM,
orders cancelled at the exchange) is tests/integration/test_headless.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import Iterator
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from core.clock import ManualClock
from core.config import load_settings
from core.engine import Engine
from core.headless import JsonLineWriter, OrderEventWriter, run_headless
from core.journal import JournalLocked
from core.model import ExchangeOrder, Fill, Side
from core.orders import FillEvent

D = Decimal
WAIT_S = 10.0
STOP = signal.SIGUSR2  # SIGUSR1 is the kill switch


@pytest.fixture
def engine(tmp_path: Path, clock: ManualClock) -> Iterator[Engine]:
    """A paper-mode engine with no market feed and its journal in a temp dir."""
    settings = load_settings(
        None,
        overrides={"mode": "paper", "storage": {"data_dir": str(tmp_path)}},
        environ={"HOME": "/nonexistent-home"},
    )
    yield Engine(
        settings,
        None,
        clock=clock,
        mode="paper",
        journal_file=tmp_path / "journal-paper.sqlite3",
        market_feed=lambda market: None,
    )


async def _halted(engine: Engine) -> None:
    while engine.trading_state.state.value != "HALTED":  # noqa: ASYNC110 - a signal, no event
        await asyncio.sleep(0.01)


class Colour(Enum):
    RED = "red"


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def run_until_started(engine: Engine, out: io.StringIO, **options: Any) -> asyncio.Task[int]:
    task = asyncio.create_task(run_headless(engine, out=out, stop_signals=(STOP,), **options))
    await asyncio.wait_for(engine.started.wait(), WAIT_S)
    return task


class TestJsonLines:
    def test_money_is_exact_text_and_enums_their_value(self, clock: ManualClock) -> None:
        out = io.StringIO()
        writer = JsonLineWriter(out, clock)
        writer.write("x", price=Decimal("68010.50"), size=Decimal("1E-8"), colour=Colour.RED)
        [line] = records(out)
        assert line == {
            "ts": "2026-01-01T00:00:00.000+00:00",
            "kind": "x",
            "price": "68010.50",
            "size": "0.00000001",
            "colour": "red",
        }

    def test_a_fill_line_has_its_stable_keys(self, clock: ManualClock) -> None:
        out = io.StringIO()
        fill = Fill("t-1", "o-1", "BTC-USD", Side.BUY, D("68000"), D("0.25"), D("102"))
        OrderEventWriter(JsonLineWriter(out, clock)).on_fill(FillEvent(fill, "c-1", False))
        [line] = records(out)
        assert line == {
            "ts": "2026-01-01T00:00:00.000+00:00",
            "kind": "fill",
            "client_order_id": "c-1",
            "order_id": "o-1",
            "trade_id": "t-1",
            "product_id": "BTC-USD",
            "side": "BUY",
            "price": "68000",
            "size": "0.25",
            "commission": "102",
            "liquidity": "UNKNOWN_LIQUIDITY_INDICATOR",
            "external": False,
        }

    def test_something_not_serialisable_is_a_programming_error(self, clock: ManualClock) -> None:
        with pytest.raises(TypeError, match="ExchangeOrder"):
            JsonLineWriter(io.StringIO(), clock).write("x", order=object.__new__(ExchangeOrder))

    def test_a_closed_output_stops_the_writing_not_the_caller(self, clock: ManualClock) -> None:
        out = io.StringIO()
        out.close()
        writer = JsonLineWriter(out, clock)
        writer.write("start")
        writer.write("stop")  # silently dropped


class TestRun:
    async def test_signal_stops_with_exit_0_and_the_lines_say_what_happened(
        self, engine: Engine
    ) -> None:
        out = io.StringIO()
        task = await run_until_started(engine, out)
        kill = engine.kill("headless test", "user")
        await kill
        await asyncio.sleep(0.3)  # let a poll see the finished sequence
        os.kill(os.getpid(), STOP)
        assert await asyncio.wait_for(task, WAIT_S) == 0
        lines = records(out)
        kinds = [line["kind"] for line in lines]
        assert kinds[0] == "start" and kinds[-1] == "stop"
        assert lines[0]["mode"] == "paper" and lines[-1]["exit_code"] == 0
        halted = [r for r in lines if r["kind"] == "trading_state" and r["state"] == "HALTED"]
        assert halted and halted[0]["cause"] == "headless test"
        done = [r for r in lines if r["kind"] == "kill_progress" and r["phase"] == "DONE"]
        assert done and done[0]["still_open"] == 0 and done[0]["took_ms"] is not None
        [stopping] = [r for r in lines if r["kind"] == "stopping"]
        assert stopping["signal"] == STOP.name
        [exit_cancel] = [r for r in lines if r["kind"] == "exit_cancel"]
        assert exit_cancel["confirmed"] is True and exit_cancel["still_open"] == 0

    async def test_sigusr1_is_the_kill_switch_and_the_process_keeps_running_halted(
        self, engine: Engine
    ) -> None:
        out = io.StringIO()
        task = await run_until_started(engine, out)
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(_halted(engine), WAIT_S)
        kill = engine.emergency._kill_task
        assert kill is not None
        assert (await asyncio.wait_for(kill, WAIT_S)).phase.value == "DONE"
        assert not task.done()  # still running, HALTED, until stopped
        os.kill(os.getpid(), STOP)
        assert await asyncio.wait_for(task, WAIT_S) == 0
        kinds = [line["kind"] for line in records(out)]
        assert "kill_signal" in kinds

    async def test_orders_still_open_after_the_bound_exit_1(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        out = io.StringIO()
        task = await run_until_started(engine, out, exit_timeout_s=0.3)

        async def venue_down(product_ids: Any = None) -> list[ExchangeOrder]:
            raise ConnectionError("venue unreachable")

        monkeypatch.setattr(engine.venue, "list_open_orders", venue_down)
        os.kill(os.getpid(), STOP)
        assert await asyncio.wait_for(task, WAIT_S) == 1
        [exit_cancel] = [r for r in records(out) if r["kind"] == "exit_cancel"]
        assert exit_cancel["confirmed"] is False and exit_cancel["still_open"] is None
        assert exit_cancel["rounds"] >= 1
        assert records(out)[-1] == {**records(out)[-1], "kind": "stop", "exit_code": 1}

    async def test_an_engine_that_ends_on_its_own_exits_1(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def broken_run() -> None:
            raise RuntimeError("journal locked")

        monkeypatch.setattr(engine, "run", broken_run)
        out = io.StringIO()
        code = await asyncio.wait_for(
            run_headless(engine, out=out, stop_signals=(STOP,), cancel_on_exit=True), WAIT_S
        )
        assert code == 1
        errors = [r for r in records(out) if r["kind"] == "log" and r["level"] == "error"]
        assert errors and "journal locked" in errors[0]["text"]
        assert not any(r["kind"] == "exit_cancel" for r in records(out))


class TestOneEnginePerJournal:
    def test_a_second_engine_on_the_same_journal_is_refused_with_one_line(
        self, engine: Engine, tmp_path: Path, clock: ManualClock
    ) -> None:
        """Issue 9 §5: two sessions on one journal cancelled each other's quotes."""
        settings = engine.settings
        with pytest.raises(JournalLocked) as refused:
            Engine(
                settings,
                None,
                clock=clock,
                mode="paper",
                journal_file=tmp_path / "journal-paper.sqlite3",
                market_feed=lambda market: None,
            )
        message = str(refused.value)
        assert "\n" not in message and "in use by another CryptoJ session" in message
        assert refused.value.exit_code == 2

    async def test_the_lock_goes_with_the_engine(
        self, engine: Engine, tmp_path: Path, clock: ManualClock
    ) -> None:
        task = asyncio.create_task(engine.run())
        await asyncio.wait_for(engine.started.wait(), WAIT_S)
        await engine.stop()
        await asyncio.wait_for(task, WAIT_S)
        again = Engine(
            engine.settings,
            None,
            clock=clock,
            mode="paper",
            journal_file=tmp_path / "journal-paper.sqlite3",
            market_feed=lambda market: None,
        )
        again.journal.close()
        again._journal_lock.release()


class TestPaperLeftovers:
    async def test_orders_left_open_in_the_paper_journal_are_closed_at_start(
        self, engine: Engine, tmp_path: Path, clock: ManualClock
    ) -> None:
        """Issue 9 §5: the paper venue starts empty; an order journaled open by the last
        session made every later one refuse with RECONCILING."""
        from core.model import IntentSource, OrderIntent, OrderSpec, OrderType, Side

        spec = OrderSpec(
            "BTC-USD",
            Side.BUY,
            OrderType.LIMIT,
            base_size=Decimal("0.01"),
            limit_price=Decimal("100"),
        )
        engine.journal.record_intent("left-over", OrderIntent(spec, IntentSource.MANUAL))
        engine.journal.close()
        engine._journal_lock.release()
        later = Engine(
            engine.settings,
            None,
            clock=clock,
            mode="paper",
            journal_file=tmp_path / "journal-paper.sqlite3",
            market_feed=lambda market: None,
        )
        task = asyncio.create_task(later.run())
        await asyncio.wait_for(later.started.wait(), WAIT_S)
        left = later.orders.get("left-over")
        assert left is not None and left.state.value == "CANCELED"
        assert not later.orders.reconciling and later.orders.open_orders() == []
        assert any("closed as cancelled" in e.text for e in later.snapshot().events)
        await later.stop()
        await asyncio.wait_for(task, WAIT_S)
