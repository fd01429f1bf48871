"""The simulated exchange's WebSocket feed over loopback: acks, snapshots, updates, sequence
numbers, the user channel, timeouts and slow clients."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from core.clock import ManualClock
from core.model import Side
from core.sim.exchange import SimExchange
from core.sim.server import SimEndpoints, SimServer
from core.sim.types import SimOrderRequest
from tests.integration.loopback import LEVELS_PER_SIDE, MAKER_USER, RestClient, make_jwt


def _maker_order(
    exchange: SimExchange,
    client_order_id: str,
    side: Side,
    size: str,
    price: str,
    kind: str = "limit_limit_gtc",
) -> str:
    result = exchange.create_order(
        MAKER_USER,
        SimOrderRequest(
            client_order_id,
            "BTC-USD",
            side,
            kind,
            base_size=Decimal(size),
            limit_price=Decimal(price),
        ),
    )
    assert result.success and result.order is not None, result
    return result.order.order_id


async def test_level2_ack_snapshot_then_updates(
    ws_connect: Any, sim_server: SimServer, sim_exchange: SimExchange
) -> None:
    async with ws_connect() as ws:
        ack = await ws.subscribe("level2", ["BTC-USD"])
        assert ack["sequence_num"] == 0
        assert ack["events"] == [{"subscriptions": {"level2": ["BTC-USD"]}}]
        assert set(ack) == {"channel", "client_id", "timestamp", "sequence_num", "events"}

        snapshot = await ws.recv()
        assert snapshot["channel"] == "l2_data" and snapshot["sequence_num"] == 1
        (event,) = snapshot["events"]
        assert event["type"] == "snapshot" and event["product_id"] == "BTC-USD"
        sides = [u["side"] for u in event["updates"]]
        assert sides.count("bid") == sides.count("offer") == LEVELS_PER_SIDE
        first_bid = next(u for u in event["updates"] if u["side"] == "bid")
        assert first_bid["price_level"] == "67990.00"
        assert Decimal(first_bid["new_quantity"]) == Decimal("0.5")

        # A new level, then more size on it in the same flush: one update, absolute size.
        order_a = _maker_order(sim_exchange, "a", Side.BUY, "0.25", "67995.00")
        _maker_order(sim_exchange, "b", Side.BUY, "0.5", "67995.00")
        sim_server.flush()
        update = await ws.recv()
        assert update["channel"] == "l2_data" and update["sequence_num"] == 2
        assert update["events"][0]["type"] == "update"
        (level,) = update["events"][0]["updates"]
        assert level["side"] == "bid" and level["price_level"] == "67995.00"
        assert Decimal(level["new_quantity"]) == Decimal("0.75")

        sim_exchange.cancel_orders(MAKER_USER, [order_a])
        sim_server.flush()
        (level,) = (await ws.recv())["events"][0]["updates"]
        assert Decimal(level["new_quantity"]) == Decimal("0.5")

        # A trade that takes the best ask away reports the offer level at 0.
        sim_exchange.create_order(
            MAKER_USER,
            SimOrderRequest(
                "take", "BTC-USD", Side.BUY, "market_market_ioc", base_size=Decimal("0.5")
            ),
        )
        sim_server.flush()
        message = await ws.recv_until(lambda m: m["channel"] == "l2_data")
        offers = [u for u in message["events"][0]["updates"] if u["side"] == "offer"]
        assert offers == [
            {
                "side": "offer",
                "event_time": offers[0]["event_time"],
                "price_level": "68010.00",
                "new_quantity": "0",
            }
        ]


async def test_sequence_numbers_are_per_connection_across_channels(
    ws_connect: Any, sim_server: SimServer, sim_exchange: SimExchange
) -> None:
    async with ws_connect() as first, ws_connect() as second:
        await first.send({"type": "subscribe", "channel": "heartbeats", "product_ids": []})
        await first.send(
            {"type": "subscribe", "channel": "level2", "product_ids": ["BTC-USD", "ETH-USD"]}
        )
        await second.subscribe("level2", ["BTC-USD"])
        seen_first: list[int] = []
        channels: set[str] = set()
        traded = False
        while len(seen_first) < 8:
            message = await first.recv()
            seen_first.append(message["sequence_num"])
            channels.add(message["channel"])
            if not traded and "level2" in str(message["events"]):
                _maker_order(sim_exchange, "x", Side.SELL, "1", "68500.00")
                sim_server.flush()
                traded = True
        assert seen_first == list(range(8)), "one counter from 0 across every channel"
        assert {"subscriptions", "l2_data", "heartbeats"} <= channels
        snapshot = await second.recv()
        update = await second.recv_until(lambda m: m["events"][0].get("type") == "update")
        assert snapshot["sequence_num"] == 1, "the ack was 0"
        assert update["sequence_num"] == 2


async def test_resubscribe_sends_a_fresh_snapshot(ws_connect: Any) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("level2", ["ETH-USD"])
        assert (await ws.recv())["events"][0]["type"] == "snapshot"
        ack = await ws.subscribe("level2", ["ETH-USD"])
        assert ack["events"] == [{"subscriptions": {"level2": ["ETH-USD"]}}]
        assert (await ws.recv())["events"][0]["type"] == "snapshot"


async def test_unsubscribe_acks_the_remaining_set_and_stops_updates(
    ws_connect: Any, sim_server: SimServer, sim_exchange: SimExchange
) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("level2", ["BTC-USD", "ETH-USD"])
        await ws.subscribe("market_trades", ["BTC-USD"])
        await ws.send({"type": "unsubscribe", "channel": "level2", "product_ids": ["BTC-USD"]})
        ack = await ws.recv_until(lambda m: m["channel"] == "subscriptions")
        assert ack["events"] == [
            {"subscriptions": {"level2": ["ETH-USD"], "market_trades": ["BTC-USD"]}}
        ]
        await ws.send({"type": "unsubscribe", "channel": "market_trades", "product_ids": []})
        ack = await ws.recv_until(lambda m: m["channel"] == "subscriptions")
        assert ack["events"] == [{"subscriptions": {"level2": ["ETH-USD"]}}]
        _maker_order(sim_exchange, "y", Side.SELL, "1", "68600.00")
        sim_server.flush()
        await ws.subscribe("heartbeats")  # a marker: anything before it would be a BTC update
        message = await ws.recv_until(lambda m: m["channel"] == "heartbeats")
        assert message["events"][0]["heartbeat_counter"]


async def test_market_channels_snapshot_and_update_after_a_trade(
    ws_connect: Any, sim_server: SimServer, sim_exchange: SimExchange
) -> None:
    async with ws_connect(user=True) as ws:  # the user URL accepts market channels too
        await ws.subscribe("ticker", ["BTC-USD"])
        ticker = await ws.recv()
        assert ticker["channel"] == "ticker"
        (entry,) = ticker["events"][0]["tickers"]
        assert ticker["events"][0]["type"] == "snapshot"
        assert entry["type"] == "ticker" and entry["product_id"] == "BTC-USD"
        assert entry["best_bid"] == "67990.00" and entry["best_ask"] == "68010.00"
        await ws.subscribe("market_trades", ["BTC-USD"])
        trades = await ws.recv()
        assert trades["channel"] == "market_trades" and trades["events"][0] == {
            "type": "snapshot",
            "trades": [],
        }
        await ws.subscribe("candles", ["BTC-USD"])
        candles = await ws.recv()
        assert candles["channel"] == "candles" and candles["events"][0]["type"] == "snapshot"
        await ws.subscribe("ticker_batch", ["BTC-USD"])
        batch = await ws.recv()
        assert batch["channel"] == "ticker_batch"
        # Like production: ticker_batch entries carry no best bid/ask.
        (batch_entry,) = batch["events"][0]["tickers"]
        assert batch_entry["price"] and not {"best_bid", "best_ask"} & set(batch_entry)
        await ws.subscribe("status", [])
        status = await ws.recv()
        ids = [p["id"] for p in status["events"][0]["products"]]
        assert ids == ["BTC-USD", "ETH-USD", "SOL-USD"]

        sim_exchange.create_order(
            MAKER_USER,
            SimOrderRequest(
                "hit", "BTC-USD", Side.SELL, "market_market_ioc", base_size=Decimal("0.2")
            ),
        )
        sim_server.flush()
        trade_update = await ws.recv_until(lambda m: m["channel"] == "market_trades")
        (trade,) = trade_update["events"][0]["trades"]
        assert trade["side"] == "SELL" and trade["price"] == "67990.00"
        assert Decimal(trade["size"]) == Decimal("0.2")
        ticker_update = await ws.recv_until(lambda m: m["channel"] == "ticker")
        assert ticker_update["events"][0]["tickers"][0]["price"] == "67990.00"
        candle_update = await ws.recv_until(lambda m: m["channel"] == "candles")
        (candle,) = candle_update["events"][0]["candles"]
        assert candle["product_id"] == "BTC-USD" and candle["close"] == "67990.00"


async def test_heartbeats_count_up(ws_connect: Any) -> None:
    async with ws_connect() as ws:
        ack = await ws.subscribe("heartbeats")
        assert ack["events"] == [{"subscriptions": {"heartbeats": []}}]
        first = await ws.recv_until(lambda m: m["channel"] == "heartbeats")
        second = await ws.recv_until(lambda m: m["channel"] == "heartbeats")
        counter = first["events"][0]["heartbeat_counter"]
        assert type(counter) is int  # production sends an integer
        assert second["events"][0]["heartbeat_counter"] == counter + 1
        assert first["events"][0]["current_time"].endswith("+0000 UTC")


async def test_user_channel_snapshot_then_cumulative_updates(
    ws_connect: Any,
    rest: RestClient,
    sim_server: SimServer,
    sim_exchange: SimExchange,
    endpoints: SimEndpoints,
    sim_clock: ManualClock,
) -> None:
    created = await rest.create_order(
        "BTC-USD", "BUY", {"limit_limit_gtc": {"base_size": "0.5", "limit_price": "67000.00"}}
    )
    order_id = created.json()["success_response"]["order_id"]
    async with ws_connect(user=True) as ws:
        ack = await ws.subscribe("user", [], token=make_jwt(endpoints.credentials, sim_clock))
        assert ack["events"] == [{"subscriptions": {"user": []}}]
        snapshot = await ws.recv()
        assert snapshot["channel"] == "user"
        event = snapshot["events"][0]
        assert event["type"] == "snapshot"
        assert event["positions"] == {
            "perpetual_futures_positions": [],
            "expiring_futures_positions": [],
        }
        (order,) = event["orders"]
        assert order["order_id"] == order_id and order["status"] == "OPEN"
        assert order["order_type"] == "Limit" and order["order_side"] == "BUY"
        assert Decimal(order["cumulative_quantity"]) == 0
        assert Decimal(order["leaves_quantity"]) == Decimal("0.5")

        # Two partial fills in separate flushes: two cumulative updates.
        for size in ("0.2", "0.3"):
            sim_exchange.create_order(
                MAKER_USER,
                SimOrderRequest(
                    f"sweep-{size}",
                    "BTC-USD",
                    Side.SELL,
                    "sor_limit_ioc",
                    base_size=Decimal("0.5") * 10 + Decimal(size),
                    limit_price=Decimal("67000.00"),
                ),
            )
            sim_server.flush()
        cumulative: list[Decimal] = []
        statuses: list[str] = []
        while len(cumulative) < 2:
            message = await ws.recv_until(lambda m: m["channel"] == "user")
            for update in message["events"][0]["orders"]:
                assert message["events"][0]["type"] == "update"
                if update["order_id"] == order_id:
                    cumulative.append(Decimal(update["cumulative_quantity"]))
                    statuses.append(update["status"])
                    assert Decimal(update["avg_price"]) == Decimal("67000")
                    assert Decimal(update["total_fees"]) > 0
        assert cumulative[-1] == Decimal("0.5")
        assert statuses[-1] == "FILLED"


async def test_user_channel_needs_a_valid_jwt(
    ws_connect: Any, endpoints: SimEndpoints, sim_clock: ManualClock
) -> None:
    async with ws_connect(user=True) as ws:
        await ws.send({"type": "subscribe", "channel": "user", "product_ids": []})
        assert await ws.recv() == {"type": "error", "message": "authentication failure"}
        expired = make_jwt(endpoints.credentials, sim_clock, not_before_offset_s=-3600)
        await ws.send({"type": "subscribe", "channel": "user", "product_ids": [], "jwt": expired})
        assert await ws.recv() == {"type": "error", "message": "authentication failure"}
        # With a good token it works on the same connection.
        ack = await ws.subscribe(
            "user", ["BTC-USD"], token=make_jwt(endpoints.credentials, sim_clock)
        )
        assert ack["events"] == [{"subscriptions": {"user": ["BTC-USD"]}}]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {"type": "subscribe", "channel": "heartbeat", "product_ids": []},
            "authentication failure",
        ),
        (
            {"type": "subscribe", "channel": "level2", "product_ids": []},
            "level2 requires product_ids",
        ),
        (
            {"type": "subscribe", "channel": "level2", "product_ids": ["DOGE-USD"]},
            "Failed to subscribe",
        ),
        (
            {"type": "subscribe", "channel": "level2", "product_ids": "BTC-USD"},
            "product_ids must be a list of strings",
        ),
        ({"type": "hello"}, "unknown message type 'hello'"),
        ([1, 2], "malformed message"),
    ],
)
async def test_bad_subscribe_messages_get_an_error(
    ws_connect: Any, message: Any, expected: str
) -> None:
    async with ws_connect() as ws:
        await ws.send(message)
        reply = await ws.recv()
        assert reply["type"] == "error" and reply["message"] == expected


async def test_not_json_gets_an_error(ws_connect: Any) -> None:
    async with ws_connect() as ws:
        await ws.connection.send("{oops")
        assert await ws.recv() == {"type": "error", "message": "malformed message"}


async def test_connection_without_subscription_is_closed(ws_connect: Any) -> None:
    async with ws_connect() as ws:
        await asyncio.wait_for(ws.connection.wait_closed(), 5)
        assert ws.connection.close_code == 1008


async def test_subscribed_connection_is_kept(ws_connect: Any, sim_server: SimServer) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("heartbeats")
        for _ in range(8):  # well past the 0.5 s subscribe timeout at 0.1 s per heartbeat
            await ws.recv_until(lambda m: m["channel"] == "heartbeats")
        assert sim_server.connection_count == 1


async def test_a_client_that_falls_behind_is_closed_with_1011(
    ws_connect: Any, sim_server: SimServer, sim_exchange: SimExchange
) -> None:
    sim_server.max_queue_messages = 5  # a tiny send queue so the rule is reachable
    async with ws_connect() as ws:
        await ws.subscribe("level2", ["BTC-USD"])
        # Synchronous flushes: the connection's writer gets no chance to drain in between.
        for index in range(10):
            _maker_order(sim_exchange, f"burst-{index}", Side.SELL, "0.1", f"{69000 + index}.00")
            sim_server.flush()
        await asyncio.wait_for(ws.connection.wait_closed(), 5)
        assert ws.connection.close_code == 1011
    assert sim_server.stats["slow_client_closes"] == 1


async def test_ticker_batch_only_when_the_price_moved(
    ws_connect: Any, sim_server: SimServer, sim_exchange: SimExchange
) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("ticker_batch", ["BTC-USD"])
        assert (await ws.recv())["events"][0]["type"] == "snapshot"
        sim_server.send_ticker_batch()
        first = await ws.recv()
        assert first["channel"] == "ticker_batch" and first["events"][0]["type"] == "update"
        sim_server.send_ticker_batch()  # same price: nothing
        sim_exchange.create_order(
            MAKER_USER,
            SimOrderRequest(
                "lift", "BTC-USD", Side.BUY, "market_market_ioc", base_size=Decimal("0.1")
            ),
        )
        sim_server.send_ticker_batch()
        moved = await ws.recv()
        assert moved["sequence_num"] == first["sequence_num"] + 1
        assert moved["events"][0]["tickers"][0]["price"] == "68010.00"


async def test_user_channel_product_filter_and_unsubscribe(
    ws_connect: Any,
    rest: RestClient,
    sim_server: SimServer,
    endpoints: SimEndpoints,
    sim_clock: ManualClock,
) -> None:
    async with ws_connect(user=True) as ws:
        token = make_jwt(endpoints.credentials, sim_clock)
        await ws.subscribe("user", ["ETH-USD"], token=token)
        assert (await ws.recv())["events"][0]["orders"] == []
        await rest.create_order(
            "BTC-USD", "BUY", {"limit_limit_gtc": {"base_size": "0.01", "limit_price": "60000.00"}}
        )
        await rest.create_order(
            "ETH-USD", "BUY", {"limit_limit_gtc": {"base_size": "0.1", "limit_price": "3000.00"}}
        )
        update = await ws.recv_until(lambda m: m["channel"] == "user")
        assert [o["product_id"] for o in update["events"][0]["orders"]] == ["ETH-USD"]
        await ws.subscribe("heartbeats")
        await ws.send({"type": "unsubscribe", "channel": "heartbeats", "product_ids": []})
        ack = await ws.recv_until(
            lambda m: (
                m["channel"] == "subscriptions"
                and "heartbeats" not in m["events"][0]["subscriptions"]
            )
        )
        assert ack["events"] == [{"subscriptions": {"user": ["ETH-USD"]}}]
        await ws.send({"type": "unsubscribe", "channel": "user", "product_ids": ["ETH-USD"]})
        ack = await ws.recv_until(lambda m: m["channel"] == "subscriptions")
        assert ack["events"] == [{"subscriptions": {}}]
        await ws.send({"type": "unsubscribe", "channel": "level2", "product_ids": ["BTC-USD"]})
        ack = await ws.recv_until(lambda m: m["channel"] == "subscriptions")
        assert ack["events"] == [{"subscriptions": {}}], (
            "unsubscribing what is not there is harmless"
        )
        # A second key on the same connection would be another user: refused.
        other = make_jwt(endpoints.credentials, sim_clock, claims={"sub": "x"})
        await ws.send({"type": "subscribe", "channel": "user", "product_ids": [], "jwt": other})
        assert await ws.recv() == {"type": "error", "message": "authentication failure"}


async def test_the_market_loop_steps_agents_and_survives_a_failing_step(
    sim_exchange: SimExchange, sim_clock: ManualClock
) -> None:
    steps: list[float] = []
    failed = asyncio.Event()

    class Agents:
        def step(self, dt: float) -> None:
            steps.append(dt)
            if len(steps) == 2:
                raise RuntimeError("a bug in an agent")
            if len(steps) >= 4:
                failed.set()

    server = SimServer(
        sim_exchange, Agents(), clock=sim_clock, tick_s=0.01, heartbeat_interval_s=0.01
    )
    await server.start()
    try:
        async with asyncio.timeout(5):
            while not failed.is_set():
                sim_clock.advance(0.5)
                await asyncio.sleep(0.02)
    finally:
        await server.stop()
    assert all(0 < dt <= 0.1 for dt in steps), "real elapsed time, capped at 0.1 s"


async def test_tiny_sizes_never_use_exponent_notation(
    ws_connect: Any, sim_server: SimServer, sim_exchange: SimExchange
) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("level2", ["BTC-USD"])
        await ws.recv()
        # A partial fill leaves 0.00000005 on the best ask (str() would say "5E-8").
        _maker_order(sim_exchange, "big", Side.SELL, "0.50000005", "68005.00")
        sim_exchange.create_order(
            MAKER_USER,
            SimOrderRequest(
                "eat", "BTC-USD", Side.BUY, "market_market_ioc", base_size=Decimal("0.5")
            ),
        )
        sim_server.flush()
        (level,) = (await ws.recv())["events"][0]["updates"]
        assert level == {**level, "price_level": "68005.00", "new_quantity": "0.00000005"}
        await ws.subscribe("level2", ["BTC-USD"])
        snapshot = await ws.recv()
        sizes = [u["new_quantity"] for u in snapshot["events"][0]["updates"]]
        assert "0.00000005" in sizes and not any("E" in size for size in sizes)


@pytest.mark.parametrize("channel", ["level2", "ticker", "heartbeats", "market_trades", "status"])
async def test_a_bad_jwt_on_any_channel_is_refused_and_the_socket_stays_open(
    ws_connect: Any, endpoints: SimEndpoints, sim_clock: ManualClock, channel: str
) -> None:
    """Coinbase checks a JWT on any subscription that carries one: a bad one gets the same
    error frame as on ``user``, and the socket stays open (heartbeats keep coming)."""
    products = [] if channel in ("heartbeats", "status") else ["BTC-USD"]
    expired = make_jwt(endpoints.credentials, sim_clock, not_before_offset_s=-3600)
    async with ws_connect() as ws:
        for token in ("not-a-jwt", expired):
            await ws.send(
                {"type": "subscribe", "channel": channel, "product_ids": products, "jwt": token}
            )
            assert await ws.recv() == {"type": "error", "message": "authentication failure"}
        # Still open: a later subscription without a token works on the same socket.
        ack = await ws.subscribe("heartbeats")
        assert ack["events"] == [{"subscriptions": {"heartbeats": []}}]
        # And a valid token on a public channel is accepted.
        good = make_jwt(endpoints.credentials, sim_clock)
        await ws.subscribe("level2", ["BTC-USD"], token=good)
