"""``cryptoj doctor``: check the configuration, the API key, the clock, the connections and the
key's permissions against the configured exchange, and say what to fix."""

from __future__ import annotations

import argparse
from typing import Any

_DESCRIPTION = """\
Check, against the exchange the configuration points at (exchange.rest_url and the two
WebSocket URLs): that the configuration loads, that the API key is in a format Coinbase
accepts, that the local clock agrees with the exchange's (GET /time; warning above 5 s,
failure above 30 s), that REST and both WebSockets answer, and that the key is accepted and
may view and trade (GET /key_permissions). Each check prints OK, WARN, FAIL or SKIP and, when
something is wrong, what to do about it. Exit code 0 when nothing failed, 1 otherwise.
Point it at `cryptoj sim` with the CRYPTOJ_* lines that command prints."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the config, API key, clock, connectivity and key permissions",
        description=_DESCRIPTION,
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long each network check may take (default: 10)",
    )
    parser.set_defaults(handler=run_doctor_command)


def run_doctor_command(args: argparse.Namespace, settings: Any) -> int:
    import asyncio
    import logging

    import orjson

    from core.clock import SystemClock
    from core.doctor import diagnose

    if settings.log.file is None and settings.log.level == "INFO":
        # The report is the output: INFO lines about each connection would bury it. An
        # explicit --log-level DEBUG (or a log file) keeps them.
        logging.getLogger().setLevel(logging.WARNING)
    report = asyncio.run(
        diagnose(settings, clock=SystemClock(), config_path=args.config, timeout_s=args.timeout)
    )
    if args.json:
        print(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(report.render())
    return report.exit_code


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 and at most 300")
    return value
