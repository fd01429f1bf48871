"""``cryptoj record``: write a Coinbase market-data feed, frame by frame, to a JSONL file."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from core.clock import Clock
    from core.config import Settings
    from core.record import RecordingSummary

_DESCRIPTION = """\
Connect to the Coinbase market-data WebSocket and write every message exactly as received,
one per line, to FILE (JSONL), for replay mode and for tests. heartbeats is always
subscribed too. Reconnects on its own; Ctrl-C stops cleanly and prints a summary. With API
credentials configured, every subscribe message carries a fresh JWT."""

DEFAULT_CHANNELS = ("level2",)
_PRODUCT_ID = re.compile(r"^[A-Z0-9]+-[A-Z0-9]+$")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "record",
        help="record raw WebSocket market data to a JSONL file",
        description=_DESCRIPTION,
    )
    parser.add_argument(
        "--product",
        action="append",
        dest="products",
        type=_product_id,
        metavar="PRODUCT_ID",
        help="a product to record, e.g. BTC-USD; repeat for more (default: market.products)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="the JSONL file")
    parser.add_argument(
        "--channels",
        type=_channel_list,
        default=DEFAULT_CHANNELS,
        metavar="LIST",
        help="comma-separated channels (default: level2), e.g. level2,market_trades,ticker",
    )
    parser.add_argument(
        "--duration", type=_positive_float, metavar="SECONDS", help="stop after this long"
    )
    parser.add_argument(
        "--max-messages", type=_positive_int, metavar="N", help="stop after N messages"
    )
    parser.add_argument(
        "--url", type=_ws_url, metavar="WS_URL", help="default: exchange.ws_market_url"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace FILE if it exists (default: refuse)"
    )
    parser.set_defaults(handler=run_record_command)


def run_record_command(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import sys

    from core.clock import SystemClock
    from core.record import record_feed, subscriptions_for

    products: list[str] = args.products or list(settings.market.products)
    url: str = args.url or settings.exchange.ws_market_url
    subscriptions = subscriptions_for(args.channels, products)
    clock = SystemClock()
    token_factory = ws_token_factory(settings, clock)
    try:
        out = args.out.open("wb" if args.overwrite else "xb", buffering=1024 * 1024)
    except FileExistsError:
        print(f"cryptoj record: {args.out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    except OSError as exc:  # a bad local path: one line, exit 2 like every bad input
        print(f"cryptoj record: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2

    channels = [subscription.channel for subscription in subscriptions]
    if "heartbeats" not in channels:
        channels.append("heartbeats")
    print(
        f"recording {','.join(channels)} for {','.join(products)} from {url} to {args.out}; "
        "Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )

    async def record() -> RecordingSummary:
        stop = asyncio.Event()
        _stop_on_signals(asyncio.get_running_loop(), stop)
        return await record_feed(
            out,
            url=url,
            subscriptions=subscriptions,
            clock=clock,
            exchange=settings.exchange,
            token_factory=token_factory,
            duration_s=args.duration,
            max_messages=args.max_messages,
            stop=stop,
        )

    with out:
        summary = asyncio.run(record())
    print(f"{summary.describe()} -> {args.out}")
    return 1 if summary.failed else 0


def ws_token_factory(settings: Settings, clock: Clock) -> Callable[[], str] | None:
    """A JWT minter for subscribe messages when credentials are configured, else None."""
    from core.config import ConfigError, resolve_credentials

    credentials = resolve_credentials(settings.credentials)
    if credentials is None:
        return None
    from core.coinbase.auth import JwtSigner, rest_host_from_url

    try:
        signer = JwtSigner(credentials, clock, rest_host_from_url(settings.exchange.rest_url))
    except ValueError as exc:  # KeyFormatError: the message names the problem, not the key
        raise ConfigError(f"credentials: {exc}") from None
    return signer.ws_token


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Ctrl-C (or SIGTERM) sets ``stop`` so the file is flushed and the summary printed; a
    second Ctrl-C interrupts at once."""
    import signal

    def first_signal() -> None:
        stop.set()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, first_signal)
        except (NotImplementedError, RuntimeError, ValueError):
            # Windows' event loops, or not the main thread: asyncio.run() still turns
            # Ctrl-C into a cancellation, and record_feed() flushes on the way out.
            return


def _product_id(text: str) -> str:
    if not _PRODUCT_ID.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a product id like BTC-USD")
    return text


def _channel_list(text: str) -> tuple[str, ...]:
    from core.record import KNOWN_CHANNELS

    channels = tuple(part.strip() for part in text.split(",") if part.strip())
    if not channels:
        raise argparse.ArgumentTypeError("name at least one channel, e.g. level2")
    unknown = [channel for channel in channels if channel not in KNOWN_CHANNELS]
    if unknown:
        known = ", ".join(sorted(KNOWN_CHANNELS))
        raise argparse.ArgumentTypeError(f"unknown channel {unknown[0]!r}; known: {known}")
    return tuple(dict.fromkeys(channels))  # duplicates would subscribe twice


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _ws_url(text: str) -> str:
    if not text.startswith(("ws://", "wss://")):
        raise argparse.ArgumentTypeError(f"{text!r} must start with ws:// or wss://")
    return text
