"""The simulated exchange as a child process: ``python -m core.sim [options]``.

Started by ``core.sim.launcher``. Once listening it writes ONE line of JSON to stdout, the
handshake ``{"event": "ready", ...endpoints and demo key...}``, and then nothing else there
(logs go to stderr). If it cannot start, that line is ``{"event": "error", "message": ...}``
instead, with ``"kind": "config"`` when the reason is the configuration.

``--from-settings [--config PATH]`` takes the sim's settings from the configuration as
``cryptoj`` does (the TOML file and the ``CRYPTOJ_*`` environment) instead of the flags, and
checks first that it can listen there: the console's demo starts this child before it has
loaded its own settings, so the child boots while the console imports its UI. It stops when its stdin reaches EOF, which happens when the parent
closes the pipe or dies, so it can never outlive its parent; SIGTERM/SIGINT stop it too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.boot_heap import boot_done, collector_off_for_boot

# The sim itself (aiohttp, the settings, the exchange) is imported by main(), after it turned
# the cyclic collector off: the console's demo waits for this child's boot (see main).
if TYPE_CHECKING:
    from core.config import SimSettings
    from core.sim.endpoints import SimEndpoints


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--faults", default="")
    parser.add_argument("--key-algorithm", choices=["ES256", "EdDSA"], default="ES256")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--from-settings",
        action="store_true",
        help="take host, port, seed, rate and tls from the configuration (and CRYPTOJ_* "
        "variables) instead of the flags above",
    )
    parser.add_argument("--config", type=Path, help="with --from-settings: the TOML file")
    return parser


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin reaches EOF (the parent closed the pipe or died).

    A daemon thread with a blocking read works for any stdin (pipe, tty, /dev/null, a file),
    unlike the event loop's pipe transport, and never holds up the exit.
    """

    def wait_for_eof() -> None:
        descriptor = sys.stdin.fileno()
        while os.read(descriptor, 4096):
            pass
        with contextlib.suppress(RuntimeError):  # the loop may already be closed
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, name="sim-stdin-watch", daemon=True).start()


def _announce(endpoints: SimEndpoints) -> None:
    boot_done()
    _handshake({"event": "ready", **endpoints.to_handshake()})


def _handshake(data: dict[str, object]) -> None:
    sys.stdout.buffer.write(json.dumps(data).encode() + b"\n")
    sys.stdout.buffer.flush()


def _settings(args: argparse.Namespace) -> SimSettings:
    """The sim's settings from the flags, or (``--from-settings``) from the configuration,
    checked listenable (``ConfigError`` with the same one line ``cryptoj`` would print)."""
    from core.config import SimSettings, load_settings
    from core.local_resources import check_listen_address

    if not args.from_settings:
        return SimSettings(
            seed=args.seed, rate=args.rate, host=args.host, port=args.port, tls=args.tls
        )
    settings = load_settings(args.config).sim
    check_listen_address(settings.host, settings.port)
    return settings


async def _main(args: argparse.Namespace) -> None:
    from core.config import ConfigError
    from core.sim.faults import FaultPlan
    from core.sim.runner import SimListenError, run_sim

    try:
        settings = _settings(args)
    except ConfigError as error:
        _handshake({"event": "error", "kind": "config", "message": str(error)})
        return
    faults = FaultPlan.parse(args.faults) if args.faults else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _watch_stdin(loop, stop)
    try:
        await run_sim(
            settings, stop, on_ready=_announce, faults=faults, key_algorithm=args.key_algorithm
        )
    except SimListenError as error:
        # One line the launcher shows as is, instead of a traceback in the child's log.
        _handshake({"event": "error", "kind": "config", "message": str(error)})


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    collector_off_for_boot()  # until ready (_announce)
    try:
        from core.sim.faults import FaultPlan

        try:
            FaultPlan.parse(args.faults)
        except ValueError as error:
            print(f"python -m core.sim: {error}", file=sys.stderr)
            return 2
        asyncio.run(_main(args))
    finally:
        gc.enable()
    return 0


if __name__ == "__main__":
    sys.exit(main())
