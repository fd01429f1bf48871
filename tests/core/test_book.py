"""Unit tests for core.book.L2Book."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import NamedTuple

import pytest

from core.book import BookDepth, BookSide, InvalidLevelError, L2Book, levels_checksum, to_decimal


class Change(NamedTuple):
    side: str
    price: float
    size: float


@pytest.fixture
def book() -> L2Book:
    """A BTC-USD book with three bids (100, 99, 98) and three asks (101, 102, 103)."""
    b = L2Book("BTC-USD")
    b.apply_snapshot(
        bids=[(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)],
        asks=[(101.0, 1.5), (102.0, 2.5), (103.0, 3.5)],
    )
    return b


def test_empty_book_has_no_prices() -> None:
    b = L2Book("ETH-USD")
    assert b.product_id == "ETH-USD"
    assert b.best_bid() is None
    assert b.best_ask() is None
    assert b.mid() is None
    assert b.spread() is None
    assert not b.is_crossed()
    assert b.depth == BookDepth(0, 0)
    assert b.top(5) == ([], [])


def test_snapshot_sets_best_prices_and_depth(book: L2Book) -> None:
    assert book.best_bid() == (100.0, 1.0)
    assert book.best_ask() == (101.0, 1.5)
    assert book.mid() == 100.5
    assert book.spread() == 1.0
    assert book.depth == BookDepth(bids=3, asks=3)
    assert book.top(2) == ([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.5), (102.0, 2.5)])


def test_snapshot_replaces_everything_and_skips_zero_sizes(book: L2Book) -> None:
    book.apply_snapshot(bids=[(50.0, 1.0), (49.0, 0.0)], asks=[(60.0, 2.0)])
    assert book.depth == BookDepth(1, 1)
    assert book.size_at(BookSide.BID, 100.0) == 0.0
    assert book.top(10) == ([(50.0, 1.0)], [(60.0, 2.0)])


def test_size_change_new_level_and_delete(book: L2Book) -> None:
    crossed = book.apply_updates(
        [
            Change("bid", 99.0, 5.0),  # size change
            Change("bid", 100.5, 0.25),  # new best bid
            Change("offer", 101.0, 0.0),  # delete best ask
            Change("ask", 104.0, 1.0),  # the older spelling of the ask side
        ]
    )
    assert crossed is False
    assert book.best_bid() == (100.5, 0.25)
    assert book.best_ask() == (102.0, 2.5)
    assert book.size_at(BookSide.BID, 99.0) == 5.0
    assert book.size_at(BookSide.ASK, 101.0) == 0.0
    assert book.size_at(BookSide.ASK, 104.0) == 1.0
    assert book.depth == BookDepth(4, 3)


def test_deleting_a_missing_level_is_a_no_op(book: L2Book) -> None:
    before = book.top(10)
    book.apply_updates([Change("bid", 42.0, 0.0), Change("offer", 420.0, 0.0)])
    assert book.top(10) == before


def test_set_bid_and_set_ask(book: L2Book) -> None:
    book.set_bid(100.0, 0.0)
    book.set_ask(100.5, 9.0)
    assert book.best_bid() == (99.0, 2.0)
    assert book.best_ask() == (100.5, 9.0)


def test_version_bumps_on_every_change(book: L2Book) -> None:
    v0 = book.version
    book.set_bid(97.0, 1.0)
    assert book.version == v0 + 1
    book.apply_updates([])
    assert book.version == v0 + 2
    book.clear()
    assert book.version == v0 + 3
    assert book.depth == BookDepth(0, 0)


def test_crossed_detection(book: L2Book) -> None:
    assert book.apply_updates([Change("bid", 101.0, 1.0)]) is True
    assert book.is_crossed()


def test_locked_book_counts_as_crossed() -> None:
    b = L2Book("X")
    b.apply_snapshot([(10.0, 1.0)], [(10.0, 1.0)])
    assert b.is_crossed()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (Change("bid", 99.5, -1.0), "bid size"),
        (Change("bid", 99.5, math.nan), "bid size"),
        (Change("bid", 99.5, math.inf), "bid size"),
        (Change("bid", -5.0, 1.0), "bid price"),
        (Change("bid", 0.0, 1.0), "bid price"),
        (Change("bid", math.nan, 1.0), "bid price"),
        (Change("bid", math.inf, 1.0), "bid price"),
        (Change("offer", 101.5, -0.5), "ask size"),
        (Change("offer", 101.5, math.nan), "ask size"),
        (Change("offer", -1.0, 1.0), "ask price"),
        (Change("offer", math.inf, 1.0), "ask price"),
    ],
)
def test_invalid_update_clears_the_book_and_raises(
    book: L2Book, change: Change, message: str
) -> None:
    v0 = book.version
    with pytest.raises(InvalidLevelError, match=message):
        book.apply_updates([Change("bid", 99.0, 7.0), change])
    # Never a half-applied, corrupt book: it is empty and its version moved on.
    assert book.depth == BookDepth(0, 0)
    assert book.version > v0


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        ([(-1.0, 1.0)], []),
        ([(1.0, -1.0)], []),
        ([], [(math.nan, 1.0)]),
        ([], [(1.0, math.inf)]),
        ([(0.0, 1.0)], []),
    ],
)
def test_invalid_snapshot_leaves_an_empty_book(
    book: L2Book, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> None:
    with pytest.raises(InvalidLevelError):
        book.apply_snapshot(bids, asks)
    assert book.depth == BookDepth(0, 0)


def test_top_is_cached_per_version(book: L2Book) -> None:
    first = book.top(2)
    assert book.top(2) is first
    book.set_ask(101.0, 7.0)
    second = book.top(2)
    assert second is not first
    assert second[1][0] == (101.0, 7.0)
    assert book.top(0) == ([], [])


def test_top_decimal_converts_at_the_edge() -> None:
    b = L2Book("BTC-USD")
    b.apply_snapshot([(68900.01, 0.12345678)], [(68900.1, 2.0)])
    bids, asks = b.top_decimal(5)
    assert bids == [(Decimal("68900.01"), Decimal("0.12345678"))]
    assert asks == [(Decimal("68900.1"), Decimal("2.0"))]
    assert to_decimal(0.1) == Decimal("0.1")


def test_checksum_is_path_independent() -> None:
    direct = L2Book("X")
    direct.apply_snapshot([(10.0, 1.0), (9.0, 2.0)], [(11.0, 3.0)])
    by_updates = L2Book("X")
    by_updates.apply_snapshot([(5.0, 1.0)], [(20.0, 1.0)])
    by_updates.apply_updates(
        [
            Change("bid", 9.0, 5.0),
            Change("bid", 10.0, 1.0),
            Change("offer", 11.0, 3.0),
            Change("bid", 5.0, 0.0),
            Change("offer", 20.0, 0.0),
            Change("bid", 9.0, 2.0),
        ]
    )
    assert by_updates.checksum() == direct.checksum()
    assert direct.checksum() == levels_checksum([(10.0, 1.0), (9.0, 2.0)], [(11.0, 3.0)])
    by_updates.set_bid(9.0, 2.5)
    assert by_updates.checksum() != direct.checksum()


def test_checksum_covers_only_the_requested_levels(book: L2Book) -> None:
    top_one = book.checksum(levels=1)
    book.set_bid(98.0, 30.0)  # below the top level
    assert book.checksum(levels=1) == top_one
    assert len(top_one) == 8


def test_deep_insertions_keep_order() -> None:
    b = L2Book("X")
    b.apply_snapshot([(float(p), 1.0) for p in range(1, 200, 2)], [(1000.0, 1.0)])
    b.apply_updates([Change("bid", float(p), 2.0) for p in range(2, 200, 2)])
    b.apply_updates([Change("bid", float(p), 0.0) for p in range(3, 200, 3)])
    bids, _ = b.top(500)
    prices = [price for price, _ in bids]
    assert prices == sorted(prices, reverse=True)
    assert prices == [float(p) for p in range(199, 0, -1) if p % 3]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_small_window_matches_a_sorted_reference(seed: int) -> None:
    """Thousands of random updates over 300 ticks through a 4-level window: the window
    overflows (trim), empties (refill), and the deep heap fills with stale entries (compact)."""
    rng = random.Random(seed)
    book = L2Book("X", window=4)
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    book.apply_snapshot([], [])
    for step in range(6000):
        batch = []
        for _ in range(rng.randint(1, 6)):
            is_bid = rng.random() < 0.5
            # Bids on ticks 1-150, asks on 151-300: never crossed; both near-top and deep.
            tick = rng.randint(1, 150) if is_bid else rng.randint(151, 300)
            if rng.random() < 0.3 and step % 7:
                # Near the top, where the window churns.
                tick = 150 - rng.randint(0, 5) if is_bid else 151 + rng.randint(0, 5)
            price = tick / 4
            size = 0.0 if rng.random() < 0.45 else float(rng.randint(1, 9))
            batch.append(Change("bid" if is_bid else "offer", price, size))
            side = bids if is_bid else asks
            if size:
                side[price] = size
            else:
                side.pop(price, None)
        assert book.apply_updates(batch) is False
        expected_bids = sorted(bids.items(), reverse=True)
        expected_asks = sorted(asks.items())
        assert book.best_bid() == (expected_bids[0] if expected_bids else None)
        assert book.best_ask() == (expected_asks[0] if expected_asks else None)
        if step % 50 == 0:
            assert book.top(12) == (expected_bids[:12], expected_asks[:12])
            assert book.depth == (len(bids), len(asks))
    assert book.top(1000) == (sorted(bids.items(), reverse=True), sorted(asks.items()))


def test_window_must_be_reasonable() -> None:
    with pytest.raises(ValueError):
        L2Book("X", window=3)
