"""The ``cryptoj`` command line.

``cryptoj`` alone opens the console in its default mode (the demo against the built-in
simulated exchange). Subcommands (``sim``, ``record``, ``bench-book``, ...) live one per module
in ``cryptoj_tui.commands``; each module exposes ``register(subparsers)``, which adds its parser
and sets ``handler`` to a function ``(args, settings) -> exit code``. Command modules keep their
heavy imports inside the handler so ``cryptoj --help`` stays fast.

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core import __version__

# Subcommand modules, in the order --help lists them.
COMMAND_MODULES = (
    "cryptoj_tui.commands.sim",
    "cryptoj_tui.commands.record",
    "cryptoj_tui.commands.bench_book",
    "cryptoj_tui.commands.doctor",
)

Handler = Callable[[argparse.Namespace, Any], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptoj",
        description=(
            "CryptoJ: a terminal trading console for Coinbase Advanced Trade. With no "
            "configuration it runs a demo against a built-in simulated exchange."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cryptoj {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML settings file (default: config.toml in the user's config directory)",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="overrides log.level",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--paper", action="store_true", help="paper trading on Coinbase's live market data"
    )
    modes.add_argument(
        "--live", action="store_true", help="trade on Coinbase (needs an API key; asks first)"
    )
    modes.add_argument(
        "--replay", type=Path, metavar="FILE", help="replay a recorded market-data file"
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="run the engine without the UI: one JSON line per event on stdout; "
        "SIGINT/SIGTERM stops it (cancelling open orders unless headless."
        "cancel_open_orders_on_exit = false)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def default_console_log_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir("cryptoj")) / "cryptoj.log"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    from core.config import ConfigError, load_settings

    overrides: dict[str, Any] = {}
    if args.log_level:
        overrides["log"] = {"level": args.log_level}
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"cryptoj: {exc}", file=sys.stderr)
        return 2

    handler: Handler | None = getattr(args, "handler", None)
    log_file = settings.log.file
    if handler is None:
        from cryptoj_tui.console import run_console

        handler = run_console
        # The console owns the terminal: its logs must go to a file, never to the screen.
        log_file = log_file or default_console_log_path()
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=settings.log.level,
        filename=str(log_file) if log_file else None,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return handler(args, settings)
    except ConfigError as exc:
        print(f"cryptoj: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
