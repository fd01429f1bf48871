"""``cryptoj`` with no subcommand: open the console in the configured mode.

The demo (the default) starts the simulated exchange in a child process on a free loopback
port, connects to it through the real Coinbase client (REST plus the market and user
WebSockets) with the demo key the child hands back, and stops the child when the console exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.config import Mode, Settings


def fresh_demo_journal(settings: Settings) -> Path:
    """The demo's exchange starts empty every time, so its journal must too.

    The previous run's journal is kept beside it (``journal-demo.prev.sqlite3``) to look at.
    """
    from core.journal import journal_path

    path = journal_path(settings.storage.data_dir, Mode.DEMO.value)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        current = path.with_name(path.name + suffix)
        if current.exists():
            current.replace(path.with_name(path.stem + ".prev" + path.suffix + suffix))
    return path


def run_console(args: argparse.Namespace, settings: Settings) -> int:
    if settings.mode is not Mode.DEMO:
        print(
            f"cryptoj: mode '{settings.mode.value}' is not available in this version; "
            'use the demo (mode = "demo", the default)',
            file=sys.stderr,
        )
        return 2

    from core.clock import SystemClock
    from core.engine import Engine, ExchangeEndpoints
    from core.sim.launcher import SimLaunchError, start_sim_process
    from cryptoj_tui.app import CryptoJApp

    print("cryptoj: starting the simulated exchange…", file=sys.stderr, flush=True)
    try:
        sim = start_sim_process(settings.sim)
    except SimLaunchError as exc:
        print(f"cryptoj: {exc}", file=sys.stderr)
        return 1
    with sim:
        endpoints = ExchangeEndpoints(
            rest_url=sim.endpoints.rest_url,
            ws_market_url=sim.endpoints.ws_market_url,
            ws_user_url=sim.endpoints.ws_user_url,
            credentials=sim.endpoints.credentials,
            ca_cert_path=sim.endpoints.ca_cert_path,
        )
        clock = SystemClock()
        engine = Engine(
            settings,
            endpoints,
            clock=clock,
            mode=Mode.DEMO.value,
            journal_file=fresh_demo_journal(settings),
        )
        app = CryptoJApp(engine, mode=Mode.DEMO.value, products=engine.products, clock=clock)
        app.run()
    return 0
