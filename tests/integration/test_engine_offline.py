"""The engine with the exchange unreachable (nothing listens on the port): it says so once,
plainly, with the retry count at 10 tries, and shows nothing of the account as known."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

import core.engine
from core.clock import SystemClock
from core.engine import Engine, ExchangeEndpoints
from core.headless import run_headless
from tests.integration.engine_harness import eventually, proof_settings

STOP = signal.SIGUSR2  # SIGUSR1 is the headless kill switch


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_offline_says_cannot_reach_once_and_knows_nothing_of_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.engine, "PRODUCTS_RETRY_S", 0.01)  # many tries in little time
    port = free_port()
    endpoints = ExchangeEndpoints(
        f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", f"ws://127.0.0.1:{port}/u", None
    )
    settings = proof_settings(tmp_path)
    engine = Engine(
        settings,
        endpoints,
        clock=SystemClock(),
        mode="paper",
        journal_file=tmp_path / "journal.sqlite3",
    )
    task = asyncio.create_task(engine.run())
    try:

        def texts() -> list[str]:
            return [event.text for event in engine.snapshot().events]

        await eventually(lambda: any("still cannot reach" in text for text in texts()), 30)
        said = [text for text in texts() if "cannot reach" in text]
        assert said[0].startswith("cannot reach 127.0.0.1 (")
        assert "retrying, nothing can trade until it answers" in said[0]
        assert said[1:] == ["still cannot reach 127.0.0.1: 10 tries"]

        snapshot = engine.snapshot()
        assert snapshot.positions is None
        assert snapshot.daily_pnl is None and snapshot.equity is None
        account = {"position", "gross_exposure", "daily_loss", "drawdown"}
        gauges = {gauge.name: gauge for gauge in snapshot.gauges}
        assert account <= set(gauges)
        assert all(gauges[name].used is None for name in account)
    finally:
        await engine.stop()
        await asyncio.wait_for(task, 15)


async def test_headless_prints_a_status_line_every_interval_with_unknowns_as_null(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.engine, "PRODUCTS_RETRY_S", 0.01)
    port = free_port()
    endpoints = ExchangeEndpoints(
        f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", f"ws://127.0.0.1:{port}/u", None
    )
    settings = proof_settings(tmp_path, headless={"status_interval_s": 0.05})
    engine = Engine(
        settings, endpoints, clock=SystemClock(), mode="paper", journal_file=tmp_path / "j.db"
    )
    out = io.StringIO()
    task = asyncio.create_task(run_headless(engine, out=out, stop_signals=(STOP,)))

    def statuses() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        return [line for line in lines if line["kind"] == "status"]

    await eventually(lambda: len(statuses()) >= 2, 30)
    os.kill(os.getpid(), STOP)
    assert await asyncio.wait_for(task, 30) == 0
    status = statuses()[0]
    assert set(status) == {
        "ts",
        "kind",
        "trading",
        "books",
        "connections",
        "open_orders",
        "equity",
        "daily_pnl",
    }
    assert status["trading"] == "ACTIVE"
    assert status["equity"] is None and status["daily_pnl"] is None  # offline: not known
    assert set(status["books"]) == set(engine.products)


def test_a_repeating_failure_is_said_once_then_at_10_and_100_tries(tmp_path: Path) -> None:
    engine = Engine(
        proof_settings(tmp_path),
        None,
        clock=SystemClock(),
        mode="paper",
        journal_file=tmp_path / "journal.sqlite3",
        market_feed=lambda market: None,
    )
    for _ in range(120):
        engine._note_failure("balances", "balances not refreshed (TRANSPORT); retrying")
    engine._note_recovery("balances", "balances refreshed")
    said = [event.text for event in engine.snapshot().events if "balances" in event.text]
    assert said == [
        "balances not refreshed (TRANSPORT); retrying",
        "balances not refreshed (TRANSPORT); retrying (10 tries)",
        "balances not refreshed (TRANSPORT); retrying (100 tries)",
        "balances refreshed after 120 failed tries",
    ]
    engine._note_recovery("balances", "balances refreshed")  # nothing failed: nothing said
    assert len([e for e in engine.snapshot().events if "balances" in e.text]) == 4
