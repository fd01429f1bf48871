"""Tests for core.replay.ReplayFeed: a recording through the live on_frame path."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import orjson
import pytest

from core.book import BookDepth
from core.clock import ManualClock
from core.coinbase.stream import ConnectionControl
from core.config import Mode, load_settings
from core.engine import MAINTENANCE_PERIOD_S, Engine
from core.feed_state import BookStatus
from core.headless import run_headless
from core.market import MarketDataService
from core.replay import ReplayControl, ReplayFeed
from core.synthetic_l2 import SyntheticL2Config, write_l2_recording
from cryptoj_tui.console import fresh_demo_journal


class SinkLog:
    """A FrameSink that records every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_connected(self, control: ConnectionControl) -> None:
        self.calls.append(("connected", control.name))

    def on_frame(self, frame: str | bytes) -> None:
        self.calls.append(("frame", frame))

    def on_disconnected(self, reason: str) -> None:
        self.calls.append(("disconnected", reason))


class SleepLog:
    """An injectable async sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def envelope(seq: int, timestamp: str | None) -> bytes:
    body: dict[str, object] = {
        "channel": "heartbeats",
        "sequence_num": seq,
        "events": [{"heartbeat_counter": seq}],
    }
    if timestamp is not None:
        body["timestamp"] = timestamp
    return orjson.dumps(body)


@pytest.fixture
def timed_file(tmp_path: Path) -> Path:
    """Four heartbeat frames at t=0, 0.5 s, (no timestamp), 2.0 s, with a blank line and CRLF."""
    lines = [
        envelope(0, "2026-01-01T00:00:00Z"),
        envelope(1, "2026-01-01T00:00:00.500Z"),
        b"",
        envelope(2, None),
        envelope(3, "2026-01-01T00:00:02Z"),
    ]
    path = tmp_path / "timed.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    return path


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """A synthetic two-product level2 recording (300 update messages, seed 3)."""
    path = tmp_path / "l2.jsonl"
    write_l2_recording(
        path,
        SyntheticL2Config(
            messages=300, seed=3, products=("BTC-USD", "ETH-USD"), levels_per_side=50
        ),
    )
    return path


async def test_fast_pace_sends_every_line_and_yields(timed_file: Path) -> None:
    sink, sleep = SinkLog(), SleepLog()
    result = await ReplayFeed(timed_file, sink, pace="fast", yield_every=2, sleep=sleep).run()
    assert result.frames == 4
    assert result.recorded_span_s == 0.0
    assert sink.calls[0] == ("connected", "replay")
    frames = [frame for kind, frame in sink.calls if kind == "frame"]
    assert frames[0] == envelope(0, "2026-01-01T00:00:00Z")  # CRLF stripped
    assert len(frames) == 4
    assert sink.calls[-1] == ("disconnected", "replay finished")
    assert sleep.delays == [0, 0]  # after lines 2 and 4


async def test_recorded_pace_sleeps_by_timestamp_deltas(timed_file: Path) -> None:
    sink, sleep = SinkLog(), SleepLog()
    feed = ReplayFeed(
        timed_file, sink, pace="recorded", speed=2.0, sleep=sleep, disconnect_at_end=False
    )
    result = await feed.run()
    assert sleep.delays == pytest.approx([0.25, 0.75])  # 0.5 s and 1.5 s at double speed
    assert result.recorded_span_s == pytest.approx(2.0)
    assert sink.calls[-1][0] == "frame"


def test_invalid_arguments(timed_file: Path) -> None:
    with pytest.raises(ValueError, match="pace"):
        ReplayFeed(timed_file, SinkLog(), pace="slow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed(timed_file, SinkLog(), speed=0)
    with pytest.raises(ValueError, match="yield_every"):
        ReplayFeed(timed_file, SinkLog(), yield_every=0)


def test_control_records_requests() -> None:
    control = ReplayControl()
    control.request_reconnect("gap")
    control.request_resubscribe("level2", ["BTC-USD"])
    assert control.reconnect_requests == ["gap"]
    assert control.resubscribe_requests == [("level2", ("BTC-USD",))]


async def test_replay_drives_the_market_data_service(recording: Path) -> None:
    service = MarketDataService(["BTC-USD", "ETH-USD"], clock=ManualClock())
    books: dict[str, tuple[int, BookStatus]] = {}

    class Spy:
        """Forwards to the service and keeps each book's state just before the end."""

        def on_connected(self, control: ConnectionControl) -> None:
            service.on_connected(control)

        def on_frame(self, frame: str | bytes) -> None:
            service.on_frame(frame)
            for p in service.product_ids:
                books[p] = (service.book(p).depth.bids, service.health(p).state)

        def on_disconnected(self, reason: str) -> None:
            service.on_disconnected(reason)

    feed = ReplayFeed(recording, Spy(), sleep=SleepLog())
    result = await feed.run()
    assert result.frames == service.stats.messages
    assert service.stats.gaps == 0
    assert service.bad_input.total == 0
    assert feed.control.reconnect_requests == []
    for p in ("BTC-USD", "ETH-USD"):
        depth, state = books[p]
        assert state is BookStatus.LIVE and depth > 0
        # The end of a file is a disconnect: books are dropped, never left looking live.
        assert service.health(p).state is BookStatus.STALE
        assert service.book(p).depth == BookDepth(0, 0)


async def test_a_gap_in_a_file_is_recorded_not_acted_on(tmp_path: Path) -> None:
    path = tmp_path / "gap.jsonl"
    path.write_bytes(envelope(0, None) + b"\n" + envelope(5, None) + b"\n")
    service = MarketDataService(["BTC-USD"], clock=ManualClock())
    feed = ReplayFeed(path, service, sleep=SleepLog())
    await feed.run()
    assert service.stats.gaps == 1
    assert len(feed.control.reconnect_requests) == 1


async def test_without_a_disconnect_at_the_end_the_books_stay_as_they_were(
    recording: Path,
) -> None:
    service = MarketDataService(["BTC-USD", "ETH-USD"], clock=ManualClock())
    await ReplayFeed(recording, service, sleep=SleepLog(), disconnect_at_end=False).run()
    for product_id in ("BTC-USD", "ETH-USD"):
        assert service.health(product_id).state is BookStatus.LIVE
        assert service.book(product_id).depth.bids > 0


# ---------------------------------------------------------------------------- end of a replay


def _replay_engine(data_dir: Path, recording: Path, clock: ManualClock) -> Engine:
    settings = load_settings(
        None,
        overrides={
            "market": {"products": ["BTC-USD", "ETH-USD"]},
            "storage": {"data_dir": str(data_dir)},
        },
        environ={"HOME": "/nonexistent-home"},
    )

    def feed(market: MarketDataService) -> asyncio.Task[None]:
        async def replay() -> None:
            await ReplayFeed(recording, market, disconnect_at_end=False).run()

        return asyncio.create_task(replay())

    return Engine(
        settings,
        None,
        clock=clock,
        mode="replay",
        journal_file=data_dir / "journal-replay.sqlite3",
        market_feed=feed,
    )


async def test_the_end_of_a_replay_is_finished_not_stale_and_never_halts(
    tmp_path: Path, recording: Path
) -> None:
    clock = ManualClock()
    engine = _replay_engine(tmp_path, recording, clock)
    task = asyncio.create_task(engine.run())
    try:
        await asyncio.wait_for(engine.feed_finished.wait(), 20)
        # Long after the last frame: far beyond every staleness limit and trigger delay.
        for _ in range(4):
            clock.advance(600)
            await asyncio.sleep(MAINTENANCE_PERIOD_S * 2)
        snapshot = engine.snapshot("BTC-USD")
        assert snapshot.trading is not None and snapshot.trading.state == "ACTIVE"
        assert snapshot.book.status is BookStatus.LIVE
        assert snapshot.book.status_reason == "replay finished"
        texts = [event.text for event in snapshot.events]
        assert any(text.startswith("replay finished") for text in texts)
        assert not any("STALE" in text or "HALTED" in text for text in texts)
    finally:
        await engine.stop()
        await asyncio.wait_for(task, 15)


async def test_headless_replay_exits_0_at_the_end_of_the_file(
    tmp_path: Path, recording: Path
) -> None:
    out = io.StringIO()
    engine = _replay_engine(tmp_path, recording, ManualClock())
    code = await asyncio.wait_for(run_headless(engine, out=out, stop_signals=()), 30)
    assert code == 0
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert lines[-1] == {"ts": lines[-1]["ts"], "kind": "stop", "exit_code": 0}
    assert any(
        line["kind"] == "log" and line["text"].startswith("replay finished") for line in lines
    )


def test_each_replay_starts_with_a_fresh_journal(tmp_path: Path) -> None:
    settings = load_settings(
        None, overrides={"storage": {"data_dir": str(tmp_path)}}, environ={"HOME": "/none"}
    )
    old = tmp_path / "journal-replay.sqlite3"
    old.write_bytes(b"a HALT stored by the previous replay")
    path = fresh_demo_journal(settings, Mode.REPLAY)
    assert path == old and not path.exists()
    assert (tmp_path / "journal-replay.prev.sqlite3").read_bytes().startswith(b"a HALT")
