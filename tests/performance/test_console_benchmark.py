"""The console under load, headless: the real engine and App against the simulated exchange
streaming level2 at 5,000 updates/s (in its own process, as in the demo).

Measured, from one run:

- start to first full paint: from starting the App to the first frame whose order book
  lines were drawn from a LIVE book (connect, subscribe, snapshot, reconcile, paint);
- engine loop lag while the UI refreshes: a sampler on the shared event loop asks to wake
  every 2 ms and records how late it wakes (what any engine callback would suffer);
- UI CPU per frame (``time.process_time``, less noisy than wall-clock figures on a shared
  box): the CPU spent pulling a snapshot and handing it to the panels (the App's timer tick)
  plus the CPU spent by Textual repainting the screen (``Screen._on_timer_update``), per
  frame, while the book streams;
- kill key to HALTED latched: a ctrl+k key event is handed to the driver from another
  thread at a due time, the way Textual's terminal reader does, and the time from then to the
  engine's latch (``KillProgress.halted_at``: the gate refuses from that moment) is recorded;
  between presses the state is put back to ACTIVE directly (a benchmark shortcut, not the
  trader's resume path) and the screen is let settle.

Targets (issue 11): loop lag p99 <= 5 ms and max <= 20 ms, kill p99 <= 5 ms, first paint
<= 2 s. In the test suite (benchmarks disabled) the run is short and only behaviour is checked:
a LIVE book on screen, every press latches HALTED. With ``--benchmark-enable`` (``make bench``)
it runs longer and prints the figures with a PASS/FAIL verdict against each target; with
``CRYPTOJ_BENCH_STRICT=1`` it also fails when a target is missed (for a quiet machine).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.screen import Screen

from core.clock import SystemClock
from core.config import SimSettings
from core.sim.launcher import start_sim_process
from core.sim.server import SimEndpoints
from core.snapshot import BookStatus
from core.trading_state import TradingState
from cryptoj_tui.app import CryptoJApp
from tests.integration.engine_harness import demo_engine
from tests.performance.bench_mode import benchmarks_enabled, hold_to_targets, verdict
from widgets.order_book import RowKind

RATE = 5000.0
# (benchmark run, test-suite run)
LAG_SECONDS = (3.0, 0.5)
LAG_INTERVAL_S = 0.002
KILL_PRESSES = (40, 5)
# Issue 11 targets, asserted with CRYPTOJ_BENCH_STRICT=1 only.
LOOP_LAG_P99_MS = 5.0
LOOP_LAG_MAX_MS = 20.0
KILL_P99_MS = 5.0
FIRST_PAINT_S = 2.0


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def ladder_painted(app: CryptoJApp) -> bool:
    """Whether the ladder has drawn level lines from a LIVE book (its line cache holds them)."""
    ladder = app.main_screen.ladder
    book = ladder.book
    if book is None or book.status is not BookStatus.LIVE or not book.bids:
        return False
    return any(
        row.kind is RowKind.BID and row.price is not None
        for row, _ in ladder._buffer.strips.values()
    )


async def sample_loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """How late the loop wakes a 2 ms sleeper, in ms, until ``stop``."""
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(LAG_INTERVAL_S)
        samples.append(max(0.0, time.perf_counter() - start - LAG_INTERVAL_S) * 1000)


class FrameCpu:
    """CPU time (process_time, ms) of each snapshot pull and each screen repaint."""

    def __init__(self) -> None:
        self.pulls: list[float] = []
        self.repaints: list[float] = []
        self.recording = False

    def wrap(self, monkeypatch: pytest.MonkeyPatch) -> None:
        repaint = Screen._on_timer_update
        pull = CryptoJApp.pull_tick

        def timed_repaint(screen: Screen[Any]) -> None:
            start = time.process_time()
            repaint(screen)
            if self.recording:
                self.repaints.append((time.process_time() - start) * 1000)

        def timed_pull(app: CryptoJApp) -> None:
            start = time.process_time()
            pull(app)
            if self.recording:
                self.pulls.append((time.process_time() - start) * 1000)

        monkeypatch.setattr(Screen, "_on_timer_update", timed_repaint)
        monkeypatch.setattr(CryptoJApp, "pull_tick", timed_pull)


def summary(values: list[float]) -> str:
    if len(values) < 2:
        return f"{len(values)} samples"
    return (
        f"mean {statistics.fmean(values):.2f} ms, p99 {p99(values):.2f} ms,"
        f" max {max(values):.2f} ms over {len(values)}"
    )


@pytest.fixture
def sim_endpoints() -> Iterator[SimEndpoints]:
    """The simulated exchange in a child process, streaming at 5,000 level2 updates/s."""
    with start_sim_process(SimSettings(seed=11, rate=RATE)) as sim:
        yield sim.endpoints


async def test_console_under_a_5000_updates_per_second_market(
    sim_endpoints: SimEndpoints,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    measuring = benchmarks_enabled(request.config)
    lag_seconds = LAG_SECONDS[0] if measuring else LAG_SECONDS[1]
    kill_presses = KILL_PRESSES[0] if measuring else KILL_PRESSES[1]
    frame_cpu = FrameCpu()
    frame_cpu.wrap(monkeypatch)
    clock = SystemClock()
    engine = demo_engine(sim_endpoints, tmp_path, ["BTC-USD", "ETH-USD", "SOL-USD"], clock)
    app = CryptoJApp(engine, mode="demo", products=engine.products, clock=clock)
    app.animation_level = "none"

    started = time.perf_counter()
    async with app.run_test(size=(160, 48)) as pilot:
        while not ladder_painted(app):
            assert time.perf_counter() - started < 15, "no live book on screen after 15 s"
            await asyncio.sleep(0.005)
        first_paint_s = time.perf_counter() - started
        await asyncio.wait_for(engine.started.wait(), 15)

        # Loop lag while the book streams and the UI refreshes at 10 Hz.
        lags: list[float] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_loop_lag(lags, stop))
        frame_cpu.recording = True
        cpu_started = time.process_time()
        await asyncio.sleep(lag_seconds)
        process_cpu_s = time.process_time() - cpu_started
        frame_cpu.recording = False
        shown_book = app.main_screen.ladder.book
        stop.set()
        await sampler

        # Kill key to HALTED latched, again and again, at random phases of the refresh. The
        # key comes from another thread, as from Textual's terminal reader: it is "typed" at
        # a due time, and the latch is when the gate starts refusing (``KillProgress.halted_at``,
        # monotonic). That includes the reader thread's wait for the interpreter while the
        # loop paints a frame, which is what a trader's key meets.
        returned: list[float] = []
        kill = engine.kill
        kill_seen = asyncio.Event()

        def timed_kill(cause: str = "kill switch", source: str = "user") -> Any:
            task = kill(cause, source)
            returned.append(time.monotonic())
            kill_seen.set()
            return task

        engine.kill = timed_kill  # type: ignore[method-assign]
        kills: list[float] = []
        returns: list[float] = []
        driver = app._driver
        assert driver is not None
        loop = asyncio.get_running_loop()

        def press_at(due: float, key: events.Key) -> None:
            """The terminal reader's side: wake at ``due`` and hand the key to the driver."""
            time.sleep(max(0.0, due - time.monotonic()))
            driver.send_message(key)

        for press in range(kill_presses):
            if app.kill_task is not None:  # each press starts a fresh cancel sequence
                await asyncio.wait_for(asyncio.shield(app.kill_task), 10)
            engine.trading_state.set(TradingState.ACTIVE, "benchmark reset", "user")
            # Let the screen take the reset in (the banner goes away) before the next press:
            # the press should meet the steady 10 Hz refresh, not the reset's own repaint.
            await pilot.pause()
            key = events.Key("ctrl+k", None)
            key.set_sender(app)
            kill_seen.clear()
            due = time.monotonic() + 0.013 * (press % 7) + 0.01
            reader = loop.run_in_executor(None, press_at, due, key)
            await asyncio.wait_for(kill_seen.wait(), 10)
            await reader
            assert engine.trading_state.state is TradingState.HALTED
            halted_at = engine.emergency.progress.halted_at
            assert halted_at is not None
            kills.append((halted_at - due) * 1000)
            returns.append((returned[press] - due) * 1000)
        if app.kill_task is not None:
            await asyncio.wait_for(asyncio.shield(app.kill_task), 10)
        await pilot.pause()

    lag_p99 = p99(lags)
    kill_p99 = p99(kills)
    first_paint = verdict("first paint", first_paint_s, FIRST_PAINT_S, "s")
    lag_p99_verdict = verdict("loop lag p99", lag_p99, LOOP_LAG_P99_MS, "ms")
    lag_max_verdict = verdict("loop lag max", max(lags), LOOP_LAG_MAX_MS, "ms")
    kill_verdict = verdict("kill p99", kill_p99, KILL_P99_MS, "ms")
    print(
        f"\nconsole at {RATE:,.0f} level2 updates/s, 160x48, 10 Hz refresh:"
        f"\n  start to first full paint  {first_paint_s * 1000:,.0f} ms"
        f" (target {FIRST_PAINT_S:g} s)"
        f"\n  engine loop lag            p50 {statistics.median(lags):.2f} ms,"
        f" p99 {lag_p99:.2f} ms, max {max(lags):.1f} ms over {len(lags)} samples"
        f" (target p99 {LOOP_LAG_P99_MS:g} ms, max {LOOP_LAG_MAX_MS:g} ms)"
        f"\n  UI CPU per snapshot pull   {summary(frame_cpu.pulls)}"
        f"\n  UI CPU per screen repaint  {summary(frame_cpu.repaints)}"
        f"\n  UI CPU per frame (sum)     "
        f"{(sum(frame_cpu.pulls) + sum(frame_cpu.repaints)) / max(1, len(frame_cpu.pulls)):.2f} ms"
        f" per pull; process CPU {process_cpu_s / lag_seconds * 100:.0f}% of a core"
        f" (engine + UI)"
        f"\n  kill key to HALTED latched p50 {statistics.median(kills):.2f} ms,"
        f" p99 {kill_p99:.2f} ms over {len(kills)} presses (target p99 {KILL_P99_MS:g} ms)"
        f"\n  kill key to kill() returned  p50 {statistics.median(returns):.2f} ms,"
        f" p99 {p99(returns):.2f} ms (on the loop: the sweep started, the banner due)"
        f"\n{first_paint}\n{lag_p99_verdict}\n{lag_max_verdict}\n{kill_verdict}"
    )
    assert shown_book is not None and shown_book.status is BookStatus.LIVE
    assert len(kills) == kill_presses  # every press latched HALTED (asserted per press above)
    if measuring:  # speed is the benchmark's business, not the test suite's
        hold_to_targets(first_paint, lag_p99_verdict, lag_max_verdict, kill_verdict)
