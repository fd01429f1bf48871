"""``CoinbaseVenue`` against the simulated exchange over loopback: REST for orders and reads,
the user WebSocket for cumulative order updates, faults injected by the sim.

The book is the conftest's fixed market-maker ladder: BTC-USD bids 67990 down and asks 68010
up in steps of 10, 0.5 BTC a level. The demo account holds core.sim.runner.DEMO_BALANCES.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.clock import ManualClock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.errors import CoinbaseError
from core.coinbase.rest import CoinbaseRestClient
from core.coinbase.stream import FrameSink, Subscription
from core.coinbase.ws import CoinbaseWebSocket
from core.model import (
    ExchangeOrder,
    ExchangeOrderStatus,
    OrderSpec,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
)
from core.sim.exchange import SimExchange
from core.sim.runner import DEMO_BALANCES
from core.sim.server import SimEndpoints, SimServer
from core.sim.types import SimOrderRequest
from core.venue import OrderAccepted, OrderNotFound, OrderOutcomeUnknown, OrderRejected, Venue
from core.venues.coinbase import CoinbaseVenue
from tests.doubles.venue_listener import VenueRecorder
from tests.integration.loopback import MAKER_USER

D = Decimal
BTC = "BTC-USD"
OPEN = ExchangeOrderStatus.OPEN
FILLED = ExchangeOrderStatus.FILLED
CANCELLED = ExchangeOrderStatus.CANCELLED


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Yield to the loop until ``condition()`` holds; fail after ``timeout`` real seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def no_wait(_seconds: float) -> None:
    """The REST client's pacing/backoff sleep, made instant (the sim does not throttle)."""
    await asyncio.sleep(0)


@dataclass
class Harness:
    venue: CoinbaseVenue
    listener: VenueRecorder
    exchange: SimExchange
    server: SimServer
    clock: ManualClock
    user_id: str

    async def place(self, spec: OrderSpec, client_order_id: str | None = None) -> str:
        outcome = await self.venue.place(spec, client_order_id or str(uuid.uuid4()))
        assert isinstance(outcome, OrderAccepted), outcome
        return outcome.placed.order_id

    async def status_seen(self, order_id: str, status: ExchangeOrderStatus) -> ExchangeOrder:
        """The first update on the user channel with this status (waits for it)."""
        self.server.flush()
        await eventually(lambda: any(u.status is status for u in self.listener.of(order_id)))
        return next(u for u in self.listener.of(order_id) if u.status is status)

    def maker_takes(self, side: Side, base_size: str) -> None:
        """The market maker sends a market order (prints trades), flushed to the sockets."""
        result = self.exchange.create_order(
            MAKER_USER,
            SimOrderRequest(
                str(uuid.uuid4()), BTC, side, "market_market_ioc", base_size=D(base_size)
            ),
        )
        assert result.success, result
        self.server.flush()


def rest_client(endpoints: SimEndpoints, clock: ManualClock) -> CoinbaseRestClient:
    signer = JwtSigner(endpoints.credentials, clock, rest_host_from_url(endpoints.rest_url))
    return CoinbaseRestClient(
        endpoints.rest_url,
        signer,
        clock=clock,
        private_rate_per_s=1000,
        public_rate_per_s=1000,
        timeout_s=5,
        sleep=no_wait,
    )


@pytest.fixture
async def harness(
    endpoints: SimEndpoints,
    sim_clock: ManualClock,
    sim_server: SimServer,
    sim_exchange: SimExchange,
) -> AsyncIterator[Harness]:
    """A started CoinbaseVenue (REST + user socket) on the sim, its user channel subscribed,
    with a recording listener."""
    rest = rest_client(endpoints, sim_clock)
    signer = rest.signer
    assert signer is not None

    def user_socket(sink: FrameSink) -> CoinbaseWebSocket:
        # The socket's own clock never moves: tests jump the sim's clock by seconds, which
        # must not look like silence to the watchdog.
        return CoinbaseWebSocket(
            "user",
            endpoints.ws_user_url,
            [Subscription("user", ())],
            sink,
            clock=ManualClock(),
            token_factory=signer.ws_token,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.2,
        )

    venue = CoinbaseVenue(rest, user_socket_factory=user_socket, clock=sim_clock)
    listener = VenueRecorder()
    venue.set_listener(listener)
    await venue.start()
    assert venue.user_socket is not None
    assert await venue.user_socket.wait_connected(5)
    await eventually(lambda: venue.stream_connected)  # the user subscription was accepted
    try:
        yield Harness(venue, listener, sim_exchange, sim_server, sim_clock, endpoints.user_id)
    finally:
        await venue.stop()
        await rest.aclose()


def limit(
    side: Side, size: str, price: str, tif: TimeInForce = TimeInForce.GTC, **extra: object
) -> OrderSpec:
    return OrderSpec(
        BTC,
        side,
        OrderType.LIMIT,
        base_size=D(size),
        limit_price=D(price),
        time_in_force=tif,
        **extra,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------- lifecycles


async def test_market_orders_by_base_and_by_quote(harness: Harness) -> None:
    assert harness.venue.stream_connected
    by_base = await harness.place(OrderSpec(BTC, Side.BUY, OrderType.MARKET, base_size=D("0.6")))
    filled = await harness.status_seen(by_base, FILLED)
    assert filled.filled_size == D("0.6")
    assert filled.filled_value == D("0.5") * 68010 + D("0.1") * 68020
    assert filled.total_fees > 0

    by_quote = await harness.place(OrderSpec(BTC, Side.BUY, OrderType.MARKET, quote_size=D("1000")))
    filled = await harness.status_seen(by_quote, FILLED)
    assert 0 < filled.filled_value + filled.total_fees <= D("1000")
    fills = await harness.venue.list_fills(order_ids=[by_base, by_quote])
    assert {fill.order_id for fill in fills} == {by_base, by_quote}
    assert sum(f.size for f in fills if f.order_id == by_base) == D("0.6")


async def test_gtc_limit_rests_then_cancels(harness: Harness) -> None:
    order_id = await harness.place(limit(Side.BUY, "0.01", "60000"))
    opened = await harness.status_seen(order_id, OPEN)
    assert opened.limit_price == D("60000") and opened.filled_size == 0
    assert order_id in {o.order_id for o in await harness.venue.list_open_orders([BTC])}

    (result,) = await harness.venue.cancel([order_id])
    assert result.success
    await harness.status_seen(order_id, CANCELLED)
    assert order_id not in {o.order_id for o in await harness.venue.list_open_orders()}


async def test_gtd_limit_expires_at_its_end_time(harness: Harness) -> None:
    end = datetime.fromtimestamp(harness.clock.time(), tz=UTC) + timedelta(seconds=2)
    order_id = await harness.place(limit(Side.BUY, "0.01", "60000", TimeInForce.GTD, end_time=end))
    await harness.status_seen(order_id, OPEN)

    harness.clock.advance(3)  # the sim's market loop expires it on its next tick
    expired = await harness.status_seen(order_id, ExchangeOrderStatus.EXPIRED)
    assert expired.filled_size == 0
    assert (await harness.venue.get_order(order_id)).status is ExchangeOrderStatus.EXPIRED


async def test_ioc_and_fok_limits(harness: Harness) -> None:
    ioc = await harness.place(limit(Side.BUY, "0.6", "68010", TimeInForce.IOC))
    ended = await harness.status_seen(ioc, CANCELLED)
    assert ended.filled_size == D("0.5")  # the one level at 68010, the rest cancelled

    killed = await harness.place(limit(Side.BUY, "0.6", "68020", TimeInForce.FOK))
    ended = await harness.status_seen(killed, CANCELLED)
    assert ended.filled_size == 0  # 0.5 available at or under 68020: all or nothing

    filled = await harness.place(limit(Side.BUY, "0.5", "68020", TimeInForce.FOK))
    assert (await harness.status_seen(filled, FILLED)).filled_size == D("0.5")


async def test_post_only_that_would_cross_is_rejected(harness: Harness) -> None:
    outcome = await harness.venue.place(
        limit(Side.BUY, "0.01", "68010", post_only=True), str(uuid.uuid4())
    )
    assert isinstance(outcome, OrderRejected)
    assert outcome.code == "INVALID_LIMIT_PRICE_POST_ONLY"
    assert await harness.venue.list_open_orders() == []


async def test_stop_limit_triggers_on_a_print_at_its_stop(harness: Harness) -> None:
    spec = OrderSpec(
        BTC,
        Side.BUY,
        OrderType.STOP_LIMIT,
        base_size=D("0.1"),
        limit_price=D("68200"),
        stop_price=D("68100"),
        stop_direction=StopDirection.UP,
    )
    order_id = await harness.place(spec)
    waiting = await harness.status_seen(order_id, OPEN)
    assert waiting.order_type == "STOP_LIMIT" and waiting.filled_size == 0

    harness.maker_takes(Side.BUY, "4.75")  # walks 68010 .. 68090 and 0.25 of 68100
    filled = await harness.status_seen(order_id, FILLED)
    assert filled.filled_size == D("0.1")
    assert filled.filled_value == D("0.1") * 68100


async def test_partial_fills_arrive_as_cumulative_updates(harness: Harness) -> None:
    order_id = await harness.place(limit(Side.SELL, "0.5", "68005"))
    await harness.status_seen(order_id, OPEN)

    harness.maker_takes(Side.BUY, "0.15")
    await eventually(lambda: (harness.listener.latest(order_id) or OPEN_0).filled_size > 0)
    harness.maker_takes(Side.BUY, "0.2")
    await eventually(lambda: (harness.listener.latest(order_id) or OPEN_0).filled_size >= D("0.35"))

    updates = harness.listener.of(order_id)
    sizes = [update.filled_size for update in updates]
    assert sizes == sorted(sizes)  # cumulative: never goes back
    assert D("0.15") in sizes and sizes[-1] == D("0.35")
    last = updates[-1]
    assert last.status is OPEN and last.filled_value == D("0.35") * 68005
    assert last.leaves_quantity == D("0.15")


OPEN_0 = ExchangeOrder("", "", BTC, Side.BUY, OPEN, "LIMIT")


# ---------------------------------------------------------------------- bulk and reads


async def test_cancel_250_orders_in_batches_and_list_everything_open(harness: Harness) -> None:
    placed = []
    for n in range(250):
        result = harness.exchange.create_order(
            harness.user_id,
            SimOrderRequest(
                f"bulk-{n}",
                BTC,
                Side.BUY,
                "limit_limit_gtc",
                base_size=D("0.0001"),
                limit_price=D("50000") + D(n),
            ),
        )
        assert result.success and result.order is not None, result
        placed.append(result.order.order_id)
    stop_id = await harness.place(
        OrderSpec(
            BTC,
            Side.SELL,
            OrderType.STOP_LIMIT,
            base_size=D("0.01"),
            limit_price=D("60000"),
            stop_price=D("60010"),
            stop_direction=StopDirection.DOWN,
        )
    )

    open_ids = {order.order_id for order in await harness.venue.list_open_orders()}
    assert open_ids == {*placed, stop_id}

    results = await harness.venue.cancel([*placed, stop_id])
    assert len(results) == 251 and all(result.success for result in results)
    assert await harness.venue.list_open_orders() == []
    assert await harness.venue.cancel([]) == []


async def test_lost_create_response_is_unknown_and_the_same_id_returns_the_original(
    harness: Harness,
) -> None:
    spec = limit(Side.BUY, "0.002", "60000")
    client_order_id = str(uuid.uuid4())
    harness.server.faults.next_rest("lose_order_response")

    first = await harness.venue.place(spec, client_order_id)
    assert isinstance(first, OrderOutcomeUnknown)
    second = await harness.venue.place(spec, client_order_id)
    assert isinstance(second, OrderAccepted)

    at_sim = [
        order
        for order in harness.exchange.list_orders(harness.user_id)
        if order.client_order_id == client_order_id
    ]
    assert len(at_sim) == 1 and at_sim[0].order_id == second.placed.order_id
    since = datetime.fromtimestamp(harness.clock.time(), tz=UTC) - timedelta(minutes=1)
    recent = [
        order
        for order in await harness.venue.list_orders_since(since)
        if order.client_order_id == client_order_id
    ]
    assert [order.order_id for order in recent] == [second.placed.order_id]


async def test_reads_balances_products_and_errors(harness: Harness) -> None:
    balances = {balance.currency: balance for balance in await harness.venue.balances()}
    assert balances["USD"].available == D("100000")
    assert balances["BTC"].total == DEMO_BALANCES["BTC"]
    (product,) = await harness.venue.products([BTC])
    assert product.product_id == BTC and product.price_increment == D("0.01")
    with pytest.raises(OrderNotFound):
        await harness.venue.get_order("no-such-order")
    harness.server.faults.next_rest(500, count=10)  # more than the client's GET retries
    with pytest.raises(CoinbaseError):
        await harness.venue.list_open_orders()
    harness.server.faults.clear()


async def test_stream_loss_is_reported_and_the_socket_comes_back(harness: Harness) -> None:
    venue: Venue = harness.venue
    assert harness.server.drop_websockets() >= 1
    await eventually(lambda: bool(harness.listener.resets))
    assert "user stream lost" in harness.listener.resets[0]
    await eventually(lambda: venue.stream_connected)
    # Updates flow again on the new socket.
    order_id = await harness.place(limit(Side.BUY, "0.01", "60000"))
    await harness.status_seen(order_id, OPEN)


async def test_without_a_key_nothing_is_sent_and_nothing_streams(
    endpoints: SimEndpoints, sim_clock: ManualClock
) -> None:
    async with CoinbaseRestClient(endpoints.rest_url, None, clock=sim_clock) as rest:
        venue = CoinbaseVenue(rest, user_socket_factory=None, clock=sim_clock)
        await venue.start()
        assert not venue.stream_connected and venue.name == "coinbase"
        outcome = await venue.place(limit(Side.BUY, "0.01", "60000"), "no-key")
        assert isinstance(outcome, OrderRejected) and outcome.code == "NO_API_KEY"
        results = await venue.cancel(["a", "b", "a"])
        assert [(r.order_id, r.success, r.failure_reason) for r in results] == [
            ("a", False, "NO_API_KEY"),
            ("b", False, "NO_API_KEY"),
        ]
        bad = await venue.place(OrderSpec(BTC, Side.BUY, OrderType.MARKET), "bad-spec")
        assert isinstance(bad, OrderRejected) and bad.code == "INVALID_ORDER_SPEC"
        await venue.stop()
