"""Where a frame of the console goes: the console's benchmark load (the real engine and App,
160x48, the sim in its own process streaming ``--rate`` level2 updates/s), with wall-clock
stamps around each part of a frame.

Printed, each as p50 / p99 / max in ms over the measured seconds:

- the engine loop lag (a 2 ms sleeper on the shared loop, as the benchmark measures it);
- the snapshot pull: ``engine.snapshot()``, and ``MainScreen.show_snapshot`` with each panel's
  update inside it;
- the screen repaint (Textual's update timer), and inside it the compositor's render and each
  widget class's ``render_lines``, and the driver write;
- the garbage collector's pauses by generation;
- every loop callback longer than ``--long-ms`` (what it was; ``--timeline``: each, when);
- the process's resident memory every 10 s of the measured seconds.

``--settle 0`` measures from the first LIVE book on, as the benchmark does (its first second
holds the panels' first arrivals).

``--cprofile`` adds a cProfile of the measured seconds. This is a diagnosis tool (it wraps
Textual's and the App's methods, which costs a little); the benchmark's figures are from
``tests/performance/test_console_benchmark.py``.

Run: ``python scripts/profile_console_frames.py --seconds 5``
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# The repository's root (for ``tests``): this script's, or CRYPTOJ_REPO to profile another
# checkout with the same script (e.g. before/after a change).
REPO = Path(os.environ.get("CRYPTOJ_REPO") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(REPO))

from textual._compositor import Compositor  # noqa: E402
from textual.screen import Screen  # noqa: E402

from core.clock import SystemClock  # noqa: E402
from core.config import SimSettings  # noqa: E402
from core.engine import Engine  # noqa: E402
from core.sim.launcher import start_sim_process  # noqa: E402
from core.snapshot import BookStatus  # noqa: E402
from cryptoj_tui.app import CryptoJApp  # noqa: E402
from cryptoj_tui.screens.main import MainScreen  # noqa: E402
from tests.integration.engine_harness import demo_engine  # noqa: E402
from widgets import (  # noqa: E402
    BalancesPanel,
    EventLog,
    OpenOrdersTable,
    OrderBookLadder,
    PositionsPanel,
    PriceChart,
    RiskGauges,
    StatusBar,
    TradesTape,
    TradingBanner,
)


class Stamps:
    """Durations (ms) by name, recorded only while ``on``."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.on = False
        self.long_callbacks: list[tuple[float, str, float]] = []
        self.started = 0.0  # when ``on`` was last set (perf_counter)

    def add(self, name: str, ms: float) -> None:
        if self.on:
            self.values.setdefault(name, []).append(ms)

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(name, (time.perf_counter() - started) * 1000)

        setattr(owner, attribute, timed)


def resident_kib() -> int:
    """This process's resident memory (Linux), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def instrument(stamps: Stamps, long_ms: float) -> None:
    stamps.wrap(Engine, "snapshot", "pull: engine.snapshot")
    stamps.wrap(MainScreen, "show_snapshot", "pull: show_snapshot (all panels)")
    for panel, method in (
        (OrderBookLadder, "update_book"),
        (StatusBar, "update_status"),
        (TradingBanner, "update_trading"),
        (TradesTape, "update_tape"),
        (EventLog, "update_events"),
        (PriceChart, "update_chart"),
        (PositionsPanel, "update_positions"),
        (BalancesPanel, "update_balances"),
        (OpenOrdersTable, "update_orders"),
        (RiskGauges, "update_gauges"),
    ):
        stamps.wrap(panel, method, f"pull:   {panel.__name__}.{method}")
    stamps.wrap(Screen, "_on_timer_update", "repaint (screen update timer)")
    stamps.wrap(Compositor, "render_update", "repaint:   compositor render")
    stamps.wrap(Screen, "_refresh_layout", "repaint:   layout pass")
    stamps.wrap(CryptoJApp, "_display", "repaint:   driver write")
    for widget in (
        OrderBookLadder,
        TradesTape,
        PriceChart,
        PositionsPanel,
        RiskGauges,
        StatusBar,
        BalancesPanel,
        OpenOrdersTable,
        EventLog,
        TradingBanner,
    ):
        # Set on the class itself: a super() call inside reaches the unwrapped parent.
        stamps.wrap(widget, "render_lines", f"repaint:     {widget.__name__}.render_lines")
    paused: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            if info["generation"] == 2 and stamps.on:
                # How many objects the full collection scans (counted outside its pause).
                stamps.add("gc gen2 objects (thousands)", len(gc.get_objects(2)) / 1000)
            paused["at"] = time.perf_counter()
        else:
            stamps.add(f"gc gen{info['generation']}", (time.perf_counter() - paused["at"]) * 1000)
            if info["generation"] == 2:
                stamps.add("gc gen2 freed (thousands)", info["collected"] / 1000)
                if os.environ.get("GC_TYPES") and stamps.on:
                    kinds = Counter(type(o).__name__ for o in gc.get_objects(2))
                    print("gen2 after:", kinds.most_common(12))

    gc.callbacks.append(on_gc)
    run = asyncio.events.Handle._run

    def timed_run(handle: asyncio.events.Handle) -> None:
        started = time.perf_counter()
        run(handle)
        took = (time.perf_counter() - started) * 1000
        if stamps.on and took > long_ms:
            callback = handle._callback  # type: ignore[attr-defined]
            owner = getattr(callback, "__self__", callback)
            what = repr(owner)
            if isinstance(owner, asyncio.Task):  # its coroutine says what it is
                coro = owner.get_coro()
                what = f"Task {owner.get_name()} {getattr(coro, '__qualname__', coro)}"
            at = started - stamps.started
            stamps.long_callbacks.append((took, what.split(" coro=")[0][:80], at))

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]


async def measure(args: argparse.Namespace, stamps: Stamps) -> list[float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        start_sim_process(SimSettings(seed=11, rate=args.rate)) as sim,
    ):
        clock = SystemClock()
        products = ["BTC-USD", "ETH-USD", "SOL-USD"]
        engine = demo_engine(sim.endpoints, Path(tmp), products, clock)
        app = CryptoJApp(engine, mode="demo", products=engine.products, clock=clock)
        app.animation_level = "none"
        lags: list[float] = []
        async with app.run_test(size=(160, 48)):
            started = time.perf_counter()
            while True:
                book = app.main_screen.ladder.book
                if book is not None and book.status is BookStatus.LIVE and book.bids:
                    break
                if time.perf_counter() - started > 15:
                    raise SystemExit("no live book after 15 s")
                await asyncio.sleep(0.01)
            await asyncio.sleep(args.settle)  # past the start-up frames (0: as the benchmark)
            stop = asyncio.Event()

            async def sample() -> None:
                while not stop.is_set():
                    asleep = time.perf_counter()
                    await asyncio.sleep(0.002)
                    lags.append(max(0.0, time.perf_counter() - asleep - 0.002) * 1000)

            sampler = asyncio.create_task(sample())
            profile = cProfile.Profile() if args.cprofile else None
            stamps.on = True
            stamps.started = time.perf_counter()
            if profile is not None:
                profile.enable()
            rss: list[tuple[float, int]] = []
            measured_from = time.perf_counter()
            while (elapsed := time.perf_counter() - measured_from) < args.seconds:
                rss.append((elapsed, resident_kib()))
                await asyncio.sleep(min(10.0, args.seconds - elapsed))
            rss.append((time.perf_counter() - measured_from, resident_kib()))
            if profile is not None:
                profile.disable()
            stamps.on = False
            stop.set()
            await sampler
        print(
            "resident memory: " + ", ".join(f"{at:.0f} s {kib / 1024:.1f} MiB" for at, kib in rss)
        )
        if profile is not None:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(50)
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=5000.0, help="level2 updates/s")
    parser.add_argument("--long-ms", type=float, default=4.0, help="report callbacks this long")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds after the first LIVE book (0: as the benchmark)",
    )
    parser.add_argument("--timeline", action="store_true", help="list each long callback, when")
    args = parser.parse_args()
    stamps = Stamps()
    instrument(stamps, args.long_ms)
    lags = asyncio.run(measure(args, stamps))
    print(
        f"\nloop lag: p50 {quantile(lags, 0.5):.2f} p99 {quantile(lags, 0.99):.2f}"
        f" max {max(lags):.1f} ms over {len(lags)} samples"
    )
    print(f"{'part':48s} {'n':>5s} {'p50':>7s} {'p99':>7s} {'max':>7s}  (ms)")
    for name in sorted(stamps.values, key=lambda n: (n.split(":")[0], n)):
        values = stamps.values[name]
        print(
            f"{name:48s} {len(values):5d} {quantile(values, 0.5):7.3f}"
            f" {quantile(values, 0.99):7.3f} {max(values):7.2f}"
        )
    kinds = Counter(what for _, what, _ in stamps.long_callbacks)
    print(f"loop callbacks longer than {args.long_ms:g} ms: {len(stamps.long_callbacks)}")
    for what, count in kinds.most_common(8):
        took = [ms for ms, name, _ in stamps.long_callbacks if name == what]
        print(f"  {count:4d}  max {max(took):6.1f} ms  {what}")
    if args.timeline:
        for took, what, at in stamps.long_callbacks:
            print(f"  at {at:6.3f} s  {took:6.1f} ms  {what}")


if __name__ == "__main__":
    main()
