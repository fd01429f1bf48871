"""``cryptoj sim``: run the simulated exchange in the foreground and say how to reach it."""

from __future__ import annotations

import argparse
from typing import Any

_DESCRIPTION = """\
Run CryptoJ's simulated Coinbase Advanced Trade exchange (REST + WebSocket) in the
foreground until Ctrl-C. It prints its URLs, writes the demo API key to a key file in the
developer portal's JSON format, and prints the CRYPTOJ_* lines that point cryptoj (or any
Coinbase client) at it. The same seed gives the same market and the same demo key."""


def register(subparsers: Any) -> None:
    from core.sim.faults import FAULT_HELP

    parser = subparsers.add_parser(
        "sim",
        help="run the simulated exchange in the foreground",
        description=_DESCRIPTION,
        epilog=FAULT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--seed", type=int, default=None, help="market and demo-key seed")
    parser.add_argument(
        "--rate", type=float, default=None, help="level2 updates per second to aim for"
    )
    parser.add_argument(
        "--tls", action="store_true", default=None, help="https/wss with a self-signed cert"
    )
    parser.add_argument("--faults", default="", metavar="PLAN", help="inject faults (syntax below)")
    parser.add_argument(
        "--key-algorithm",
        choices=["ES256", "EdDSA"],
        default="ES256",
        help="the demo key's type (ECDSA PEM or Ed25519 base64)",
    )
    # uses_data_dir: the demo key file goes under storage.data_dir (checked before starting).
    parser.set_defaults(handler=run_sim_command, uses_data_dir=True)


def run_sim_command(args: argparse.Namespace, settings: Any) -> int:
    import asyncio
    import signal
    import sys

    from pydantic import ValidationError

    from core.config import ConfigError, describe_validation_error
    from core.local_resources import check_listen_address
    from core.sim.faults import FaultPlan
    from core.sim.runner import SimListenError, run_sim

    try:
        plan = FaultPlan.parse(args.faults) if args.faults else None
    except ValueError as error:
        raise ConfigError(f"--faults: {error}") from None
    overrides = {
        name: value
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("seed", args.seed),
            ("rate", args.rate),
            ("tls", args.tls),
        )
        if value is not None
    }
    try:
        sim_settings = settings.sim.model_validate({**settings.sim.model_dump(), **overrides})
    except ValidationError as error:
        message = describe_validation_error(error, prefix="sim.", where=" (from the command line)")
        raise ConfigError(message) from None
    check_listen_address(sim_settings.host, sim_settings.port)
    key_dir = settings.storage.data_dir / "sim"

    def announce(endpoints: Any) -> None:
        key_file = write_key_file(key_dir / f"demo-key-{sim_settings.seed}.json", endpoints)
        print(describe_endpoints(endpoints, key_file, plan), flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_sim(
            sim_settings, stop, on_ready=announce, faults=plan, key_algorithm=args.key_algorithm
        )

    try:
        asyncio.run(main())
    except SimListenError as error:  # lost the port between the check and the start
        raise ConfigError(str(error)) from None
    print("simulated exchange stopped", file=sys.stderr)
    return 0


def write_key_file(path: Any, endpoints: Any) -> Any:
    """Write the demo key as the portal's ``{"name", "privateKey"}`` JSON, mode 600."""
    import os

    import orjson

    from core.local_resources import ensure_private_dir

    ensure_private_dir(path.parent, "storage.data_dir")
    body = orjson.dumps(
        {"name": endpoints.credentials.key_name, "privateKey": endpoints.credentials.private_key},
        option=orjson.OPT_INDENT_2,
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(body + b"\n")
    os.chmod(path, 0o600)  # also when the file already existed with looser rights
    return path


def describe_endpoints(endpoints: Any, key_file: Any, plan: Any) -> str:
    """What ``cryptoj sim`` prints once listening (no secret: the key stays in the file)."""
    from core.sim.runner import describe_balances

    lines = [
        "CryptoJ simulated exchange is running (Ctrl-C stops it)",
        f"  REST        {endpoints.rest_url}/api/v3/brokerage",
        f"  WS market   {endpoints.ws_market_url}",
        f"  WS user     {endpoints.ws_user_url}",
        f"  demo key    {endpoints.credentials.key_name}",
        f"  key file    {key_file}",
        f"  demo user   {endpoints.user_id}: {describe_balances()}",
    ]
    if endpoints.ca_cert_path is not None:
        lines.append(f"  TLS cert    {endpoints.ca_cert_path} (self-signed; trust it explicitly)")
    if plan is not None:
        lines.append(f"  faults      {plan.describe()}")
    lines += [
        "",
        "Point cryptoj at it with:",
        "  CRYPTOJ_MODE=live",
        f"  CRYPTOJ_EXCHANGE__REST_URL={endpoints.rest_url}",
        f"  CRYPTOJ_EXCHANGE__WS_MARKET_URL={endpoints.ws_market_url}",
        f"  CRYPTOJ_EXCHANGE__WS_USER_URL={endpoints.ws_user_url}",
        f"  CRYPTOJ_CREDENTIALS__KEY_FILE={key_file}",
    ]
    if endpoints.ca_cert_path is not None:
        lines.append(f"  SSL_CERT_FILE={endpoints.ca_cert_path}")
        lines.append(f"  REQUESTS_CA_BUNDLE={endpoints.ca_cert_path}  # requests-based clients")
    lines += [
        "or in config.toml:",
        '  mode = "live"',
        "  [exchange]",
        f'  rest_url = "{endpoints.rest_url}"',
        f'  ws_market_url = "{endpoints.ws_market_url}"',
        f'  ws_user_url = "{endpoints.ws_user_url}"',
        "  [credentials]",
        f'  key_file = "{key_file}"',
    ]
    return "\n".join(lines)
