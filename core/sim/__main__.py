"""The simulated exchange as a child process: ``python -m core.sim [options]``.

Started by ``core.sim.launcher``. Once listening it writes ONE line of JSON to stdout, the
handshake ``{"event": "ready", ...endpoints and demo key...}``, and then nothing else there
(logs go to stderr). If it cannot start, that line is ``{"event": "error", "message": ...}``
instead, with ``"kind": "config"`` when the reason is the configuration.

``--settings-on-stdin`` is how the console's demo starts it: before the console has loaded
its own settings, so the child imports its server while the console imports its UI; the
console then writes the sim's settings (validated, one JSON line: core/sim/options.py) to
the child's stdin, which the child reads once its imports are done. That way the child never
loads the settings machinery (pydantic). EOF before that line means the parent is gone or did
not want a sim after all: the child exits quietly.

``--from-settings [--config PATH]`` takes the sim's settings from the configuration as
``cryptoj`` does (the TOML file and the ``CRYPTOJ_*`` environment) instead of the flags, and
checks first that it can listen there (to run the child by hand as the demo would).

It stops when its stdin reaches EOF, which happens when the parent closes the pipe or dies,
so it can never outlive its parent; SIGTERM/SIGINT stop it too.
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.boot_heap import boot_done, collector_off_for_boot

# The sim itself (aiohttp, the exchange) is imported by main(), after it turned the cyclic
# collector off: the console's demo waits for this child's boot (see main). The settings
# (pydantic) only with --from-settings or the flags, never for the demo.
if TYPE_CHECKING:
    from core.sim.endpoints import SimEndpoints
    from core.sim.options import SimStartSettings


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
    parser.add_argument(
        "--settings-on-stdin",
        action="store_true",
        help="read host, port, seed, rate and tls as one JSON line on stdin (how the "
        "console's demo starts this child)",
    )
    return parser


class _NoSettings(Exception):
    """Stdin ended before the settings line: the parent is gone or wants no sim."""


def _read_settings_line() -> bytes:
    """The first line on stdin, read without a buffer (so the EOF watch that follows gets
    every later byte); ``_NoSettings`` at EOF before a whole line."""
    descriptor = sys.stdin.fileno()
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(descriptor, 1)
        if not chunk:
            raise _NoSettings
        line += chunk
    return bytes(line)


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
    _handshake({"event": "ready", **endpoints.to_handshake()})


def _handshake(data: dict[str, object]) -> None:
    sys.stdout.buffer.write(json.dumps(data).encode() + b"\n")
    sys.stdout.buffer.flush()


def _settings(args: argparse.Namespace) -> SimStartSettings:
    """The sim's settings: from the parent (``--settings-on-stdin``), from the configuration
    (``--from-settings``, checked listenable), or from the flags. ``ValueError`` with one line
    (the same ``cryptoj`` would print for a bad configuration), ``_NoSettings`` at EOF."""
    if args.settings_on_stdin:
        from core.sim.options import SimOptions

        return SimOptions.from_line(_read_settings_line())
    from core.config import ConfigError, SimSettings, load_settings
    from core.local_resources import check_listen_address

    try:
        if not args.from_settings:
            return SimSettings(
                seed=args.seed, rate=args.rate, host=args.host, port=args.port, tls=args.tls
            )
        settings = load_settings(args.config).sim
        check_listen_address(settings.host, settings.port)
    except ConfigError as error:
        raise ValueError(str(error)) from None
    return settings


@contextlib.contextmanager
def _no_trust_store() -> Iterator[None]:
    """While importing the server: OpenSSL finds no certificate authorities to load.

    aiohttp's package imports its HTTP client along with the server, and the client builds
    two TLS client contexts at import time, each parsing the system's CA bundle (~40 ms of
    this child's boot, which the console's demo waits for). This process is only ever a
    server and never opens a client connection; had it one, an empty trust store would make
    it fail closed. The environment is restored at once, so a ``--tls`` server context (made
    later) is built as usual.
    """
    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    os.environ["SSL_CERT_FILE"] = os.devnull
    os.environ["SSL_CERT_DIR"] = os.devnull
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def _main(args: argparse.Namespace) -> None:
    from core.sim.faults import FaultPlan

    with _no_trust_store():
        from core.sim.runner import SimListenError, run_sim

    try:
        settings = _settings(args)
    except _NoSettings:
        return
    except ValueError as error:
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
            settings,
            stop,
            on_ready=_announce,
            on_built=boot_done,
            faults=faults,
            key_algorithm=args.key_algorithm,
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
    collector_off_for_boot()  # until the market is built (run_sim's on_built)
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
