"""The engine: wires market data, the venue, orders, journal, portfolio, risk and strategy.

One ``Engine`` per session. Its parts, and who owns what:

- market data: ``MarketDataService`` fed by the Coinbase market socket (demo, live, paper) or
  by a replay file;
- the venue: ``CoinbaseVenue`` (REST + the user channel; the demo against the simulated
  exchange and live) or ``PaperVenue`` (fills modelled on the live book; paper and replay);
- ``OrderManager`` with the write-ahead ``Journal`` (one SQLite file per mode);
- ``Portfolio`` (fed by fills), ``RiskGate`` (every order), ``TradingStateMachine``;
- ``EmergencyManager`` (kill / flatten / resume, and the automatic triggers);
- an optional ``Strategy``, driven through ``StrategyRunner``.

Start-up order (docs/design.md §4): load the journal, connect, reconcile open orders, fills and
balances with the venue, and only then allow trading (the gate refuses with RECONCILING
until the first reconciliation completes). The UI reads ``snapshot()``; the engine never
awaits the UI. Commands (``submit``, ``cancel``, ``kill``, ``flatten``, ``resume``) are
plain coroutines or, for the kill switch, a synchronous latch plus a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.bad_input import REFUSED_EXCHANGE_DATA
from core.clock import Clock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.errors import CoinbaseError
from core.coinbase.rest import CoinbaseRestClient
from core.coinbase.stream import FrameSink, Subscription
from core.coinbase.ws import CoinbaseWebSocket
from core.config import Credentials, Mode, Settings, resolve_credentials
from core.denials import Denial
from core.emergency import EmergencyManager, FlattenResult, KillProgress
from core.feed_state import WsStatus
from core.journal import Journal, JournalLock, journal_path
from core.journal_records import JournalError
from core.market import MarketDataService
from core.model import (
    ExchangeOrder,
    ExchangeOrderStatus,
    OrderIntent,
    Product,
    Side,
    Trade,
    decimal_str,
)
from core.order_state import ManagedOrder, OrderState
from core.orders import FillEvent, OrderEvent, OrderManager, ReconcileReport
from core.portfolio import PnlMemory, Portfolio, Position
from core.product_catalog import default_products
from core.risk import (
    AutomaticTriggers,
    GaugeName,
    RiskGate,
    TradingStateMachine,
    working_orders_of,
)
from core.snapshot import (
    BalanceView,
    BookStatus,
    BookView,
    ConnectionState,
    ConnectionView,
    EngineSnapshot,
    EventLevel,
    EventView,
    GaugeView,
    PositionView,
    StrategyView,
    TapeView,
    TradingState,
    TradingView,
)
from core.strategy.base import BookTop, Strategy, StrategyBase
from core.strategy.registry import build_strategy
from core.venue import Venue

log = logging.getLogger(__name__)

BOOK_DEPTH = 25
TAPE_LENGTH = 60
EVENT_LOG_LENGTH = 500
MID_HISTORY_LENGTH = 240
MAINTENANCE_PERIOD_S = 0.25
BALANCE_REFRESH_S = 5.0
PRODUCTS_RETRY_S = 2.0  # between tries to load product details (offline at start)
_UNREACHABLE_REMINDERS = frozenset({10, 100})
# The gauges that measure the account (not known before its balances are loaded).
_ACCOUNT_GAUGES = frozenset(
    {GaugeName.POSITION, GaugeName.GROSS_EXPOSURE, GaugeName.DAILY_LOSS, GaugeName.DRAWDOWN}
)

# At most one event per kind of refused exchange data this often (the counts keep counting).
REFUSAL_EVENT_INTERVAL_S = 10.0
REJECT_HISTORY = 200
# A journal failure with the same message is shown again after this long (a full disk fails
# every write; one line is enough until it changes).
JOURNAL_FAILURE_REPEAT_S = 30.0
# How deep the gate walks the book to value a market order (past it: INSUFFICIENT_BOOK_DEPTH).
MARKET_WALK_LEVELS = 200


@dataclass(frozen=True, slots=True)
class ExchangeEndpoints:
    """Where the exchange is and the key that opens it (real Coinbase or the simulated one)."""

    rest_url: str
    ws_market_url: str
    ws_user_url: str
    credentials: Credentials | None
    ca_cert_path: Path | None = None  # extra certificate to trust (the sim's self-signed one)

    @classmethod
    def from_settings(cls, settings: Settings) -> ExchangeEndpoints:
        return cls(
            rest_url=settings.exchange.rest_url,
            ws_market_url=settings.exchange.ws_market_url,
            ws_user_url=settings.exchange.ws_user_url,
            credentials=resolve_credentials(settings.credentials),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_cert_path is None:
            return None
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(self.ca_cert_path))
        return context


def _rest_verify(rest_url: str) -> ssl.SSLContext | bool:
    """What the REST client verifies TLS with when no certificate was given: the system's
    certificate authorities (True) for https; for plain http (the demo's sim on loopback) a
    context that trusts no one. httpx builds its TLS context when the client is made, even
    for a URL that never uses TLS, and loading the system's CA bundle is ~20 ms of start-up;
    were anything to speak TLS through this one, it would fail closed."""
    if urlsplit(rest_url).scheme == "http":
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with nothing to trust
    return True


class MarketPrices:
    """The gate's and the emergency manager's view of market data (only LIVE books count)."""

    def __init__(
        self,
        market: MarketDataService,
        clock: Clock,
        connection_age: Callable[[], float | None] | None = None,
    ) -> None:
        self._market = market
        self._clock = clock
        self._connection_age = connection_age

    def _live(self, product_id: str) -> bool:
        return self._market.health(product_id).state is BookStatus.LIVE

    def mid(self, product_id: str) -> float | None:
        return self._market.book(product_id).mid() if self._live(product_id) else None

    def best_bid(self, product_id: str) -> float | None:
        level = self._market.book(product_id).best_bid() if self._live(product_id) else None
        return None if level is None else level[0]

    def best_ask(self, product_id: str) -> float | None:
        level = self._market.book(product_id).best_ask() if self._live(product_id) else None
        return None if level is None else level[0]

    def levels(self, product_id: str, side: Side) -> Sequence[tuple[float, float]]:
        """The levels a market order on ``side`` takes, best first (the gate's market walk)."""
        if not self._live(product_id):
            return ()
        bids, asks = self._market.book(product_id).top(MARKET_WALK_LEVELS)
        return asks if side is Side.BUY else bids

    def data_age_s(self, product_id: str) -> float | None:
        health = self._market.health(product_id)
        if health.state is not BookStatus.LIVE or health.last_update_at is None:
            return None
        book_age = max(0.0, self._clock.monotonic() - max(health.last_update_at, health.since))
        # A LIVE book on a connection whose messages (heartbeats included) keep arriving with
        # no sequence gap is current even when the product is quiet: its age is the
        # connection's, not the time since the book last changed.
        connection_age = self._connection_age() if self._connection_age is not None else None
        return book_age if connection_age is None else min(book_age, connection_age)


class Engine:
    """A trading session against one venue."""

    def __init__(
        self,
        settings: Settings,
        endpoints: ExchangeEndpoints | None,
        *,
        clock: Clock,
        mode: Mode,
        journal_file: Path | None = None,
        market_feed: Callable[[MarketDataService], asyncio.Task[None] | None] | None = None,
    ) -> None:
        self._settings = settings
        self._endpoints = endpoints
        self._clock = clock
        self.mode = Mode(mode)  # a plain string from an older caller still works
        self.products: tuple[str, ...] = tuple(settings.market.products)
        self._market_feed = market_feed
        exchange = settings.exchange
        self._ssl_context = endpoints.ssl_context() if endpoints is not None else None

        self._signer: JwtSigner | None = None
        self.rest: CoinbaseRestClient | None = None
        if endpoints is not None:
            if endpoints.credentials is not None:
                self._signer = JwtSigner(
                    endpoints.credentials, clock, rest_host_from_url(endpoints.rest_url)
                )
            self.rest = CoinbaseRestClient(
                endpoints.rest_url,
                self._signer,
                clock=clock,
                timeout_s=exchange.request_timeout_s,
                connect_timeout_s=exchange.connect_timeout_s,
                deadline_s=exchange.request_deadline_s,
                max_response_bytes=exchange.max_response_bytes,
                private_rate_per_s=exchange.private_rate_per_s,
                public_rate_per_s=exchange.public_rate_per_s,
                verify=(
                    self._ssl_context
                    if self._ssl_context is not None
                    else _rest_verify(endpoints.rest_url)
                ),
            )
        self.market = MarketDataService(
            self.products,
            clock=clock,
            trades_buffer=settings.market.trades_buffer,
            candles_buffer=settings.market.candles_buffer,
            tickers_buffer=settings.market.tickers_buffer,
            stale_after_s=settings.market.stale_after_s,
        )
        self.market_socket: CoinbaseWebSocket | None = None
        if endpoints is not None and market_feed is None:
            self.market_socket = self._socket(
                "market", endpoints.ws_market_url, self._market_subscriptions(), self.market
            )
        self.prices = MarketPrices(self.market, clock, self._market_connection_age)
        self.product_info: dict[str, Product] = {}
        self.venue = self._build_venue()

        path = journal_file or journal_path(settings.storage.data_dir, mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One engine per journal: a second one would cancel the first one's orders.
        self._journal_lock = JournalLock(path).acquire()
        try:
            self.journal = Journal.open(path, clock=clock)
        except BaseException:
            self._journal_lock.release()
            raise
        self.journal.on_write_failure = self._journal_write_failed
        self._journal_failure_shown: tuple[str, float] | None = None
        self.trading_state = TradingStateMachine(self.journal, clock=clock)
        self.portfolio = Portfolio(
            clock=clock,
            day_boundary_utc_hour=settings.risk.day_boundary_utc_hour,
            product_ids=self.products,
        )
        self.gate = RiskGate(
            settings.risk,
            state=self.trading_state,
            portfolio=self.portfolio,
            market=self.prices,
            products=self.product_info,
            open_orders=lambda: len(self.orders.open_orders()),
            reconciling=lambda: self.orders.reconciling or not self.product_info,
            clock=clock,
            working_orders=lambda: working_orders_of(self.orders.open_orders()),
        )
        self.orders = OrderManager(
            self.venue,
            self.journal,
            self.gate,
            clock=clock,
            not_found_settle_s=settings.risk.unknown_order_absent_s,
        )
        self.venue.set_listener(self.orders)
        self.orders.add_listener(self.portfolio)
        self.orders.add_listener(_EngineOrderEvents(self))
        self.emergency = EmergencyManager(
            state=self.trading_state,
            orders=self.orders,
            venue=self.venue,
            journal=self.journal,
            settings=settings.risk,
            products=lambda: self.product_info,
            prices=self.prices,
            clock=clock,
            breached_limits=self.gate.breached_limits,
            product_ids=self.products,
            on_halt=self._pause_strategy_on_halt,
            on_balances=self.portfolio.set_balances,
        )
        self._triggers = AutomaticTriggers(settings.risk)
        self.strategy: Strategy | None = build_strategy(settings.strategy)
        # Daily P&L, peak and strategy inventory survive restarts (issue 9 §3).
        self.pnl_memory = PnlMemory(self.portfolio, self.journal, clock=clock)
        self._strategy_runner: StrategyRunner | None = None

        self._balances: tuple[BalanceView, ...] | None = None
        self._balances_version = 0
        self._balances_due = True
        self._last_balance_refresh = -BALANCE_REFRESH_S
        self._events: deque[EventView] = deque(maxlen=EVENT_LOG_LENGTH)
        self._failures: dict[str, int] = {}  # consecutive failures of a repeated call
        self._rest_url = endpoints.rest_url if endpoints is not None else "the exchange"
        self._events_version = 0
        self._reject_times: deque[float] = deque(maxlen=REJECT_HISTORY)
        self._user_down_since: float | None = None
        self._mid_history: dict[str, deque[float]] = {
            product_id: deque(maxlen=MID_HISTORY_LENGTH) for product_id in self.products
        }
        self._last_connection_states: dict[str, ConnectionState] = {}
        self._last_reconnects: dict[str, int] = {}
        self._last_book_states: dict[str, BookStatus] = {}
        self._last_trading_version = -1
        self._tasks: list[asyncio.Task[None]] = []
        # Refused exchange data (core.bad_input): one event per kind at most every
        # REFUSAL_EVENT_INTERVAL_S, so a hostile feed cannot flood the event list.
        self._refusal_events_at: dict[str, float] = {}
        self._stopped = asyncio.Event()
        self.started = asyncio.Event()  # set once the first reconciliation has completed
        # Set when a market feed that ends (a replay file) has delivered its last frame.
        self.feed_finished = asyncio.Event()

    # ------------------------------------------------------------------ construction

    def _socket(
        self, name: str, url: str, subscriptions: list[Subscription], sink: FrameSink
    ) -> CoinbaseWebSocket:
        exchange = self._settings.exchange
        return CoinbaseWebSocket(
            name,
            url,
            subscriptions,
            sink,
            clock=self._clock,
            token_factory=self._signer.ws_token if self._signer is not None else None,
            max_message_bytes=exchange.ws_max_message_bytes,
            silence_timeout_s=exchange.ws_silence_timeout_s,
            reconnect_initial_s=exchange.reconnect_initial_s,
            reconnect_max_s=exchange.reconnect_max_s,
            ssl_context=self._ssl_context,
        )

    def _market_connection_age(self) -> float | None:
        if self.market_socket is None:
            return None
        return self.market_socket.status.age_of_last_message(self._clock.monotonic())

    def _build_venue(self) -> Venue:
        if self.mode in (Mode.DEMO, Mode.LIVE):
            from core.venues.coinbase import CoinbaseVenue

            assert self.rest is not None and self._endpoints is not None
            endpoints = self._endpoints
            factory: Callable[[FrameSink], CoinbaseWebSocket] | None = None
            if endpoints.credentials is not None:

                def factory(sink: FrameSink) -> CoinbaseWebSocket:
                    return self._socket(
                        "user", endpoints.ws_user_url, [Subscription("user", ())], sink
                    )

            return CoinbaseVenue(self.rest, user_socket_factory=factory, clock=self._clock)
        from core.venues.paper import PaperVenue

        # Product increments arrive after start (``_load_products`` hands them over).
        return PaperVenue(self.market, (), self._settings.paper, clock=self._clock)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run until ``stop()``. Network trouble is reported, never raised."""
        # The registry of refused exchange data is process-wide: this engine listens while
        # it runs and never leaves a listener behind (engines started and stopped in turn).
        REFUSED_EXCHANGE_DATA.add_listener(self._on_refused_exchange_data)
        try:
            await self._run()
        finally:
            REFUSED_EXCHANGE_DATA.remove_listener(self._on_refused_exchange_data)

    async def _run(self) -> None:
        self.add_event(EventLevel.INFO, f"{self.mode} mode starting")
        restored_pnl = self.pnl_memory.restore()
        if restored_pnl is not None:
            self.add_event(EventLevel.INFO, restored_pnl)
        if isinstance(self.strategy, StrategyBase):
            note = self.strategy.attach_inventory_store(self.journal)
            if note is not None:
                self.add_event(EventLevel.INFO, note)
        restored = self.orders.restore()
        if restored and not self.venue.keeps_orders_across_restarts:
            closed = self.orders.close_left_over("the venue starts empty: closed at start")
            self.add_event(
                EventLevel.WARNING,
                f"{len(closed)} order(s) left open by the last {self.venue.name} session "
                "closed as cancelled (this venue starts empty)",
            )
        elif restored:
            self.add_event(
                EventLevel.INFO, f"restored {restored} unfinished order(s) from the journal"
            )
        interrupted = self.emergency.check_unfinished_flatten()
        if interrupted:
            self.add_event(EventLevel.ERROR, interrupted)
        if self.trading_state.state is not TradingState.ACTIVE:
            change = self.trading_state.last_change
            self.add_event(
                EventLevel.WARNING, f"trading state {change.state.value} kept: {change.cause}"
            )
        if self.market_socket is not None:
            self._tasks.append(asyncio.create_task(self.market_socket.run()))
        elif self._market_feed is not None:
            feed = self._market_feed(self.market)
            if feed is not None:
                feed.add_done_callback(self._on_feed_done)
                self._tasks.append(feed)
        try:
            await self._load_products()
            await self.venue.start()
            if self.emergency.resume_sweep("restart in HALTED: sweeping the venue again"):
                self.add_event(EventLevel.WARNING, "HALTED at start: sweeping open orders again")
            while not self._stopped.is_set():
                await self._maintain()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), MAINTENANCE_PERIOD_S)
        finally:
            await self._shutdown()

    async def stop(self) -> None:
        self._stopped.set()

    def _on_feed_done(self, feed: asyncio.Task[None]) -> None:
        """A replay's end is "replay finished", not a fault: the books keep their last state
        (no STALE, so no HALT from stale data), and headless mode can exit 0."""
        if feed.cancelled() or self._stopped.is_set():
            return
        error = feed.exception()
        if error is not None:
            self.add_event(EventLevel.ERROR, f"market feed failed: {error!r}")
            return
        self.feed_finished.set()
        self.add_event(
            EventLevel.INFO, "replay finished: the file has ended; the book shows its last state"
        )

    @property
    def settings(self) -> Settings:
        """The settings the session runs with (headless mode reads its own section)."""
        return self._settings

    async def _shutdown(self) -> None:
        if self._strategy_runner is not None:
            self._strategy_runner.stop()
        if self.market_socket is not None:
            await self.market_socket.stop()
        await self.venue.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.orders.aclose()
        if self.rest is not None:
            await self.rest.aclose()
        self.pnl_memory.save(force=True)
        self.journal.close()
        self._journal_lock.release()

    async def _load_products(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                products = await self._fetch_products()
            except CoinbaseError as exc:
                failures += 1
                self._note_unreachable(exc, failures)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), PRODUCTS_RETRY_S)
                continue
            if failures:
                self.add_event(
                    EventLevel.INFO, f"reached {self._rest_host} after {failures} failed tries"
                )
            self.product_info.update(
                {p.product_id: p for p in products if p.product_id in self.products}
            )
            self._apply_product_details()
            self.venue.add_products(products)
            for product_id in self.products:
                self.portfolio.track(product_id)
            return

    @property
    def _rest_host(self) -> str:
        return urlsplit(self._rest_url).hostname or self._rest_url

    def _note_unreachable(self, error: CoinbaseError, failures: int) -> None:
        """Say once, plainly, that the exchange cannot be reached, then only at 10, 100, 1000
        tries: offline, a line every retry buried everything else in the event log."""
        if failures == 1:
            reason = str(error).rsplit(": ", 1)[-1]
            self.add_event(
                EventLevel.WARNING,
                f"cannot reach {self._rest_host} ({reason}); retrying, nothing can trade "
                "until it answers",
            )
        elif failures in _UNREACHABLE_REMINDERS or failures % 1000 == 0:
            self.add_event(
                EventLevel.WARNING, f"still cannot reach {self._rest_host}: {failures} tries"
            )
        else:
            log.debug("cannot reach %s: try %d: %s", self._rest_host, failures, error)

    def _apply_product_details(self) -> None:
        """Name every configured product the exchange does not list (or refused), stream the
        others only (one unknown product in a subscription fails it for all), follow aliases."""
        for note in self.market.configure_products(self.product_info):
            self.add_event(EventLevel.WARNING, note)
        streamable = tuple(p for p in self.products if p in self.product_info)
        if self.market_socket is not None and streamable:
            changed = self.market_socket.set_subscriptions(
                [Subscription(s.channel, streamable) for s in self._market_subscriptions()]
            )
            if changed:
                self.market_socket.request_reconnect("subscribing to the listed products only")

    def _market_subscriptions(self) -> list[Subscription]:
        return [
            Subscription("level2", self.products),
            Subscription("market_trades", self.products),
            Subscription("ticker", self.products),
        ]

    def _on_refused_exchange_data(self, kind: str, detail: str) -> None:
        now = self._clock.monotonic()
        last = self._refusal_events_at.get(kind)
        if last is not None and now - last < REFUSAL_EVENT_INTERVAL_S:
            return
        self._refusal_events_at[kind] = now
        self.add_event(EventLevel.ERROR, f"refused exchange data ({kind}): {detail}")

    def refused_input_counts(self) -> dict[str, int]:
        """Every refused or malformed exchange input so far, by source and kind (for the soak's
        table): ``market.<kind>`` (market socket), ``user.<kind>`` (user socket) and
        ``exchange.<kind>`` (impossible data refused anywhere, REST included)."""
        counts = {f"market.{k}": v for k, v in self.market.bad_input.counts().items()}
        counts.update({f"user.{k}": v for k, v in self.venue.bad_input_counts().items()})
        counts.update({f"exchange.{k}": v for k, v in REFUSED_EXCHANGE_DATA.counts().items()})
        return counts

    def _note_failure(self, what: str, text: str) -> None:
        """A failure that repeats while the exchange is away: said once, then at 10 and 100
        tries, not every few seconds (which buried the rest of the event log)."""
        failures = self._failures.get(what, 0) + 1
        self._failures[what] = failures
        if failures == 1:
            self.add_event(EventLevel.WARNING, text)
        elif failures in _UNREACHABLE_REMINDERS or failures % 1000 == 0:
            self.add_event(EventLevel.WARNING, f"{text} ({failures} tries)")
        else:
            log.debug("%s (try %d)", text, failures)

    def _note_recovery(self, what: str, text: str) -> None:
        failures = self._failures.pop(what, 0)
        if failures:
            self.add_event(EventLevel.INFO, f"{text} after {failures} failed tries")

    async def _fetch_products(self) -> list[Product]:
        if self.rest is not None:
            return await self.rest.list_products(self.products)
        # Replay with no exchange at hand: the increments of the products we know.
        return [p for p in default_products() if p.product_id in self.products]

    # ------------------------------------------------------------------ maintenance

    async def _maintain(self) -> None:
        now = self._clock.monotonic()
        finished = self.feed_finished.is_set()
        if not finished:  # after a replay's last frame nothing more comes, and that is fine
            self.market.check_staleness()
        self._note_connection_changes(now)
        self._note_book_changes()
        for product_id in self.products:
            mid = self.prices.mid(product_id)
            if mid is not None:
                self._mid_history[product_id].append(mid)
            self.portfolio.mark(product_id, Decimal(str(mid)) if mid is not None else None)
        self.pnl_memory.save()
        # Before any REST call below: with the exchange unreachable those calls take seconds
        # (connect retries, timeouts), and the triggers must not wait for them.
        if not finished:  # the data stopped because the file ended: no trigger to judge
            self._check_triggers(now)
        if self.orders.reconciling and self.venue.stream_connected:
            await self._reconcile()
        if self._balances_due or now - self._last_balance_refresh >= BALANCE_REFRESH_S:
            await self._refresh_balances()
        self._note_trading_state()
        if self._strategy_runner is None and self.strategy is not None and self.started.is_set():
            self._strategy_runner = StrategyRunner(self, self.strategy)
            self._strategy_runner.start()
            self.add_event(EventLevel.INFO, f"strategy {self.strategy.strategy_id} started")
        if self._strategy_runner is not None:
            self._strategy_runner.tick(now)

    async def _reconcile(self) -> ReconcileReport | None:
        try:
            report = await self.orders.reconcile()
        except CoinbaseError as exc:
            self._note_failure("reconciliation", f"reconciliation failed ({exc}); retrying")
            return None
        self._note_recovery("reconciliation", "reconciled")
        if report.complete:
            await self._refresh_balances()
            if not self.started.is_set():
                self.started.set()
                self.add_event(EventLevel.INFO, "reconciled with the venue: trading allowed")
        else:
            self.add_event(EventLevel.WARNING, f"reconciliation incomplete: {report}")
        return report

    async def _refresh_balances(self) -> None:
        self._last_balance_refresh = self._clock.monotonic()
        self._balances_due = False
        asked_at = self._clock.time()  # the answer holds every fill executed before this
        try:
            balances = await self.venue.balances()
        except CoinbaseError as exc:
            self._note_failure("balances", f"balances not refreshed ({exc}); retrying")
            return
        self._note_recovery("balances", "balances refreshed")
        if not self.orders.reconciling:
            self.portfolio.set_balances(balances, as_of=asked_at)
        views = tuple(
            BalanceView(balance.currency, balance.available, balance.hold)
            for balance in sorted(balances, key=lambda b: (b.currency != "USD", b.currency))
        )
        if views != self._balances:
            self._balances = views
            self._balances_version += 1

    def _check_triggers(self, now: float) -> None:
        if not self.started.is_set():
            return
        connected = self.venue.stream_connected
        if connected:
            self._user_down_since = None
        elif self._user_down_since is None:
            self._user_down_since = now
        tripped = self._triggers.evaluate(
            self.portfolio,
            {product_id: self.market.health(product_id) for product_id in self.products},
            user_stream_down_since=self._user_down_since,
            reject_times=tuple(self._reject_times),
            now=now,
        )
        if tripped:
            self.emergency.act_on(tripped)

    def _note_trading_state(self) -> None:
        version = self.trading_state.version
        if version == self._last_trading_version:
            return
        self._last_trading_version = version
        change = self.trading_state.last_change
        level = EventLevel.INFO if change.state is TradingState.ACTIVE else EventLevel.ERROR
        self.add_event(level, f"trading {change.state.value}: {change.cause}")

    def _note_connection_changes(self, now: float) -> None:
        # Polled, so a loss followed by a quick reconnect is seen through the reconnect count,
        # not only through the state it passed through between two polls.
        for status in self._socket_statuses():
            previous = self._last_connection_states.get(status.name)
            reconnects = self._last_reconnects.get(status.name, 0)
            self._last_connection_states[status.name] = status.state
            self._last_reconnects[status.name] = status.reconnects
            why = f": {status.last_error}" if status.last_error else ""
            lost_since_last_poll = status.reconnects > reconnects
            losing_now = (
                status.state is ConnectionState.RECONNECTING
                and previous is ConnectionState.CONNECTED
            )
            if lost_since_last_poll or losing_now:
                self.add_event(EventLevel.WARNING, f"{status.name} stream lost{why}; reconnecting")
            if (
                status.state is ConnectionState.CONNECTED
                and previous is not ConnectionState.CONNECTED
            ):
                self.add_event(EventLevel.INFO, f"{status.name} stream connected")

    def _note_book_changes(self) -> None:
        for product_id in self.products:
            health = self.market.health(product_id)
            previous = self._last_book_states.get(product_id)
            if previous is health.state:
                continue
            self._last_book_states[product_id] = health.state
            if health.state is BookStatus.STALE:
                self.add_event(
                    EventLevel.WARNING, f"{product_id} book STALE: {health.reason}; resyncing"
                )
            elif health.state is BookStatus.LIVE and previous is BookStatus.STALE:
                self.add_event(EventLevel.INFO, f"{product_id} book rebuilt from a fresh snapshot")

    def _journal_write_failed(self, failure: JournalError) -> None:
        """Say why trading is blocked ("disk full: ...") where the trader looks, at most once
        every ``JOURNAL_FAILURE_REPEAT_S`` for the same message (a full disk fails every write)."""
        text = str(failure)
        now = self._clock.monotonic()
        shown = self._journal_failure_shown
        if shown is not None and shown[0] == text and now - shown[1] < JOURNAL_FAILURE_REPEAT_S:
            return
        self._journal_failure_shown = (text, now)
        self.add_event(EventLevel.ERROR, text)

    def add_event(self, level: EventLevel, text: str) -> None:
        self._events.append(EventView(self._clock.time(), level, text))
        self._events_version += 1
        log.log(logging.WARNING if level is not EventLevel.INFO else logging.INFO, "%s", text)

    # ------------------------------------------------------------------ commands

    async def submit(self, intent: OrderIntent) -> ManagedOrder:
        """Through the gate, into the journal, to the venue. Never raises for venue trouble."""
        return await self.orders.submit(intent)

    async def cancel(self, client_order_ids: Sequence[str]) -> int:
        return await self.orders.cancel(client_order_ids)

    async def cancel_all(self, product_ids: Sequence[str] | None = None) -> int:
        return await self.orders.cancel_all(product_ids)

    def kill(self, cause: str = "kill switch", source: str = "user") -> asyncio.Task[KillProgress]:
        """Latch HALTED now (the next order is refused), then cancel everything."""
        task = self.emergency.kill(cause, source)
        self._note_trading_state()
        return task

    def halt_now(self, cause: str = "kill switch", source: str = "user") -> None:
        """Latch HALTED at once from any thread (the terminal's key reader); ``kill`` follows
        on the event loop and does the rest (the sweep, the journal, the strategy's pause)."""
        self.emergency.halt_now(cause, source)

    def _pause_strategy_on_halt(self) -> None:
        # Every HALT (the key, a trigger, a restart in HALTED) pauses the strategy, so that
        # RESUME brings trading back without the strategy restarting by itself.
        if self.strategy is not None and not self.strategy.paused:
            self.strategy.pause()
            self.add_event(
                EventLevel.INFO, f"strategy {self.strategy.strategy_id} paused by the HALT"
            )

    async def flatten(self, *, confirmed: bool) -> FlattenResult:
        result = await self.emergency.flatten(confirmed=confirmed)
        self._balances_due = True
        for line in result.skipped:  # every unit not sold, and why
            self.add_event(EventLevel.WARNING, f"flatten: {line}")
        return result

    async def resume(self, confirmation: str) -> ReconcileReport:
        report = await self.emergency.resume(confirmation)
        self._note_trading_state()
        return report

    def preview(self, intent: OrderIntent) -> Denial | None:
        """The gate's answer for ``intent`` now, without counting it (the order ticket's view)."""
        return self.gate.preview(intent)

    def product(self, product_id: str) -> Product | None:
        """The product's increments and limits, once loaded from the venue."""
        return self.product_info.get(product_id)

    def pause_strategy(self) -> None:
        if self.strategy is not None:
            self.strategy.pause()
            self.add_event(EventLevel.INFO, f"strategy {self.strategy.strategy_id} paused")

    def resume_strategy(self) -> None:
        if self.strategy is not None:
            self.strategy.resume()
            self.add_event(EventLevel.INFO, f"strategy {self.strategy.strategy_id} resumed")

    # ------------------------------------------------------------------ order events

    def _on_order_event(self, event: OrderEvent) -> None:
        order = event.order
        if order.state is OrderState.DENIED and order.denial is not None:
            self.add_event(EventLevel.WARNING, f"DENIED {_describe(order)}: {order.denial}")
        elif order.state is OrderState.REJECTED and event.previous is not OrderState.REJECTED:
            self._reject_times.append(self._clock.monotonic())
            self.add_event(
                EventLevel.WARNING,
                f"REJECTED {_describe(order)}: {order.reject_code} {order.reject_message or ''}",
            )
        elif order.state is OrderState.UNKNOWN and event.previous is not OrderState.UNKNOWN:
            self.add_event(EventLevel.WARNING, f"UNKNOWN outcome {_describe(order)}: {event.cause}")
        elif order.state is OrderState.CANCELED and event.previous is not OrderState.CANCELED:
            # The confirmation a cancel request waits for: what left the book, not an id.
            filled = f", {_plain(order.filled_size)} filled" if order.filled_size else ""
            self.add_event(EventLevel.INFO, f"cancelled {_describe(order)}{filled}")
        if order.state.is_terminal:
            self._balances_due = True

    def _on_fill(self, event: FillEvent) -> None:
        fill = event.fill
        # Prices on the product's tick, money in cents: a derived fill's price is an average
        # (filled value / size) with many digits, which read like noise in the log.
        info = self.product_info.get(fill.product_id)
        price = _plain(fill.price) if info is None else _on_step(fill.price, info.price_increment)
        self.add_event(
            EventLevel.INFO,
            f"FILL {fill.side.value} {_plain(fill.size)} {fill.product_id} @ {price} "
            f"(fee {_on_step(fill.commission, _CENT)}){' external' if event.external else ''}",
        )
        self._balances_due = True
        self.pnl_memory.save(force=True)
        if self._strategy_runner is not None:
            self._strategy_runner.on_fill(event)

    # ------------------------------------------------------------------ the UI's view

    def _socket_statuses(self) -> list[WsStatus]:
        statuses: list[WsStatus] = []
        if self.market_socket is not None:
            statuses.append(self.market_socket.status)
        user_socket = self.venue.user_socket
        if user_socket is not None:
            statuses.append(user_socket.status)
        return statuses

    def snapshot(self, product_id: str | None = None) -> EngineSnapshot:
        selected = product_id if product_id in self.products else self.products[0]
        now = self._clock.monotonic()
        change = self.trading_state.last_change
        progress = self.emergency.progress
        took = (
            (progress.finished_at - progress.started_at) * 1000
            if progress.finished_at is not None and progress.started_at is not None
            else None
        )
        strategy = self.strategy
        book = self._book_view(selected, now)
        # Marks to the books of this instant (maintenance samples them only a few times a
        # second): the positions' marks, the equity and the ladder's mid in one snapshot agree.
        for product in self.products:
            mid = self.prices.mid(product)
            self.portfolio.mark(product, Decimal(str(mid)) if mid is not None else None)
        # Until the balances are loaded (offline: never) nothing is known of the account:
        # positions, the day's P&L and the account's limits are "—", never 0 or full headroom.
        account_known = self.portfolio.cash is not None
        return EngineSnapshot(
            mode=self.mode,
            wall_time=self._clock.time(),
            products=self.products,
            selected_product=selected,
            book=book,
            tape=TapeView(
                selected,
                self.market.version,
                tuple(reversed(list(self.market.trades(selected))[-TAPE_LENGTH:])),
            ),
            connections=tuple(_connection_view(s, now) for s in self._socket_statuses()),
            balances=self._balances,
            balances_version=self._balances_version,
            open_orders=tuple(
                _as_exchange_order(order)
                for order in sorted(
                    self.orders.open_orders(), key=lambda o: (o.product_id, o.created_at)
                )
            ),
            orders_version=self.orders.version,
            events=tuple(self._events),
            events_version=self._events_version,
            mid_history=tuple(self._mid_history[selected]),
            trading=TradingView(
                state=change.state,
                cause=change.cause,
                source=change.source,
                reconciling=self.orders.reconciling,
                kill_phase=progress.phase,
                kill_rounds=progress.rounds,
                kill_still_open=progress.still_open,
                kill_took_ms=took,
                kill_waiting=progress.waiting,
            ),
            positions=tuple(_position_view(p) for p in self.portfolio.positions())
            if account_known
            else None,
            positions_version=self.portfolio.version,
            equity=self.portfolio.equity,
            daily_pnl=self.portfolio.daily_pnl if account_known else None,
            gauges=tuple(
                GaugeView(
                    g.name.value,
                    g.used if account_known or g.name not in _ACCOUNT_GAUGES else None,
                    g.limit,
                    g.unit,
                    g.subject,
                )
                for g in self.gate.gauges()
            ),
            strategy=None
            if strategy is None
            else StrategyView(
                strategy.strategy_id, strategy.paused, tuple(strategy.parameters().items())
            ),
        )

    def _book_view(self, product_id: str, now: float) -> BookView:
        book = self.market.book(product_id)
        health = self.market.health(product_id)
        bids, asks = book.top(BOOK_DEPTH)
        info = self.product_info.get(product_id)
        return BookView(
            product_id=product_id,
            status=BookStatus[health.state.name],
            version=book.version,
            bids=tuple(bids),
            asks=tuple(asks),
            status_reason="replay finished"
            if self.feed_finished.is_set() and health.state is BookStatus.LIVE
            else health.reason,
            last_update_age_s=None
            if health.last_update_at is None
            else max(0.0, now - health.last_update_at),
            resyncs=health.resyncs,
            price_decimals=_decimals(info.price_increment) if info else 2,
            size_decimals=_decimals(info.base_increment) if info else 8,
        )


class _EngineOrderEvents:
    """Adapter: the order manager's listener, forwarding to the engine's event log."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_order_event(self, event: OrderEvent) -> None:
        self._engine._on_order_event(event)

    def on_fill(self, event: FillEvent) -> None:
        self._engine._on_fill(event)


class StrategyRunner:
    """Drives one strategy: its context, its timer, its book and trade callbacks."""

    def __init__(self, engine: Engine, strategy: Strategy) -> None:
        self._engine = engine
        self._strategy = strategy
        self._book_versions: dict[str, int] = {}
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def clock(self) -> Clock:
        return self._engine._clock

    def start(self) -> None:
        self._strategy.on_start(self)
        self._engine.market.add_trade_listener(self._on_trade)

    def stop(self) -> None:
        self._strategy.on_stop()

    def tick(self, now: float) -> None:
        for product_id in self._engine.products:
            version = self._engine.market.book(product_id).version
            if self._book_versions.get(product_id) != version:
                self._book_versions[product_id] = version
                self._strategy.on_book(product_id)
        self._strategy.on_timer(now)

    def on_fill(self, event: FillEvent) -> None:
        order = self._engine.orders.get(event.client_order_id)
        if order is not None and order.intent.strategy_id == self._strategy.strategy_id:
            self._strategy.on_fill(event)

    def _on_trade(self, trade: Trade) -> None:
        self._strategy.on_trade(trade)

    # StrategyContext
    def submit(self, intent: OrderIntent) -> None:
        self._spawn(self._engine.submit(intent))

    def cancel(self, client_order_ids: Sequence[str]) -> None:
        self._spawn(self._engine.cancel(client_order_ids))

    def open_orders(self, strategy_id: str) -> list[ManagedOrder]:
        return [
            order
            for order in self._engine.orders.open_orders()
            if order.intent.strategy_id == strategy_id
        ]

    def position(self, product_id: str) -> Position:
        return self._engine.portfolio.position(product_id)

    def book(self, product_id: str) -> BookTop:
        prices = self._engine.prices
        return BookTop(prices.best_bid(product_id), prices.best_ask(product_id))

    def product(self, product_id: str) -> Product | None:
        return self._engine.product_info.get(product_id)

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _describe(order: ManagedOrder) -> str:
    spec = order.intent.spec
    size = spec.base_size if spec.base_size is not None else f"{spec.quote_size} quote"
    price = f" @ {spec.limit_price}" if spec.limit_price is not None else ""
    return f"{spec.side.value} {size} {spec.product_id} {spec.order_type.value}{price}"


_STATUS_OF_STATE = {
    OrderState.INITIALIZED: ExchangeOrderStatus.PENDING,
    OrderState.SUBMITTED: ExchangeOrderStatus.PENDING,
    OrderState.ACCEPTED: ExchangeOrderStatus.OPEN,
    OrderState.PARTIALLY_FILLED: ExchangeOrderStatus.OPEN,
    OrderState.PENDING_CANCEL: ExchangeOrderStatus.CANCEL_QUEUED,
    OrderState.UNKNOWN: ExchangeOrderStatus.UNKNOWN,
}


def _as_exchange_order(order: ManagedOrder) -> ExchangeOrder:
    spec = order.intent.spec
    return ExchangeOrder(
        order_id=order.order_id or order.client_order_id,
        client_order_id=order.client_order_id,
        product_id=spec.product_id,
        side=spec.side,
        status=_STATUS_OF_STATE.get(order.state, ExchangeOrderStatus.UNKNOWN),
        order_type=spec.order_type.value,
        time_in_force=spec.time_in_force.value,
        base_size=spec.base_size,
        quote_size=spec.quote_size,
        limit_price=spec.limit_price,
        stop_price=spec.stop_price,
        post_only=spec.post_only,
        filled_size=order.filled_size,
        filled_value=order.filled_value,
        total_fees=order.total_fees,
        pending_cancel=order.state is OrderState.PENDING_CANCEL,
    )


def _position_view(position: Position) -> PositionView:
    return PositionView(
        product_id=position.product_id,
        size=position.size,
        avg_entry=position.avg_entry,
        mark=position.mark,
        unrealized_pnl=position.unrealized_pnl,
        realized_pnl=position.realized_pnl,
        fees=position.fees,
    )


def _connection_view(status: WsStatus, now: float) -> ConnectionView:
    return ConnectionView(
        name=status.name,
        state=status.state,
        attempt=status.attempt,
        last_message_age_s=status.age_of_last_message(now),
        reconnects=status.reconnects,
        last_error=status.last_error,
    )


_DISPLAY_STEP = Decimal("0.00000001")


def _plain(value: Decimal) -> str:
    """A decimal for the event log: at most 8 decimals, no trailing zeros, no exponent.

    A derived fill's price is an average (filled value / size) with many digits."""
    return decimal_str(value.quantize(_DISPLAY_STEP).normalize())


_CENT = Decimal("0.01")


def _on_step(value: Decimal, step: Decimal) -> str:
    """``value`` rounded to a multiple of ``step`` (half even), with the step's decimals."""
    steps = (value / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return decimal_str((steps * step).quantize(step.normalize()))


def _decimals(increment: Decimal) -> int:
    exponent = increment.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 2


__all__: Sequence[str] = ("Engine", "ExchangeEndpoints", "MarketPrices", "StrategyRunner")
