"""What the products endpoint changes in the market data service: products the exchange does
not list are set aside, USDC aliases are re-keyed, and level2 levels with more decimals than
the increments are refused. Real-shaped frames from tests/data/coinbase."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from core.clock import ManualClock
from core.coinbase.market_messages import BadInputKind
from core.coinbase.rest_decode import decode_products
from core.feed_state import BookStatus
from core.market import MarketDataService
from core.model import Product

DATA = Path(__file__).resolve().parents[1] / "data" / "coinbase"


def raw(name: str, **envelope: object) -> bytes:
    frame = orjson.loads((DATA / name).read_bytes())
    frame.update(envelope)
    return orjson.dumps(frame)


def products() -> dict[str, Product]:
    decoded = decode_products(orjson.loads((DATA / "products_usdc_alias.json").read_bytes()))
    return {p.product_id: p for p in decoded}


class Control:
    name = "market"

    def __init__(self) -> None:
        self.reconnects: list[str] = []
        self.resubscribes: list[tuple[str, tuple[str, ...]]] = []

    def request_reconnect(self, reason: str) -> None:
        self.reconnects.append(reason)

    def request_resubscribe(self, channel: str, product_ids: Sequence[str]) -> None:
        self.resubscribes.append((channel, tuple(product_ids)))


def service(product_ids: list[str]) -> tuple[MarketDataService, Control, ManualClock]:
    clock = ManualClock()
    market = MarketDataService(product_ids, clock=clock, stale_after_s=10)
    control = Control()
    market.on_connected(control)
    return market, control, clock


def l2(product_id: str, seq: int, kind: str, *levels: tuple[str, str, str]) -> bytes:
    updates = [
        {"side": side, "event_time": "2026-04-07T14:30:01Z", "price_level": p, "new_quantity": q}
        for side, p, q in levels
    ]
    return orjson.dumps(
        {
            "channel": "l2_data",
            "client_id": "",
            "timestamp": "2026-04-07T14:30:01Z",
            "sequence_num": seq,
            "events": [{"type": kind, "product_id": product_id, "updates": updates}],
        }
    )


# --------------------------------------------------------------------------- aliases


def test_a_usdc_book_goes_live_from_data_keyed_by_its_alias() -> None:
    market, _, _ = service(["BTC-USDC", "ETH-USD"])
    notes = market.configure_products(products())
    assert notes == ["BTC-USDC: market data arrives keyed BTC-USD (alias)"]
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=0))
    assert market.health("BTC-USDC").state is BookStatus.LIVE
    market.on_frame(l2("BTC-USD", 1, "update", ("bid", "67995.00", "0.3")))
    assert market.book("BTC-USDC").top(1)[0] == [(67995.0, 0.3)]
    trade = {
        "trade_id": "1",
        "product_id": "BTC-USD",
        "price": "68010.00",
        "size": "0.01",
        "side": "BUY",
        "time": "2026-04-07T14:30:01Z",
    }
    seen: list[str] = []
    market.add_trade_listener(lambda t: seen.append(t.product_id))
    market.on_frame(
        orjson.dumps(
            {
                "channel": "market_trades",
                "sequence_num": 2,
                "events": [{"type": "update", "trades": [trade]}],
            }
        )
    )
    assert [t.product_id for t in market.trades("BTC-USDC")] == ["BTC-USDC"]
    assert seen == ["BTC-USDC"]
    assert market.bad_input.count(BadInputKind.UNKNOWN_PRODUCT) == 0


def test_alias_learned_after_connect_asks_for_a_fresh_snapshot() -> None:
    market, control, _ = service(["BTC-USDC"])
    # Before the alias is known, BTC-USD data is for nobody.
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=0))
    assert market.bad_input.count(BadInputKind.UNKNOWN_PRODUCT) == 1
    market.configure_products(products())
    assert ("level2", ("BTC-USDC",)) in control.resubscribes
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=1))
    assert market.health("BTC-USDC").state is BookStatus.LIVE


def test_an_alias_configured_with_its_target_is_set_aside_by_name() -> None:
    market, _, _ = service(["BTC-USD", "BTC-USDC"])
    notes = market.configure_products(products())
    assert any(n.startswith("BTC-USDC: same market data as BTC-USD") for n in notes)
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=0))
    assert market.health("BTC-USD").state is BookStatus.LIVE
    assert market.health("BTC-USDC").state is BookStatus.STALE


# --------------------------------------------------------------------------- unknown products


def test_a_product_the_exchange_does_not_list_is_named_and_the_rest_stream() -> None:
    market, control, clock = service(["BTC-USD", "DOGE-EUR"])
    notes = market.configure_products(products())
    assert len(notes) == 1 and notes[0].startswith("DOGE-EUR: not listed by the exchange")
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=0))
    assert market.health("BTC-USD").state is BookStatus.LIVE
    health = market.health("DOGE-EUR")
    assert health.state is BookStatus.STALE and "not listed" in (health.reason or "")
    # Never asked for again (on Coinbase that would fail the subscription), not even after
    # a reconnect or a long wait.
    market.on_disconnected("test")
    market.on_connected(control)
    clock.advance(60)
    market.check_staleness()
    assert all("DOGE-EUR" not in ids for _, ids in control.resubscribes)
    assert "not listed" in (market.health("DOGE-EUR").reason or "")


# --------------------------------------------------------------------------- decimals


@pytest.mark.parametrize(
    "name",
    ["l2_update_40_decimals.json", "l2_update_size_too_precise.json", "l2_update_exponent.json"],
)
def test_a_level_finer_than_the_increments_is_refused_and_the_book_resynced(name: str) -> None:
    market, control, _ = service(["BTC-USD"])
    market.configure_products(products())
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=0))
    before = market.book("BTC-USD").top(5)
    market.on_frame(raw(name, sequence_num=1))
    assert market.bad_input.count(BadInputKind.TOO_PRECISE) == 1
    health = market.health("BTC-USD")
    assert health.state is BookStatus.STALE and "not a multiple of" in (health.reason or "")
    assert control.resubscribes == [("level2", ("BTC-USD",))]
    assert before != ([], [])
    # The fresh snapshot rebuilds it.
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=2))
    assert market.book("BTC-USD").top(5) == before


def test_a_snapshot_off_the_increments_is_refused() -> None:
    market, _, _ = service(["BTC-USD"])
    market.configure_products(products())
    snapshot = l2("BTC-USD", 0, "snapshot", ("bid", "67990.005", "1"), ("offer", "68010.00", "1"))
    market.on_frame(snapshot)
    assert market.bad_input.count(BadInputKind.TOO_PRECISE) == 1
    assert market.health("BTC-USD").state is BookStatus.STALE


def test_before_increments_are_known_nothing_is_refused_for_decimals() -> None:
    market, _, _ = service(["BTC-USD"])
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=0))
    market.on_frame(raw("l2_update_40_decimals.json", sequence_num=1))
    assert market.bad_input.total == 0
    assert market.health("BTC-USD").state is BookStatus.LIVE


def test_a_level_on_the_increments_is_applied() -> None:
    market, _, _ = service(["BTC-USD"])
    market.configure_products(products())
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=0))
    market.on_frame(raw("l2_update_on_increment.json", sequence_num=1))
    assert market.bad_input.total == 0
    assert market.book("BTC-USD").top(1)[0] == [(67995.0, 0.00000001)]


def test_text_frames_are_checked_too() -> None:
    market, _, _ = service(["BTC-USD"])
    market.configure_products(products())
    market.on_frame(raw("l2_snapshot_keyed_usd.json", sequence_num=0).decode())
    market.on_frame(raw("l2_update_40_decimals.json", sequence_num=1).decode())
    assert market.bad_input.count(BadInputKind.TOO_PRECISE) == 1


# --------------------------------------------------------------------------- real channels


@pytest.mark.parametrize(
    "name",
    [
        "market_status.json",
        "user_futures_balance_summary.json",
        "market_heartbeats_integer_counter.json",
        "market_ticker_batch_no_best_bid_ask.json",
    ],
)
def test_real_channels_are_not_bad_input(name: str) -> None:
    market, _, _ = service(["BTC-USD"])
    market.on_frame(raw(name, sequence_num=0))
    market.on_frame(raw(name, sequence_num=1))
    assert market.bad_input.counts() == {}
    assert market.stats.gaps == 0 and market.stats.duplicates == 0


def test_ticker_batch_without_best_bid_ask_is_kept() -> None:
    market, _, _ = service(["BTC-USD"])
    market.on_frame(raw("market_ticker_batch_no_best_bid_ask.json", sequence_num=0))
    ticker = market.ticker("BTC-USD")
    assert ticker is not None and ticker.price == 68000.01 and ticker.best_bid is None
