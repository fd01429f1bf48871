"""``bench-book``: how fast the live market-data path decodes and applies a level2 recording.

The lines are read into memory first, so file I/O is not timed. Then every line goes through
``MarketDataService.on_frame`` — the exact path of the live socket, with sequence checks, the
crossed-book check and health tracking on — on the system clock.

Two reference figures are measured on the same lines by ``scripts/compare_book.py`` and the
performance tests: ``orjson.loads`` alone (a floor: parsing JSON into dicts, no book at all) and
orjson + cryptofeed's C order book (``order_book.OrderBook``), applied the way cryptofeed's
Coinbase feed does it, with float prices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from core.book import Level, levels_checksum
from core.clock import SystemClock
from core.coinbase.market_messages import L2Message, decode_market_message
from core.market import MarketDataService
from core.model import Product

Timer = Callable[[], float]

CHECKSUM_LEVELS = 50


@dataclass(frozen=True, slots=True)
class BenchBookResult:
    messages: int
    updates: int
    seconds: float
    messages_per_s: float
    updates_per_s: float
    checksums: dict[str, str]  # product_id -> checksum of the top 50 levels a side
    gaps: int
    bad_input: dict[str, int] = field(default_factory=dict)


def read_lines(path: Path) -> list[bytes]:
    """The recording's non-empty lines, as bytes (what a socket hands over, minus framing)."""
    with path.open("rb") as source:
        return [line.rstrip(b"\r\n") for line in source if line.strip()]


def discover_products(lines: Sequence[bytes]) -> list[str]:
    """Product ids of every ``l2_data`` event in the lines, in order of first appearance."""
    found: dict[str, None] = {}
    for line in lines:
        # A cheap pre-filter: only level2 frames can name a book.
        if b'"l2_data"' not in line:
            continue
        message = decode_market_message(line)
        if type(message) is L2Message:
            for event in message.events:
                found[event.product_id] = None
    return list(found)


def run_bench_lines(
    lines: Sequence[bytes],
    *,
    products: Sequence[str] | None = None,
    timer: Timer = time.perf_counter,
) -> BenchBookResult:
    """Time the live path over lines already in memory."""
    product_ids = list(products) if products is not None else discover_products(lines)
    service = MarketDataService(product_ids, clock=SystemClock())
    service.on_connected(_BenchControl())
    # Increments known, as live after the products endpoint answered: the level2 decimals
    # check runs in the measured path.
    service.configure_products({p: _bench_product(p) for p in product_ids})
    on_frame = service.on_frame
    start = timer()
    for line in lines:
        on_frame(line)
    seconds = timer() - start
    updates = service.stats.l2_updates
    return BenchBookResult(
        messages=len(lines),
        updates=updates,
        seconds=seconds,
        messages_per_s=len(lines) / seconds if seconds > 0 else 0.0,
        updates_per_s=updates / seconds if seconds > 0 else 0.0,
        checksums={p: service.book(p).checksum(CHECKSUM_LEVELS) for p in product_ids},
        gaps=service.stats.gaps,
        bad_input=service.bad_input.counts(),
    )


def _bench_product(product_id: str) -> Product:
    """BTC-USD's increments (cent prices, satoshi sizes) under ``product_id``."""
    base, _, quote = product_id.partition("-")
    cent, satoshi = Decimal("0.01"), Decimal("0.00000001")
    return Product(
        product_id,
        base,
        quote,
        satoshi,
        cent,
        cent,
        satoshi,
        Decimal(3400),
        Decimal(1),
        Decimal(150_000_000),
    )


def run_bench_book(path: Path, *, timer: Timer = time.perf_counter) -> BenchBookResult:
    """Read ``path`` (JSONL of raw frames) into memory, then time the live path over it."""
    return run_bench_lines(read_lines(path), timer=timer)


class _BenchControl:
    """A connection that cannot reconnect or resubscribe: requests are only counted."""

    name = "bench"

    def __init__(self) -> None:
        self.requests = 0

    def request_reconnect(self, reason: str) -> None:
        self.requests += 1

    def request_resubscribe(self, channel: str, product_ids: Sequence[str]) -> None:
        self.requests += 1


# ------------------------------------------------------------------------- baselines


@dataclass(frozen=True, slots=True)
class BaselineResult:
    seconds: float
    messages_per_s: float
    checksums: dict[str, str] = field(default_factory=dict)


def run_orjson_baseline(
    lines: Sequence[bytes], *, timer: Timer = time.perf_counter
) -> BaselineResult:
    """``orjson.loads`` alone on every line: the cost of just parsing the JSON."""
    loads = orjson.loads
    start = timer()
    for line in lines:
        loads(line)
    seconds = timer() - start
    return BaselineResult(seconds, len(lines) / seconds if seconds > 0 else 0.0)


def run_cryptofeed_baseline(
    lines: Sequence[bytes], *, timer: Timer = time.perf_counter
) -> BaselineResult:
    """orjson + cryptofeed's C ``OrderBook``, used as cryptofeed's Coinbase feed uses it.

    Like cryptofeed: parse the frame, check one sequence counter, then per level update set
    ``book[side][price] = size``, or delete the level when the size is 0 and it exists. Made as
    cheap as that allows: float prices (C compares instead of Decimal), bound locals, no
    callbacks and no depth limit.
    """
    from order_book import OrderBook  # an optional (bench) dependency

    loads = orjson.loads
    books: dict[str, Any] = {}
    last_sequence = -1
    gaps = 0
    start = timer()
    for line in lines:
        message = loads(line)
        sequence = message["sequence_num"]
        if sequence != last_sequence + 1 and last_sequence >= 0:
            gaps += 1
        last_sequence = sequence
        if message["channel"] != "l2_data":
            continue
        for event in message["events"]:
            if event["type"] == "snapshot":
                book = OrderBook()
                bids, asks = book.bids, book.asks
                for update in event["updates"]:
                    side = bids if update["side"] == "bid" else asks
                    side[float(update["price_level"])] = float(update["new_quantity"])
                books[event["product_id"]] = book
                continue
            book = books[event["product_id"]]
            bids, asks = book.bids, book.asks
            for update in event["updates"]:
                side = bids if update["side"] == "bid" else asks
                price = float(update["price_level"])
                size = float(update["new_quantity"])
                if size:
                    side[price] = size
                elif price in side:
                    del side[price]
    seconds = timer() - start
    checksums = {product_id: _order_book_checksum(book) for product_id, book in books.items()}
    return BaselineResult(seconds, len(lines) / seconds if seconds > 0 else 0.0, checksums)


def _order_book_checksum(book: Any) -> str:
    bids: list[Level] = [book.bids.index(i) for i in range(min(CHECKSUM_LEVELS, len(book.bids)))]
    asks: list[Level] = [book.asks.index(i) for i in range(min(CHECKSUM_LEVELS, len(book.asks)))]
    return levels_checksum(bids, asks)
