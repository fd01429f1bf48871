"""The order book alone: price-time priority, aggregation and level bookkeeping in ticks/lots."""

from __future__ import annotations

import pytest

from core.model import Side
from core.sim.matching import BookMatch, OrderBook


@pytest.fixture
def book() -> OrderBook:
    """An empty book."""
    return OrderBook()


def test_best_prices_and_sorted_levels(book: OrderBook) -> None:
    for order_id, ticks in (("b1", 100), ("b2", 102), ("b3", 101)):
        book.bids.add(order_id, ticks, 5)
    for order_id, ticks in (("a1", 110), ("a2", 108), ("a3", 109)):
        book.asks.add(order_id, ticks, 5)

    assert book.bids.best() == 102
    assert book.asks.best() == 108
    assert [t for t, _ in book.bids.levels()] == [102, 101, 100]
    assert [t for t, _ in book.asks.levels()] == [108, 109, 110]
    assert book.asks.levels(depth=2) == [(108, 5), (109, 5)]
    assert not book.is_crossed()


def test_empty_side_has_no_best(book: OrderBook) -> None:
    assert book.bids.best() is None
    assert book.asks.consume_best(10) == []
    assert not book.would_cross(Side.BUY, 1_000)
    assert len(book.asks) == 0


def test_orders_at_a_level_aggregate(book: OrderBook) -> None:
    assert book.asks.add("a1", 100, 3) == 3
    assert book.asks.add("a2", 100, 4) == 7
    assert book.asks.level_lots(100) == 7
    assert book.asks.level_lots(101) == 0


def test_consume_takes_oldest_first_and_reports_what_is_left(book: OrderBook) -> None:
    book.asks.add("first", 100, 3)
    book.asks.add("second", 100, 4)
    book.asks.add("worse", 101, 9)

    matches = book.asks.consume_best(5)

    assert matches == [
        BookMatch("first", 100, 3, maker_lots_left=0, level_lots_left=4),
        BookMatch("second", 100, 2, maker_lots_left=2, level_lots_left=2),
    ]
    assert list(book.asks.orders()) == [(100, "second", 2), (101, "worse", 9)]


def test_consume_never_crosses_to_the_next_level(book: OrderBook) -> None:
    book.bids.add("b1", 100, 2)
    book.bids.add("b2", 99, 5)

    matches = book.bids.consume_best(10)

    assert [(m.order_id, m.lots) for m in matches] == [("b1", 2)]
    assert book.bids.best() == 99


def test_remove_drops_empty_level(book: OrderBook) -> None:
    book.bids.add("b1", 100, 2)
    book.bids.add("b2", 100, 3)
    assert book.bids.remove("b1", 100) == (2, 3)
    assert book.bids.remove("b2", 100) == (3, 0)
    assert book.bids.best() is None
    assert book.bids.levels() == []


def test_add_rejects_bad_input(book: OrderBook) -> None:
    with pytest.raises(ValueError, match="positive size"):
        book.bids.add("b1", 100, 0)
    book.bids.add("b1", 100, 1)
    with pytest.raises(ValueError, match="already rests"):
        book.bids.add("b1", 100, 1)


def test_lots_through_respects_the_limit(book: OrderBook) -> None:
    book.asks.add("a1", 100, 2)
    book.asks.add("a2", 101, 3)
    book.asks.add("a3", 105, 50)
    assert book.asks.lots_through(101, enough=100) == 5
    assert book.asks.lots_through(None, enough=4) == 5  # stops counting once it has enough
    assert book.asks.lots_through(99, enough=1) == 0
    book.bids.add("b1", 90, 4)
    book.bids.add("b2", 80, 4)
    assert book.bids.lots_through(85, enough=100) == 4


def test_would_cross_and_is_crossed(book: OrderBook) -> None:
    book.bids.add("b", 100, 1)
    book.asks.add("a", 102, 1)
    assert book.would_cross(Side.BUY, 102)
    assert not book.would_cross(Side.BUY, 101)
    assert book.would_cross(Side.SELL, 100)
    assert not book.would_cross(Side.SELL, 101)
    assert book.side(Side.BUY) is book.bids
    assert book.opposite(Side.BUY) is book.asks
    book.bids.add("crossing", 103, 1)  # the book itself does not match: the exchange does
    assert book.is_crossed()
