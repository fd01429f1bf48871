"""Headless mode: the engine without the UI, reporting one JSON line per event.

``run_headless`` runs ``Engine.run()`` and writes each event as one JSON object on its own
line (JSON Lines), so a supervisor, ``jq`` or a log shipper can follow a session. Every line
has ``ts`` (UTC, RFC 3339 with milliseconds) and ``kind``; the other keys depend on the kind
and are stable:

==================  ====================================================================
kind                keys
==================  ====================================================================
``start``           mode, products, pid
``order``           client_order_id, order_id, product_id, side, order_type, state,
                    previous, cause, filled_size, average_price, total_fees, external,
                    source, strategy_id, reject_code
``denial``          client_order_id, product_id, side, order_type, reason, detail, source,
                    strategy_id
``fill``            client_order_id, order_id, trade_id, product_id, side, price, size,
                    commission, liquidity, external
``trading_state``   state, cause, source
``connection``      name, state, last_error
``book``            product_id, state, reason
``kill_progress``   phase, cause, rounds, cancels_sent, still_open, took_ms, error, waiting
``kill_signal``     signal (the kill switch was pressed from outside: SIGUSR1)
``log``             level, text (the engine's own event log, as the UI shows it)
``status``          trading, books, connections, open_orders, equity, daily_pnl (every
                    ``headless.status_interval_s`` seconds; "null" where not known)
``stopping``        signal
``exit_cancel``     rounds, cancels_sent, still_open, confirmed
``stop``            exit_code
==================  ====================================================================

Money and sizes are strings (exact decimals, never floats). Nothing secret is ever written:
no key, no token, no header; only order, market and engine state.

Order and fill events arrive from the order manager as they happen (``OrderListener``); the
rest (trading state, connections, books, kill progress, the event log) are read from the
engine a few times a second and written when they change.

SIGUSR1 (``kill_signals``) is the kill switch, as the console's key: HALTED at once, every
order the venue lists cancelled until none is open (``kill -USR1 <pid>``); the process keeps
running, HALTED, until it is stopped.

On SIGINT/SIGTERM (``stop_signals``): the strategy is paused so it sends nothing more; if
``cancel_on_exit`` (``settings.headless.cancel_open_orders_on_exit``) every open order is
cancelled and the venue is listed until none is open, within ``exit_timeout_s``; then the
engine stops and the function returns the exit code: 0, or 1 if orders were left open or
the engine failed. A replay (``--replay FILE --headless``) stops the same way at the end of
its file, with 0. The exit is bounded even when REST hangs: the engine gets
``exit_timeout_s`` more to shut down, then its task is cancelled and the function returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TextIO

from core.clock import Clock, SystemClock
from core.emergency import KillProgress
from core.engine import Engine
from core.order_state import OrderState
from core.orders import FillEvent, OrderEvent
from core.trading_state import KillPhase

log = logging.getLogger(__name__)

DEFAULT_STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
DEFAULT_KILL_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGUSR1,)
POLL_PERIOD_S = 0.1
EXIT_TIMEOUT_S = 10.0
EXIT_CANCEL_PAUSE_S = 0.1
EXIT_OK = 0
EXIT_TROUBLE = 1


class JsonLineWriter:
    """Writes events as JSON lines. A closed or broken output stops the writing, never the
    engine: the orders still have to be looked after."""

    def __init__(self, out: TextIO, clock: Clock) -> None:
        self._out = out
        self._clock = clock
        self._broken = False

    def write(self, kind: str, **fields: Any) -> None:
        if self._broken:
            return
        stamp = datetime.fromtimestamp(self._clock.time(), tz=UTC)
        record = {"ts": stamp.isoformat(timespec="milliseconds"), "kind": kind, **fields}
        line = json.dumps(record, default=_json_value, separators=(",", ":"))
        try:
            self._out.write(line + "\n")
            self._out.flush()
        except (OSError, ValueError) as exc:  # a closed pipe or file: keep trading safely
            self._broken = True
            log.warning("headless output closed (%r); events are no longer written", exc)


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class OrderEventWriter:
    """The order manager's listener: every order state change, denial and fill as a line."""

    def __init__(self, writer: JsonLineWriter) -> None:
        self._writer = writer

    def on_order_event(self, event: OrderEvent) -> None:
        order = event.order
        spec = order.intent.spec
        if order.state is OrderState.DENIED and order.denial is not None:
            self._writer.write(
                "denial",
                client_order_id=order.client_order_id,
                product_id=spec.product_id,
                side=spec.side,
                order_type=spec.order_type,
                reason=order.denial.reason,
                detail=order.denial.detail,
                source=order.intent.source,
                strategy_id=order.intent.strategy_id,
            )
            return
        self._writer.write(
            "order",
            client_order_id=order.client_order_id,
            order_id=order.order_id,
            product_id=spec.product_id,
            side=spec.side,
            order_type=spec.order_type,
            state=order.state,
            previous=event.previous,
            cause=event.cause,
            filled_size=order.filled_size,
            average_price=order.average_price,
            total_fees=order.total_fees,
            external=order.external,
            source=order.intent.source,
            strategy_id=order.intent.strategy_id,
            reject_code=order.reject_code,
        )

    def on_fill(self, event: FillEvent) -> None:
        fill = event.fill
        self._writer.write(
            "fill",
            client_order_id=event.client_order_id,
            order_id=fill.order_id,
            trade_id=fill.trade_id,
            product_id=fill.product_id,
            side=fill.side,
            price=fill.price,
            size=fill.size,
            commission=fill.commission,
            liquidity=fill.liquidity,
            external=event.external,
        )


class EngineStateWriter:
    """Reads the engine's state and writes what changed since the last look."""

    def __init__(self, engine: Engine, writer: JsonLineWriter) -> None:
        self._engine = engine
        self._writer = writer
        self._trading_version = -1
        self._connections: dict[str, tuple[str, str | None]] = {}
        self._books: dict[str, str] = {}
        self._kill: KillProgress | None = None
        self._events_seen = 0

    def poll(self) -> None:
        engine = self._engine
        state = engine.trading_state
        if state.version != self._trading_version:
            self._trading_version = state.version
            change = state.last_change
            self._writer.write(
                "trading_state", state=change.state, cause=change.cause, source=change.source
            )
        snapshot = engine.snapshot()
        for connection in snapshot.connections:
            seen = (connection.state.value, connection.last_error)
            if self._connections.get(connection.name) != seen:
                self._connections[connection.name] = seen
                self._writer.write(
                    "connection",
                    name=connection.name,
                    state=connection.state,
                    last_error=connection.last_error,
                )
        for product_id in engine.products:
            health = engine.market.health(product_id)
            if self._books.get(product_id) != health.state.value:
                self._books[product_id] = health.state.value
                self._writer.write(
                    "book", product_id=product_id, state=health.state, reason=health.reason
                )
        self._poll_kill(engine.emergency.progress)
        # The event log is a ring buffer; its version counts every event ever added.
        new = snapshot.events_version - self._events_seen
        if new > 0:
            for event in snapshot.events[-min(new, len(snapshot.events)) :]:
                self._writer.write("log", level=event.level, text=event.text)
            self._events_seen = snapshot.events_version

    def _poll_kill(self, progress: KillProgress) -> None:
        if progress == self._kill:
            return
        self._kill = progress
        if progress.phase is KillPhase.IDLE:
            return
        took = (
            (progress.finished_at - progress.started_at) * 1000
            if progress.finished_at is not None and progress.started_at is not None
            else None
        )
        self._writer.write(
            "kill_progress",
            phase=progress.phase,
            cause=progress.cause,
            rounds=progress.rounds,
            cancels_sent=progress.cancels_sent,
            still_open=progress.still_open,
            took_ms=took,
            error=progress.error,
            waiting=progress.waiting,
        )


async def run_headless(
    engine: Engine,
    *,
    out: TextIO,
    stop_signals: Sequence[signal.Signals] = DEFAULT_STOP_SIGNALS,
    kill_signals: Sequence[signal.Signals] = DEFAULT_KILL_SIGNALS,
    cancel_on_exit: bool | None = None,
    exit_timeout_s: float = EXIT_TIMEOUT_S,
    clock: Clock | None = None,
) -> int:
    """Run ``engine`` until one of ``stop_signals`` arrives (or the engine ends); return the
    process exit code. ``cancel_on_exit`` None means the engine's settings decide
    (``headless.cancel_open_orders_on_exit``). Call it on the loop the engine will run on."""
    writer = JsonLineWriter(out, clock or SystemClock())
    if cancel_on_exit is None:
        cancel_on_exit = engine.settings.headless.cancel_open_orders_on_exit
    engine.orders.add_listener(OrderEventWriter(writer))
    state_writer = EngineStateWriter(engine, writer)
    stop = asyncio.Event()
    received: list[str] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        received.append(signum.name)
        stop.set()

    def on_kill_signal(signum: signal.Signals) -> None:
        writer.write("kill_signal", signal=signum.name)
        engine.kill(f"kill switch ({signum.name})", "signal")

    for signum in stop_signals:
        loop.add_signal_handler(signum, on_signal, signum)
    for signum in kill_signals:
        loop.add_signal_handler(signum, on_kill_signal, signum)
    writer.write("start", mode=engine.mode, products=list(engine.products), pid=os.getpid())
    run_task = asyncio.create_task(engine.run(), name="headless-engine")
    exit_code = EXIT_OK
    status_every = engine.settings.headless.status_interval_s
    status_due = loop.time() + status_every
    try:
        while not stop.is_set() and not run_task.done() and not engine.feed_finished.is_set():
            state_writer.poll()
            if status_every and loop.time() >= status_due:
                status_due = loop.time() + status_every
                write_status(engine, writer)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_PERIOD_S)
        if run_task.done():  # the engine ended on its own: that is trouble
            exit_code = EXIT_TROUBLE
            error = run_task.exception()
            writer.write("log", level="error", text=f"engine stopped: {error!r}")
        else:
            # A signal, or a replay that reached the end of its file (a normal end: exit 0).
            writer.write("stopping", signal=received[0] if received else None)
            engine.pause_strategy()
            if cancel_on_exit and not await _cancel_until_none_open(engine, writer, exit_timeout_s):
                exit_code = EXIT_TROUBLE
        state_writer.poll()
    finally:
        for signum in (*stop_signals, *kill_signals):
            loop.remove_signal_handler(signum)
        await engine.stop()
        if not await _bounded_wait(run_task, exit_timeout_s):
            # The engine is stuck in a call that does not return (REST hanging): cancel it
            # rather than let the process hang; the journal keeps what was written.
            exit_code = EXIT_TROUBLE
            writer.write("log", level="error", text="engine did not stop in time: cancelled")
            run_task.cancel()
            await _bounded_wait(run_task, exit_timeout_s)
    writer.write("stop", exit_code=exit_code)
    return exit_code


def write_status(engine: Engine, writer: JsonLineWriter) -> None:
    """One "status" line: what a trader would glance at on the console."""
    snapshot = engine.snapshot()
    writer.write(
        "status",
        trading=None if snapshot.trading is None else snapshot.trading.state,
        books={pid: engine.market.health(pid).state for pid in engine.products},
        connections={view.name: view.state for view in snapshot.connections},
        open_orders=len(snapshot.open_orders),
        equity=snapshot.equity,
        daily_pnl=snapshot.daily_pnl,
    )


async def _bounded_wait(task: asyncio.Task[None], timeout_s: float) -> bool:
    """Wait for ``task`` at most ``timeout_s``; True if it ended (however)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait({task}, timeout=timeout_s)
    if task.done() and not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()
    return task.done()


async def _cancel_until_none_open(engine: Engine, writer: JsonLineWriter, timeout_s: float) -> bool:
    """Cancel every open order and list the venue until none is open (bounded by
    ``timeout_s``). Unlike the kill switch this does not halt trading: it is a normal exit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    rounds = sent = 0
    still_open: int | None = None
    while loop.time() < deadline:
        rounds += 1
        try:
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                sent += await engine.cancel_all()
                still_open = len(await engine.venue.list_open_orders())
        except Exception as exc:  # a timeout or the venue away: try again until the bound
            log.warning("cancel on exit, round %d: %r", rounds, exc)
            still_open = None
        if still_open == 0:
            break
        await asyncio.sleep(min(EXIT_CANCEL_PAUSE_S, max(0.0, deadline - loop.time())))
    confirmed = still_open == 0
    writer.write(
        "exit_cancel",
        rounds=rounds,
        cancels_sent=sent,
        still_open=still_open,
        confirmed=confirmed,
    )
    return confirmed


__all__: Sequence[str] = ("JsonLineWriter", "run_headless")
