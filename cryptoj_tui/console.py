"""``cryptoj`` with no subcommand: open the console in the chosen mode.

- demo (the default): starts the simulated exchange in a child process on a free loopback
  port, connects to it through the real Coinbase client (REST plus the market and user
  WebSockets) with the demo key the child hands back, and stops the child when the console
  exits;
- ``--paper``: Coinbase's public market data, orders filled by the local paper venue (no key);
- ``--live``: Coinbase for real. Refused without an API key, and only after the trader types
  LIVE at the prompt (nothing connects before that);
- ``--replay FILE``: a recorded market-data file through the live decoding path, at the
  recorded pace, with orders filled by the paper venue.

A ``mode`` in the configuration selects demo, paper or replay too; live always needs the
``--live`` flag as well, so a config file alone can never start real trading.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from core.boot_heap import boot_done
from core.config import Mode, Settings
from core.journal import JournalLocked

if TYPE_CHECKING:
    import asyncio

    from core.engine import ExchangeEndpoints
    from core.market import MarketDataService
    from core.sim.launcher import PendingSim

LIVE_CONFIRMATION = "LIVE"


class ConsoleRefused(Exception):
    """The console will not start; the message says why (one line) and ``exit_code`` how."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fresh_demo_journal(settings: Settings, mode: Mode = Mode.DEMO) -> Path:
    """The demo's exchange starts empty every time, so its journal must too; so does each
    replay (a replay's orders and trading state belong to that replay only: a HALT stored by
    one must not greet the next).

    The previous run's journal is kept beside it (``journal-demo.prev.sqlite3``) to look at.
    """
    from core.journal import journal_path

    path = journal_path(settings.storage.data_dir, mode.value)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        current = path.with_name(path.name + suffix)
        if current.exists():
            current.replace(path.with_name(path.stem + ".prev" + path.suffix + suffix))
    return path


def console_mode(args: argparse.Namespace, settings: Settings) -> Mode:
    """The mode the command line asks for, else the configured one (live needs ``--live``)."""
    if getattr(args, "live", False):
        return Mode.LIVE
    if getattr(args, "paper", False):
        return Mode.PAPER
    if getattr(args, "replay", None) is not None:
        return Mode.REPLAY
    if settings.mode is Mode.LIVE:
        raise ConsoleRefused(
            "mode 'live' in the configuration needs --live on the command line as well"
        )
    if settings.mode is Mode.REPLAY:
        raise ConsoleRefused("mode 'replay' needs the file: cryptoj --replay FILE")
    return settings.mode


def confirm_live(read_line: Callable[[], str] | None = None, out: TextIO | None = None) -> bool:
    """Ask the trader to type LIVE before anything connects to the real exchange.

    ``read_line`` and ``out`` default to the terminal (stdin, stderr).
    """
    read_line = read_line or sys.stdin.readline
    out = out or sys.stderr
    out.write(
        "cryptoj: LIVE mode trades real money on Coinbase.\n"
        f"Type {LIVE_CONFIRMATION} and press enter to continue (anything else quits): "
    )
    out.flush()
    try:
        answer = read_line()
    except (EOFError, KeyboardInterrupt):
        answer = ""
    return answer.strip() == LIVE_CONFIRMATION


def run_console(args: argparse.Namespace, settings: Settings) -> int:
    """Open the console (or, with ``--headless``, run the engine alone) in the chosen mode."""
    headless = bool(getattr(args, "headless", False))
    early_sim: PendingSim | None = getattr(args, "demo_sim", None)
    try:
        mode = console_mode(args, settings)
        if mode is not Mode.DEMO and early_sim is not None:
            early_sim.cancel()  # started on the chance of a demo; the configuration said no
            early_sim = None
        if mode is Mode.LIVE:
            return _run_live(settings, headless=headless)
        if mode is Mode.PAPER:
            return _run_paper(settings, headless=headless)
        if mode is Mode.REPLAY:
            return _run_replay(settings, Path(args.replay), headless=headless)
        return _run_demo(settings, headless=headless, early_sim=early_sim)
    except (ConsoleRefused, JournalLocked) as refused:  # JournalLocked: a second session
        print(f"cryptoj: {refused}", file=sys.stderr)
        return refused.exit_code


def _run_demo(settings: Settings, *, headless: bool, early_sim: PendingSim | None = None) -> int:
    """The console against the simulated exchange in a child process.

    Start-up is the child's boot (its imports, its book) plus ours: the child is started
    first (by ``cli.main``, as ``early_sim``, before this process loaded its settings; here
    if it was not) and boots on the other core while this process imports the engine and
    the UI (a thread reads its handshake), so the two overlap instead of adding up. An early
    child gets its settings from here, as soon as they are known.
    """
    from core.sim.launcher import SimLaunchError, sim_command, spawn_sim_process

    if early_sim is not None:
        early_sim.send_settings(settings.sim)
    try:
        pending = early_sim or spawn_sim_process(sim_command(settings.sim))
    except OSError as exc:
        print(f"cryptoj: cannot start the simulated exchange: {exc}", file=sys.stderr)
        return 1
    try:
        _import_console(headless=headless)
        sim = pending.ready()
    except SimLaunchError as exc:
        print(f"cryptoj: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        pending.cancel()  # a no-op once handed over
    with sim:
        from core.engine import ExchangeEndpoints

        endpoints = ExchangeEndpoints(
            rest_url=sim.endpoints.rest_url,
            ws_market_url=sim.endpoints.ws_market_url,
            ws_user_url=sim.endpoints.ws_user_url,
            credentials=sim.endpoints.credentials,
            ca_cert_path=sim.endpoints.ca_cert_path,
        )
        return _run_app(
            settings,
            Mode.DEMO,
            endpoints,
            headless=headless,
            journal_file=fresh_demo_journal(settings),
        )


def _import_console(*, headless: bool) -> None:
    """Import what the console runs on (the engine, and the UI unless headless)."""
    import core.engine  # noqa: F401

    if not headless:
        import cryptoj_tui.app  # noqa: F401


def _run_paper(settings: Settings, *, headless: bool) -> int:
    from core.engine import ExchangeEndpoints

    exchange = settings.exchange
    # Paper trading needs no key: market data is public and orders never leave the machine.
    endpoints = ExchangeEndpoints(
        rest_url=exchange.rest_url,
        ws_market_url=exchange.ws_market_url,
        ws_user_url=exchange.ws_user_url,
        credentials=None,
    )
    return _run_app(settings, Mode.PAPER, endpoints, headless=headless)


def _run_live(settings: Settings, *, headless: bool) -> int:
    from core.config import resolve_credentials
    from core.engine import ExchangeEndpoints

    credentials = resolve_credentials(settings.credentials)
    if credentials is None:
        raise ConsoleRefused(
            "--live needs a Coinbase API key: set CRYPTOJ_CREDENTIALS__KEY_NAME and "
            "CRYPTOJ_CREDENTIALS__PRIVATE_KEY, or credentials.key_file in the config"
        )
    # A key Coinbase would refuse is found now, before the trader is asked to type LIVE.
    from core.coinbase.auth import KeyFormatError, load_signing_key

    try:
        load_signing_key(credentials.private_key)
    except KeyFormatError as exc:
        raise ConsoleRefused(f"credentials: {exc}") from None
    if not credentials.key_name.strip():
        raise ConsoleRefused("credentials: the API key name is empty")
    if not confirm_live():
        raise ConsoleRefused("LIVE was not confirmed; nothing was started", exit_code=1)
    exchange = settings.exchange
    endpoints = ExchangeEndpoints(
        rest_url=exchange.rest_url,
        ws_market_url=exchange.ws_market_url,
        ws_user_url=exchange.ws_user_url,
        credentials=credentials,
    )
    return _run_app(settings, Mode.LIVE, endpoints, headless=headless)


def _run_replay(settings: Settings, path: Path, *, headless: bool) -> int:
    if not path.is_file():
        raise ConsoleRefused(f"--replay {path}: no such file")

    def feed(market: MarketDataService) -> asyncio.Task[None]:
        import asyncio

        from core.replay import ReplayFeed

        async def replay() -> None:
            # No disconnect at the end: the file ending is "replay finished" (the engine says
            # so), not a lost connection that would make the books STALE.
            await ReplayFeed(path, market, pace="recorded", disconnect_at_end=False).run()

        return asyncio.create_task(replay())

    return _run_app(
        settings,
        Mode.REPLAY,
        None,
        headless=headless,
        market_feed=feed,
        journal_file=fresh_demo_journal(settings, Mode.REPLAY),
    )


def _run_app(
    settings: Settings,
    mode: Mode,
    endpoints: ExchangeEndpoints | None,
    *,
    headless: bool,
    journal_file: Path | None = None,
    market_feed: Callable[[MarketDataService], asyncio.Task[None] | None] | None = None,
) -> int:
    """The console on ``engine`` (or, with --headless, the engine alone writing JSON lines)."""
    from core.clock import SystemClock
    from core.engine import Engine

    clock = SystemClock()

    def build() -> Engine:
        return Engine(
            settings,
            endpoints,
            clock=clock,
            mode=mode,
            journal_file=journal_file,
            market_feed=market_feed,
        )

    if headless:
        import asyncio

        from core.headless import run_headless

        async def without_ui() -> int:
            return await run_headless(build(), out=sys.stdout)

        boot_done()
        return asyncio.run(without_ui())

    from cryptoj_tui.app import CryptoJApp

    engine = build()
    app = CryptoJApp(engine, mode=mode, products=engine.products, clock=clock)
    boot_done()
    app.run()
    return 0
