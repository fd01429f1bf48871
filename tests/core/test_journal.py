"""The SQLite write-ahead journal: schema, round trips, idempotent fills, markers, errors."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.denials import Denial, DenialReason
from core.journal import SCHEMA_VERSION, Journal, journal_path
from core.journal_records import FillRecord, JournalError
from core.model import (
    Fill,
    IntentSource,
    LiquidityIndicator,
    OrderIntent,
    OrderSpec,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
)
from core.order_state import ManagedOrder, OrderState
from core.trading_state import TradingState, TradingStateChange


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's journal file lives (a fresh directory per test)."""
    return journal_path(tmp_path / "data", "paper")


@pytest.fixture
def journal(path: Path, clock: ManualClock) -> Iterator[Journal]:
    """An open journal on a fresh file, closed after the test."""
    opened = Journal.open(path, clock=clock)
    yield opened
    opened.close()


def limit_intent(**overrides: object) -> OrderIntent:
    spec = OrderSpec(
        product_id="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        base_size=Decimal("0.50000000"),
        limit_price=Decimal("68000.10"),
    )
    fields: dict[str, object] = {"spec": spec, "source": IntentSource.STRATEGY}
    fields.update(overrides)
    return OrderIntent(**fields)  # type: ignore[arg-type]


def managed(coid: str, state: OrderState, clock: ManualClock, **kw: object) -> ManagedOrder:
    return ManagedOrder(
        client_order_id=coid,
        intent=limit_intent(),
        state=state,
        created_at=clock.time(),
        updated_at=clock.time(),
        **kw,  # type: ignore[arg-type]
    )


def fill_record(
    coid: str, order_id: str, cumulative: str, size: str, value: str, fee: str = "0.1"
) -> FillRecord:
    fill = Fill(
        trade_id=f"{order_id}:{cumulative}",
        order_id=order_id,
        product_id="BTC-USD",
        side=Side.BUY,
        price=Decimal(value) / Decimal(size),
        size=Decimal(size),
        commission=Decimal(fee),
        trade_time=datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
    )
    return FillRecord(coid, fill, Decimal(value), Decimal(cumulative), None, external=False)


def test_open_creates_schema_in_wal_mode(journal: Journal, path: Path) -> None:
    assert path.exists()
    assert journal.schema_version == SCHEMA_VERSION
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert journal.integrity_problems() == []


def test_reopen_keeps_data_and_does_not_migrate_twice(path: Path, clock: ManualClock) -> None:
    first = Journal.open(path, clock=clock)
    first.record_intent("c1", limit_intent())
    first.close()
    second = Journal.open(path, clock=clock)
    try:
        versions = second._db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]
        assert versions == 1
        assert [o.client_order_id for o in second.load_orders()] == ["c1"]
    finally:
        second.close()


def test_newer_schema_is_refused(path: Path, clock: ManualClock) -> None:
    Journal.open(path, clock=clock).close()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(JournalError, match="newer"):
        Journal.open(path, clock=clock)


def test_unopenable_path_raises_journal_error(tmp_path: Path, clock: ManualClock) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError):
        Journal.open(blocker / "journal.sqlite3", clock=clock)


def test_intent_round_trips_every_field(journal: Journal, clock: ManualClock) -> None:
    spec = OrderSpec(
        product_id="ETH-USD",
        side=Side.SELL,
        order_type=OrderType.STOP_LIMIT,
        base_size=Decimal("1.25"),
        limit_price=Decimal("3000.00"),
        stop_price=Decimal("3010.5"),
        stop_direction=StopDirection.DOWN,
        time_in_force=TimeInForce.GTD,
        post_only=False,
        end_time=datetime(2026, 1, 2, tzinfo=UTC),
    )
    intent = OrderIntent(spec, IntentSource.FLATTEN, reduce_only=True, strategy_id="mm", note="x")
    journal.record_intent("c1", intent)
    [loaded] = journal.load_orders()
    assert loaded.intent == intent
    assert loaded.state is OrderState.INITIALIZED
    assert loaded.created_at == clock.time()
    assert loaded.filled_size == 0
    assert [h.state for h in journal.order_history("c1")] == [OrderState.INITIALIZED]


def test_decimals_are_stored_as_exact_text(journal: Journal, path: Path) -> None:
    journal.record_intent("c1", limit_intent())
    row = sqlite3.connect(path).execute("SELECT base_size, limit_price FROM intents").fetchone()
    assert row == ("0.50000000", "68000.10")


def test_duplicate_intent_is_refused(journal: Journal) -> None:
    journal.record_intent("c1", limit_intent())
    with pytest.raises(JournalError):
        journal.record_intent("c1", limit_intent())


def test_state_history_is_append_only_and_current_state_follows(
    journal: Journal, clock: ManualClock
) -> None:
    journal.record_intent("c1", limit_intent())
    order = managed("c1", OrderState.SUBMITTED, clock)
    journal.record_order_state(order, "sent")
    clock.advance(1)
    order.state, order.order_id, order.updated_at = OrderState.ACCEPTED, "ex-1", clock.time()
    journal.record_order_state(order, "accepted")
    history = journal.order_history("c1")
    assert [(h.state, h.cause, h.order_id) for h in history] == [
        (OrderState.INITIALIZED, "intent recorded", None),
        (OrderState.SUBMITTED, "sent", None),
        (OrderState.ACCEPTED, "accepted", "ex-1"),
    ]
    found = journal.find_order(order_id="ex-1")
    assert found is not None and found.state is OrderState.ACCEPTED


def test_state_for_an_unjournaled_order_is_refused(journal: Journal, clock: ManualClock) -> None:
    with pytest.raises(JournalError, match="rejected"):
        journal.record_order_state(managed("ghost", OrderState.SUBMITTED, clock), "sent")


def test_load_orders_skips_terminal_and_sums_fills(journal: Journal, clock: ManualClock) -> None:
    for coid in ("open", "done"):
        journal.record_intent(coid, limit_intent())
    journal.record_order_state(
        managed("open", OrderState.PARTIALLY_FILLED, clock, order_id="ex-1"), "fill"
    )
    journal.record_order_state(managed("done", OrderState.FILLED, clock, order_id="ex-2"), "f")
    assert journal.record_fill(fill_record("open", "ex-1", "0.1", "0.1", "6800.01", "0.5"))
    assert journal.record_fill(fill_record("open", "ex-1", "0.3", "0.2", "13600.02", "1.25"))
    [loaded] = journal.load_orders()
    assert loaded.client_order_id == "open"
    assert (loaded.filled_size, loaded.filled_value, loaded.total_fees) == (
        Decimal("0.3"),
        Decimal("20400.03"),
        Decimal("1.75"),
    )
    finished = journal.find_order(client_order_id="done")
    assert finished is not None and finished.state is OrderState.FILLED
    assert journal.find_order(order_id="nope", client_order_id="nope") is None


def test_replayed_fill_is_journaled_once(journal: Journal) -> None:
    journal.record_intent("c1", limit_intent())
    assert journal.record_fill(fill_record("c1", "ex-1", "0.5", "0.5", "100"))
    # the same cumulative figure spelled differently is still the same key
    assert not journal.record_fill(fill_record("c1", "ex-1", "0.50", "0.5", "100"))
    assert len(journal.fills("c1")) == 1
    assert journal.fill_totals("c1").size == Decimal("0.5")


def test_fill_with_a_known_trade_id_is_deduplicated_by_it(journal: Journal) -> None:
    journal.record_intent("c1", limit_intent())
    base = fill_record("c1", "ex-1", "0.5", "0.5", "100")
    with_trade = FillRecord("c1", base.fill, base.value, None, "T-1", external=True)
    assert journal.record_fill(with_trade)
    assert not journal.record_fill(with_trade)
    [stored] = journal.fills()
    assert stored.trade_id == "T-1" and stored.fill.trade_id == "T-1" and stored.external


def test_fill_round_trip_and_last_fill_time(journal: Journal) -> None:
    journal.record_intent("c1", limit_intent())
    assert journal.last_fill_time() is None
    record = fill_record("c1", "ex-1", "0.5", "0.5", "100")
    journal.record_fill(record)
    [stored] = journal.fills()
    assert stored == record
    assert stored.fill.liquidity is LiquidityIndicator.UNKNOWN
    assert journal.last_fill_time() == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    # an older fill recorded later does not move the mark back
    older = dataclasses.replace(record.fill, trade_time=datetime(2025, 12, 31, tzinfo=UTC))
    journal.record_fill(FillRecord("c1", older, Decimal(1), Decimal("0.6"), None, False))
    assert journal.last_fill_time() == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)


def test_fills_listing_is_bounded_and_oldest_first(journal: Journal) -> None:
    journal.record_intent("c1", limit_intent())
    for n in range(1, 6):
        journal.record_fill(fill_record("c1", "ex-1", str(n), "1", "10"))
    assert [r.cumulative_size for r in journal.fills(limit=2)] == [Decimal(4), Decimal(5)]


def test_fill_for_an_unknown_intent_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError):
        journal.record_fill(fill_record("ghost", "ex-1", "1", "1", "1"))


def test_denials_and_risk_events(journal: Journal, clock: ManualClock) -> None:
    denial = Denial(DenialReason.PRICE_BAND, "limit 68000 is 9% from mid 62000 (max 5%)")
    journal.record_denial("c9", limit_intent(strategy_id="mm"), denial)
    journal.record_denial(None, limit_intent(), Denial(DenialReason.ORDER_RATE, "11/s > 10/s"))
    first, second = journal.denials()
    assert first.denial == denial and first.strategy_id == "mm" and first.client_order_id == "c9"
    assert second.client_order_id is None and second.source is IntentSource.STRATEGY
    journal.record_risk_event("trigger", "daily loss 512 > 500")
    [event] = journal.risk_events()
    assert (event.kind, event.detail, event.at) == ("trigger", "daily loss 512 > 500", clock.time())


def test_trading_state_history_loads_the_latest(journal: Journal) -> None:
    assert journal.load_trading_state() is None
    halted = TradingStateChange(TradingState.HALTED, "kill switch", "user", 10.0)
    journal.save_trading_state(TradingStateChange(TradingState.ACTIVE, "start", "startup", 1.0))
    journal.save_trading_state(halted)
    assert journal.load_trading_state() == halted
    assert [c.state for c in journal.trading_state_history()] == [
        TradingState.ACTIVE,
        TradingState.HALTED,
    ]


def test_trading_state_survives_reopen(path: Path, clock: ManualClock) -> None:
    first = Journal.open(path, clock=clock)
    change = TradingStateChange(TradingState.REDUCING, "drawdown", "trigger:drawdown", 5.0)
    first.save_trading_state(change)
    first.close()
    second = Journal.open(path, clock=clock)
    assert second.load_trading_state() == change
    second.close()


def test_interrupted_flatten_is_reported_and_closed_never_refired(
    path: Path, clock: ManualClock
) -> None:
    first = Journal.open(path, clock=clock)
    first.record_flatten_started("flatten-1", "sizes from fresh balances")
    first.record_flatten_finished("flatten-1", "2 order(s)")
    clock.advance(60)
    first.record_flatten_started("flatten-2", "sizes from fresh balances")
    first.close()  # the "crash": started, never finished

    second = Journal.open(path, clock=clock)
    assert second.unfinished_flatten() == "flatten-2"
    second.record_flatten_finished("flatten-2", "interrupted; not re-sent")
    assert second.unfinished_flatten() is None
    markers = second.flattens()
    assert [(m.flatten_id, m.outcome) for m in markers] == [
        ("flatten-1", "2 order(s)"),
        ("flatten-2", "interrupted; not re-sent"),
    ]
    assert markers[1].started_at == clock.time() and markers[1].finished_at == clock.time()
    second.close()


def test_finishing_a_flatten_twice_keeps_the_first_outcome(journal: Journal) -> None:
    journal.record_flatten_started("f", "x")
    journal.record_flatten_finished("f", "flat")
    journal.record_flatten_finished("f", "again")
    assert [m.outcome for m in journal.flattens()] == ["flat"]


def test_key_values(journal: Journal) -> None:
    assert journal.get_value("k") is None
    journal.set_value("k", "1")
    journal.set_value("k", "2")
    assert journal.get_value("k") == "2"


def test_write_on_a_closed_journal_raises_journal_error(journal: Journal) -> None:
    journal.close()
    with pytest.raises(JournalError):
        journal.set_value("k", "v")


def test_a_failed_write_rolls_back_the_whole_transaction(journal: Journal) -> None:
    # Plant a current-state row for "c2" so the last statement of record_intent clashes.
    journal._db.execute("PRAGMA foreign_keys=OFF")
    journal._db.execute(
        "INSERT INTO current_orders (client_order_id, state, updated_at) VALUES ('c2', 'X', 0)"
    )
    journal._db.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(JournalError):
        journal.record_intent("c2", limit_intent())
    counts = [
        journal._db.execute(
            f"SELECT COUNT(*) FROM {table} WHERE client_order_id = 'c2'"
        ).fetchone()[0]
        for table in ("intents", "order_states")
    ]
    assert counts == [0, 0]
