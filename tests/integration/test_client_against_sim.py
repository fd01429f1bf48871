"""The project's own Coinbase client against the simulated exchange, over loopback sockets.

REST (``CoinbaseRestClient``), the market WebSocket (``CoinbaseWebSocket`` feeding
``MarketDataService``) and the whole ``Engine``: the same code path the demo and live use.
The server's market agents are stepped by the test (``advance_market``), so the market is
seeded and deterministic; what the client sees is compared with the exchange's own state.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.clock import ManualClock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.errors import AuthenticationError
from core.coinbase.rest import (
    CoinbaseRestClient,
    OrderAccepted,
    OrderOutcomeUnknown,
    OrderRejected,
)
from core.coinbase.stream import Subscription
from core.coinbase.ws import CoinbaseWebSocket
from core.config import Credentials, load_settings
from core.engine import Engine
from core.feed_state import BookStatus
from core.market import MarketDataService
from core.model import ExchangeOrderStatus, OrderSpec, OrderType, Side, TimeInForce
from core.sim.agents import MarketAgents
from core.sim.exchange import SimExchange
from core.sim.runner import build_exchange
from core.sim.server import SimEndpoints, SimServer
from tests.integration.engine_harness import endpoints_of

SEED = 11
PRODUCTS = ("BTC-USD", "ETH-USD")


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait (yielding to the loop) until ``condition()`` holds; fail after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def exchange(clock: ManualClock) -> SimExchange:
    """A seeded simulated exchange with the demo account open."""
    return build_exchange(SEED, clock)


@pytest.fixture
def agents(exchange: SimExchange) -> MarketAgents:
    """Market agents with their books bootstrapped; the tests step them explicitly."""
    market = MarketAgents(exchange, seed=SEED, rate=2000.0, levels=120)
    market.bootstrap()
    return market


@pytest.fixture
async def server(
    exchange: SimExchange, agents: MarketAgents, clock: ManualClock
) -> AsyncIterator[SimServer]:
    """The sim serving REST + WS on 127.0.0.1:<free port>, heartbeats every 0.1 s."""
    sim = SimServer(exchange, agents, clock=clock, seed=SEED, heartbeat_interval_s=0.1)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def endpoints(server: SimServer) -> SimEndpoints:
    """The running sim's URLs and demo key."""
    assert server.endpoints is not None
    return server.endpoints


@pytest.fixture
async def client(endpoints: SimEndpoints, clock: ManualClock) -> AsyncIterator[CoinbaseRestClient]:
    """The project's REST client signed with the demo key (rate limits raised for speed)."""
    signer = JwtSigner(endpoints.credentials, clock, rest_host_from_url(endpoints.rest_url))
    async with CoinbaseRestClient(
        endpoints.rest_url,
        signer,
        clock=clock,
        private_rate_per_s=1000,
        public_rate_per_s=1000,
        timeout_s=2,
    ) as rest:
        yield rest


def limit(side: Side, size: str, price: str, **extra: object) -> OrderSpec:
    return OrderSpec(
        product_id="BTC-USD",
        side=side,
        order_type=OrderType.LIMIT,
        base_size=Decimal(size),
        limit_price=Decimal(price),
        **extra,  # type: ignore[arg-type]
    )


def new_id() -> str:
    return str(uuid.uuid4())


class TestRestClient:
    async def test_products_carry_increments_and_limits(self, client: CoinbaseRestClient) -> None:
        products = {p.product_id: p for p in await client.list_products(["BTC-USD", "SOL-USD"])}
        assert set(products) == {"BTC-USD", "SOL-USD"}
        btc = products["BTC-USD"]
        assert btc.base_increment == Decimal("0.00000001")
        assert btc.price_increment == Decimal("0.01")
        assert btc.quote_min_size == Decimal("1")
        assert btc.tradable

    async def test_accounts_and_book_and_candles(
        self, client: CoinbaseRestClient, exchange: SimExchange
    ) -> None:
        balances = {b.currency: b for b in await client.list_accounts()}
        assert balances["USD"].available > 0 and balances["BTC"].hold == 0
        book = await client.get_product_book("BTC-USD", limit=10)
        bids, asks = exchange.book_levels("BTC-USD", 10)
        assert book.bids == bids and book.asks == asks
        now = 1_767_225_600
        candles = await client.get_candles("BTC-USD", now - 3600, now, "ONE_MINUTE")
        assert candles and candles == sorted(candles, key=lambda c: c.start)

    async def test_limit_order_lifecycle(self, client: CoinbaseRestClient) -> None:
        book = await client.get_product_book("BTC-USD", limit=1)
        passive = book.bids[0][0] - Decimal("500")
        outcome = await client.create_order(limit(Side.BUY, "0.001", str(passive)), new_id())
        assert isinstance(outcome, OrderAccepted)
        order_id = outcome.placed.order_id
        opened = await client.get_order(order_id)
        assert opened.status is ExchangeOrderStatus.OPEN and opened.limit_price == passive
        assert order_id in {o.order_id for o in await client.list_open_orders(["BTC-USD"])}
        balances = {b.currency: b for b in await client.list_accounts()}
        assert balances["USD"].hold > Decimal("0.001") * passive  # price x size + fee allowance
        [result] = await client.cancel_orders([order_id])
        assert result.success
        assert (await client.get_order(order_id)).status is ExchangeOrderStatus.CANCELLED

    async def test_market_order_by_quote_fills_with_fees(self, client: CoinbaseRestClient) -> None:
        spec = OrderSpec("BTC-USD", Side.BUY, OrderType.MARKET, quote_size=Decimal("100"))
        outcome = await client.create_order(spec, new_id())
        assert isinstance(outcome, OrderAccepted)
        order = await client.get_order(outcome.placed.order_id)
        assert order.status is ExchangeOrderStatus.FILLED
        assert order.filled_size > 0 and order.total_fees > 0
        assert order.filled_value + order.total_fees <= Decimal("100")
        fills = await client.list_fills(order_ids=[order.order_id])
        assert sum(f.size for f in fills) == order.filled_size
        assert sum(f.commission for f in fills) == order.total_fees

    async def test_post_only_that_would_cross_is_rejected_with_the_exchange_code(
        self, client: CoinbaseRestClient
    ) -> None:
        book = await client.get_product_book("BTC-USD", limit=1)
        crossing = book.asks[0][0] + Decimal("10")
        outcome = await client.create_order(
            limit(Side.BUY, "0.001", str(crossing), post_only=True), new_id()
        )
        assert isinstance(outcome, OrderRejected)
        assert outcome.code == "INVALID_LIMIT_PRICE_POST_ONLY"

    async def test_ioc_and_fok_leave_nothing_resting(self, client: CoinbaseRestClient) -> None:
        book = await client.get_product_book("BTC-USD", limit=1)
        far = book.bids[0][0] - Decimal("1000")
        for tif in (TimeInForce.IOC, TimeInForce.FOK):
            spec = limit(Side.BUY, "0.001", str(far), time_in_force=tif)
            outcome = await client.create_order(spec, new_id())
            assert isinstance(outcome, OrderAccepted), tif
            order = await client.get_order(outcome.placed.order_id)
            assert not order.status.is_open and order.filled_size == 0

    async def test_lost_response_is_unknown_and_the_same_id_finds_the_original(
        self, client: CoinbaseRestClient, server: SimServer, exchange: SimExchange
    ) -> None:
        book = await client.get_product_book("BTC-USD", limit=1)
        spec = limit(Side.BUY, "0.002", str(book.bids[0][0] - Decimal("300")))
        client_order_id = new_id()
        server.faults.next_rest("lose_order_response")
        first = await client.create_order(spec, client_order_id)
        assert isinstance(first, OrderOutcomeUnknown)
        second = await client.retry_create_order(spec, client_order_id)
        assert isinstance(second, OrderAccepted)
        at_sim = [
            o
            for o in exchange.list_orders(endpoints_user(server))
            if o.client_order_id == client_order_id
        ]
        assert len(at_sim) == 1 and at_sim[0].order_id == second.placed.order_id

    async def test_wrong_key_is_refused_with_401(
        self, endpoints: SimEndpoints, clock: ManualClock
    ) -> None:
        from core.coinbase.auth import generate_demo_key

        name, private_key, _ = generate_demo_key("ES256")
        stranger = JwtSigner(
            Credentials(name, private_key), clock, rest_host_from_url(endpoints.rest_url)
        )
        async with CoinbaseRestClient(endpoints.rest_url, stranger, clock=clock) as rest:
            with pytest.raises(AuthenticationError):
                await rest.list_accounts()


def endpoints_user(server: SimServer) -> str:
    assert server.endpoints is not None
    return server.endpoints.user_id


class TestMarketStream:
    @pytest.fixture
    async def stream(
        self, endpoints: SimEndpoints, clock: ManualClock
    ) -> AsyncIterator[tuple[MarketDataService, CoinbaseWebSocket]]:
        """The market socket feeding a MarketDataService, running until the test ends."""
        service = MarketDataService(PRODUCTS, clock=clock)
        socket = CoinbaseWebSocket(
            "market",
            endpoints.ws_market_url,
            [Subscription("level2", PRODUCTS), Subscription("market_trades", PRODUCTS)],
            service,
            clock=clock,
            reconnect_initial_s=0.01,
            reconnect_max_s=0.05,
        )
        task = asyncio.create_task(socket.run())
        try:
            yield service, socket
        finally:
            await socket.stop()
            await task

    @staticmethod
    def books_match(service: MarketDataService, exchange: SimExchange) -> bool:
        for product_id in PRODUCTS:
            if service.health(product_id).state is not BookStatus.LIVE:
                return False
            bids, asks = exchange.book_levels(product_id, 50)
            ours_bids, ours_asks = service.book(product_id).top_decimal(50)
            if (ours_bids, ours_asks) != (bids, asks):
                return False
        return True

    async def drive(self, server: SimServer, steps: int) -> None:
        for _ in range(steps):
            server.advance_market(0.02)
            await asyncio.sleep(0)

    async def test_books_follow_the_exchange_exactly(
        self,
        stream: tuple[MarketDataService, CoinbaseWebSocket],
        server: SimServer,
        exchange: SimExchange,
    ) -> None:
        service, _ = stream
        await eventually(lambda: self.books_match(service, exchange))
        await self.drive(server, 50)
        await eventually(lambda: self.books_match(service, exchange))
        assert service.stats.l2_updates > 0
        assert service.trades("BTC-USD"), "takers traded, so the tape has prints"
        assert service.stats.gaps == 0

    async def test_sequence_gap_drops_and_rebuilds_the_books(
        self,
        stream: tuple[MarketDataService, CoinbaseWebSocket],
        server: SimServer,
        exchange: SimExchange,
    ) -> None:
        service, socket = stream
        await eventually(lambda: self.books_match(service, exchange))
        server.faults.skip_sequence(3)
        await self.drive(server, 5)
        await eventually(lambda: service.stats.gaps >= 1)
        await eventually(lambda: socket.status.reconnects >= 1)
        await self.drive(server, 20)
        await eventually(lambda: self.books_match(service, exchange))
        assert service.health("BTC-USD").resyncs >= 1

    async def test_going_away_close_reconnects(
        self,
        stream: tuple[MarketDataService, CoinbaseWebSocket],
        server: SimServer,
        exchange: SimExchange,
    ) -> None:
        service, socket = stream
        await eventually(lambda: self.books_match(service, exchange))
        assert server.faults.close_websockets(1001) >= 1
        await eventually(lambda: socket.status.reconnects >= 1)
        await self.drive(server, 20)
        await eventually(lambda: self.books_match(service, exchange))

    async def test_malformed_frame_is_counted_not_fatal(
        self,
        stream: tuple[MarketDataService, CoinbaseWebSocket],
        server: SimServer,
        exchange: SimExchange,
    ) -> None:
        service, _ = stream
        await eventually(lambda: self.books_match(service, exchange))
        server.faults.send_malformed()
        await eventually(lambda: service.bad_input.total >= 1)
        await self.drive(server, 10)
        await eventually(lambda: self.books_match(service, exchange))


class TestEngine:
    @pytest.fixture
    async def engine(
        self, endpoints: SimEndpoints, clock: ManualClock, tmp_path: Path
    ) -> AsyncIterator[Engine]:
        """The console's engine connected to the sim (both sockets + REST), running, with
        its journal in a temporary directory."""
        settings = load_settings(
            None,
            environ={
                "HOME": "/nonexistent-home",
                "CRYPTOJ_MARKET__PRODUCTS": '["BTC-USD","ETH-USD"]',
                "CRYPTOJ_EXCHANGE__PRIVATE_RATE_PER_S": "30",
                "CRYPTOJ_EXCHANGE__PUBLIC_RATE_PER_S": "10",
            },
        )
        engine = Engine(
            settings,
            endpoints_of(endpoints),
            clock=clock,
            mode="demo",
            journal_file=tmp_path / "journal-demo.sqlite3",
        )
        task = asyncio.create_task(engine.run())
        try:
            yield engine
        finally:
            await engine.stop()
            await task

    async def test_snapshot_shows_live_book_balances_and_our_orders(
        self, engine: Engine, server: SimServer
    ) -> None:
        await eventually(lambda: engine.snapshot("BTC-USD").book.status is BookStatus.LIVE)
        await eventually(lambda: engine.snapshot().balances is not None)
        snapshot = engine.snapshot("BTC-USD")
        assert snapshot.book.best_bid is not None and snapshot.book.best_ask is not None
        assert snapshot.book.best_bid < snapshot.book.best_ask
        assert {c.name for c in snapshot.connections} == {"market", "user"}
        passive = Decimal(str(snapshot.book.best_bid)).quantize(Decimal("0.01")) - 400
        outcome = await engine.rest.create_order(limit(Side.BUY, "0.001", str(passive)), new_id())
        assert isinstance(outcome, OrderAccepted)
        order_id = outcome.placed.order_id
        await eventually(lambda: order_id in {o.order_id for o in engine.snapshot().open_orders})
        await engine.rest.cancel_orders([order_id])
        await eventually(
            lambda: order_id not in {o.order_id for o in engine.snapshot().open_orders}
        )

    async def test_dropped_sockets_are_reported_and_recovered(
        self, engine: Engine, server: SimServer
    ) -> None:
        await eventually(lambda: engine.snapshot("BTC-USD").book.status is BookStatus.LIVE)
        await eventually(
            lambda: any("user stream connected" in e.text for e in engine.snapshot().events)
        )
        server.faults.drop_websockets()
        await eventually(
            lambda: any("lost" in e.text for e in engine.snapshot().events), timeout=15
        )
        await eventually(lambda: engine.snapshot("BTC-USD").book.status is BookStatus.LIVE)
        assert all(c.reconnects >= 1 for c in engine.snapshot().connections)


class TestUserStreamRefused:
    """A refused ``user`` subscription over loopback: the sim answers a bad JWT like Coinbase
    (an error frame, the socket left open with heartbeats); the client must treat the stream
    as down, reconnect with a fresh token after a backoff, and say why."""

    async def test_authentication_failure_is_a_down_stream_until_a_good_token(
        self, endpoints: SimEndpoints, clock: ManualClock
    ) -> None:
        from core.venues.coinbase import CoinbaseVenue

        signer = JwtSigner(endpoints.credentials, clock, rest_host_from_url(endpoints.rest_url))
        tokens: list[str] = []
        bad = True

        def token() -> str:
            tokens.append("bad" if bad else "good")
            return "not-a-valid-jwt" if bad else signer.ws_token()

        resets: list[str] = []

        class Listener:
            def on_order_update(self, order: object) -> None: ...

            def on_order_updates(self, orders: object) -> None: ...

            def on_stream_reset(self, reason: str) -> None:
                resets.append(reason)

        def user_socket(sink: Any) -> CoinbaseWebSocket:
            return CoinbaseWebSocket(
                "user",
                endpoints.ws_user_url,
                [Subscription("user", ())],
                sink,
                clock=ManualClock(),
                token_factory=token,
                reconnect_initial_s=0.02,
                reconnect_max_s=0.1,
            )

        async with CoinbaseRestClient(endpoints.rest_url, signer, clock=clock) as rest:
            venue = CoinbaseVenue(rest, user_socket_factory=user_socket, clock=clock)
            venue.set_listener(Listener())  # type: ignore[arg-type]
            await venue.start()
            socket = venue.user_socket
            assert socket is not None
            try:
                # The refused socket was dropped, saying why...
                await eventually(
                    lambda: "authentication failure" in (socket.status.last_error or "")
                )
                # ...and a new one subscribed with fresh tokens (user + heartbeats each time).
                await eventually(lambda: tokens.count("bad") >= 4)
                assert not venue.stream_connected
                # Each refused socket counts as a failed attempt: the backoff grows.
                assert socket.status.attempt >= 1
                assert any("user subscription refused" in r for r in resets)
                bad = False
                await eventually(lambda: venue.stream_connected)
                assert tokens[-1] == "good"
            finally:
                await venue.stop()


class TestProductsAtStart:
    """Products checked against the products endpoint over loopback: USDC aliases served and
    re-keyed like Coinbase, unknown products named and left out, the rest streamed."""

    async def test_the_sim_lists_aliases_like_coinbase(self, client: CoinbaseRestClient) -> None:
        products = {p.product_id: p for p in await client.list_products(["BTC-USD", "BTC-USDC"])}
        assert products["BTC-USDC"].alias == "BTC-USD"
        assert products["BTC-USDC"].quote_currency == "USDC"
        assert "BTC-USDC" in products["BTC-USD"].alias_to
        assert (await client.get_product("BTC-USDC")).alias == "BTC-USD"

    async def test_a_usdc_book_goes_live_from_the_usd_data(
        self,
        client: CoinbaseRestClient,
        endpoints: SimEndpoints,
        clock: ManualClock,
        server: SimServer,
        exchange: SimExchange,
    ) -> None:
        configured = ("BTC-USDC", "ETH-USD")
        service = MarketDataService(configured, clock=clock)
        products = {p.product_id: p for p in await client.list_products(list(configured))}
        assert service.configure_products(products) == [
            "BTC-USDC: market data arrives keyed BTC-USD (alias)"
        ]
        socket = CoinbaseWebSocket(
            "market",
            endpoints.ws_market_url,
            [Subscription("level2", configured), Subscription("market_trades", configured)],
            service,
            clock=clock,
            reconnect_initial_s=0.01,
            reconnect_max_s=0.05,
        )
        task = asyncio.create_task(socket.run())
        try:

            def usdc_matches_usd() -> bool:
                if service.health("BTC-USDC").state is not BookStatus.LIVE:
                    return False
                bids, asks = exchange.book_levels("BTC-USD", 20)
                return service.book("BTC-USDC").top_decimal(20) == (bids, asks)

            await eventually(usdc_matches_usd)
            for _ in range(30):
                server.advance_market(0.02)
                await asyncio.sleep(0)
            await eventually(usdc_matches_usd)
            assert service.health("ETH-USD").state is BookStatus.LIVE
            assert service.bad_input.counts() == {}
        finally:
            await socket.stop()
            await task

    async def test_the_engine_names_an_unknown_product_and_streams_the_rest(
        self, endpoints: SimEndpoints, clock: ManualClock, tmp_path: Path
    ) -> None:
        settings = load_settings(
            None,
            environ={
                "HOME": "/nonexistent-home",
                "CRYPTOJ_MARKET__PRODUCTS": '["BTC-USDC","DOGE-EUR","ETH-USD"]',
            },
        )
        engine = Engine(
            settings,
            endpoints_of(endpoints),
            clock=clock,
            mode="demo",
            journal_file=tmp_path / "journal-demo.sqlite3",
        )
        task = asyncio.create_task(engine.run())
        try:
            await eventually(
                lambda: any("DOGE-EUR: not listed" in e.text for e in engine.snapshot().events)
            )
            for product in ("BTC-USDC", "ETH-USD"):
                await eventually(
                    lambda product=product: engine.snapshot(product).book.status is BookStatus.LIVE,
                    timeout=15,
                )
            assert engine.market.health("DOGE-EUR").state is BookStatus.STALE
            assert engine.market_socket is not None
            subscribed = {p for s in engine.market_socket.subscriptions for p in s.product_ids}
            assert subscribed == {"BTC-USDC", "ETH-USD"}
            assert "DOGE-EUR" not in engine.product_info
        finally:
            await engine.stop()
            await task


class TestUserStreamDownTrigger:
    async def test_a_refused_user_subscription_trips_the_user_stream_down_trigger(
        self, endpoints: SimEndpoints, clock: ManualClock, server: SimServer, tmp_path: Path
    ) -> None:
        """The stream was up; after a reconnect the exchange refuses the user subscription
        (socket open, heartbeats flowing). That is a down stream: shown, and the trigger
        fires once the outage outlasts its bound."""
        settings = load_settings(
            None,
            environ={
                "HOME": "/nonexistent-home",
                "CRYPTOJ_MARKET__PRODUCTS": '["BTC-USD"]',
                "CRYPTOJ_EXCHANGE__RECONNECT_INITIAL_S": "0.05",
                "CRYPTOJ_EXCHANGE__RECONNECT_MAX_S": "0.2",
            },
        )
        engine = Engine(
            settings,
            endpoints_of(endpoints),
            clock=clock,
            mode="demo",
            journal_file=tmp_path / "journal-demo.sqlite3",
        )
        task = asyncio.create_task(engine.run())
        try:
            await eventually(engine.started.is_set, timeout=15)
            subscribe = server._subscribe

            def refuse_user(conn: Any, channel: str, product_ids: list[str], token: object) -> None:
                subscribe(conn, channel, product_ids, "expired" if channel == "user" else token)

            server._subscribe = refuse_user  # type: ignore[method-assign]
            server.faults.drop_websockets()
            await eventually(lambda: engine.venue.user_stream.error_messages >= 1)  # type: ignore[attr-defined]
            assert not engine.venue.stream_connected
            await eventually(
                lambda: any(
                    "subscription refused: authentication failure" in e.text
                    for e in engine.snapshot().events
                )
            )
            clock.advance(settings.risk.user_stream_outage_s + 1)
            await eventually(
                lambda: any("user stream down" in e.text for e in engine.snapshot().events),
                timeout=15,
            )
            assert engine.trading_state.state.value == "HALTED"
        finally:
            await engine.stop()
            await task
