"""The ``cryptoj`` command line.

``cryptoj`` alone opens the console in its default mode (the demo against the built-in
simulated exchange). Subcommands (``sim``, ``record``, ``bench-book``, ...) live one per module
in ``cryptoj_tui.commands``; each module exposes ``register(subparsers)``, which adds its parser
and sets ``handler`` to a function ``(args, settings) -> exit code``. Command modules keep their
heavy imports inside the handler so ``cryptoj --help`` stays fast.

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage (argparse's convention).
Every bad local input (a flag, a setting, a file or directory the settings point at, the sim's
address) is one line on stderr naming it, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import __version__
from core.boot_heap import collector_off_for_boot

if TYPE_CHECKING:
    from core.sim.launcher import PendingSim

# Subcommand modules, in the order --help lists them.
COMMAND_MODULES = (
    "cryptoj_tui.commands.sim",
    "cryptoj_tui.commands.record",
    "cryptoj_tui.commands.bench_book",
    "cryptoj_tui.commands.doctor",
)

Handler = Callable[[argparse.Namespace, Any], int]


class CliParser(argparse.ArgumentParser):
    """argparse without abbreviations: ``--liv`` must not mean ``--live``. Subcommand parsers
    are made by the same class (``add_subparsers`` uses the parent's class), so the rule holds
    for every command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
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


def parse_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse; an unknown argument after a command is that command's usage error (argparse
    would report it with the top-level usage, which does not list the command's flags)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args(arguments)
    if extras:
        command_parser = _command_parser(parser, getattr(args, "command", None))
        command_at = arguments.index(args.command) if command_parser is not None else -1
        first_extra = next((i for i, a in enumerate(arguments) if a in extras), len(arguments))
        target = command_parser if command_parser and first_extra > command_at else parser
        target.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _command_parser(
    parser: argparse.ArgumentParser, command: str | None
) -> argparse.ArgumentParser | None:
    if command is None:
        return None
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(command)
            return found if isinstance(found, argparse.ArgumentParser) else None
    return None


def check_local_paths(args: argparse.Namespace, settings: Any, log_file: Path | None) -> None:
    """Before anything starts: the log file can be written and the data directory used (both
    created private), and the demo's simulated exchange can listen where it is told. Raises
    ``ConfigError`` (one line) otherwise."""
    from core.config import Mode
    from core.local_resources import check_listen_address, ensure_private_dir, ensure_private_file

    if log_file is not None:
        ensure_private_file(log_file, "log.file")
    console = getattr(args, "handler", None) is None
    if console or getattr(args, "uses_data_dir", False):
        ensure_private_dir(settings.storage.data_dir, "storage.data_dir")
    modes = (getattr(args, "paper", False), getattr(args, "live", False), args.replay)
    if console and not any(modes) and settings.mode is Mode.DEMO:
        # The demo's sim child would fail with a log file to read; say it here in one line.
        # (The child still reports losing the race for the port in the same line.)
        check_listen_address(settings.sim.host, settings.sim.port)


def start_demo_sim_early(args: argparse.Namespace) -> PendingSim | None:
    """Start the demo's simulated exchange now, before anything heavy is imported, if the
    command line asks for the console without a mode flag (the configuration may still pick
    another mode: ``run_console`` then stops the child unused).

    The child imports its server on the other core while this process loads its settings
    and imports the engine and the UI; the demo then hands it the sim's settings
    (``PendingSim.send_settings``), so the configuration is read once, here, and the child
    never loads the settings machinery. None for anything else (a subcommand, --paper,
    --live, --replay). Kept on ``args.demo_sim``; ``run_console`` takes it over.
    """
    if getattr(args, "handler", None) is not None or args.paper or args.live or args.replay:
        return None
    from core.sim.launcher import early_sim_command, spawn_sim_process

    try:
        return spawn_sim_process(early_sim_command())
    except OSError:  # the demo path starts it again, and reports a failure in its own words
        return None


def keep_httpx_command_line_out() -> None:
    """``import httpx`` also imports httpx's own command-line client when its optional
    dependencies are installed (click, pygments and rich's syntax highlighter; they are, for
    Textual): ~50 ms of the console's start-up for a tool cryptoj never runs. ``None`` in
    ``sys.modules`` makes that one import fail, and httpx then falls back to a stub ``main``;
    the HTTP client itself is untouched. A no-op if httpx's CLI is already loaded."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # the documented block


def main(argv: Sequence[str] | None = None) -> int:
    keep_httpx_command_line_out()
    parser = build_parser()
    args = parse_arguments(parser, argv)
    # First of all, so the child's boot overlaps everything below.
    args.demo_sim = start_demo_sim_early(args)
    if getattr(args, "handler", None) is None:
        # Until the console has booted, just before it runs (cryptoj_tui.console._run_app).
        collector_off_for_boot()
    try:
        return _main(args)
    finally:
        gc.enable()
        if args.demo_sim is not None:
            args.demo_sim.cancel()  # unless the demo took it over (and has stopped it)


def _main(args: argparse.Namespace) -> int:
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
    try:
        check_local_paths(args, settings, log_file)
    except ConfigError as exc:
        print(f"cryptoj: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log.level,
        filename=str(log_file) if log_file else None,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # A log line that cannot be written (a full disk) must not print a traceback over the
    # console or into headless output; the engine says "disk full" in its events instead.
    logging.raiseExceptions = False
    try:
        return handler(args, settings)
    except ConfigError as exc:
        print(f"cryptoj: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
