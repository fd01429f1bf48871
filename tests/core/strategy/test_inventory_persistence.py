"""The market maker's inventory survives a restart (issue 9 §3): it is journaled on every own
fill and restored when the engine attaches the journal, so a restarted maker keeps leaning
against, and capping, what it already holds."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from core.clock import ManualClock
from core.journal import Journal
from core.model import Side
from core.strategy.market_maker import MarketMaker, MarketMakerParams
from tests.core.strategy.fake_context import FakeContext

D = Decimal
PARAMS = MarketMakerParams(
    product_id="BTC-USD",
    order_size=D("0.001"),
    half_spread_bps=D(5),
    max_inventory=D("0.002"),
    requote_s=1.0,
)


class MemoryStore:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.fail = False

    def get_value(self, key: str) -> str | None:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        if self.fail:
            raise OSError("disk full")
        self.values[key] = value


def started(ctx: FakeContext, store: object) -> tuple[MarketMaker, str | None]:
    maker = MarketMaker(PARAMS)
    note = maker.attach_inventory_store(store)  # type: ignore[arg-type]
    maker.on_start(ctx)
    maker.on_book("BTC-USD")
    return maker, note


def test_a_restarted_maker_keeps_its_inventory_and_its_cap(tmp_path: Path) -> None:
    clock = ManualClock()
    journal = Journal.open(tmp_path / "journal-demo.sqlite3", clock=clock)
    ctx = FakeContext(clock=clock)
    maker, note = started(ctx, journal)
    assert note is None  # first start: nothing to restore
    for _ in range(2):  # two bids fill: at the 0.002 cap
        ctx.fill(maker, ctx.only_working(Side.BUY).client_order_id)
        clock.advance(2)
        maker.on_timer(clock.monotonic())
    assert maker.inventory == D("0.002")
    assert ctx.working(Side.BUY) == []  # capped
    journal.close()

    journal = Journal.open(tmp_path / "journal-demo.sqlite3", clock=clock)
    ctx = FakeContext(clock=clock)
    restarted, note = started(ctx, journal)
    assert note is not None and "restored from the journal" in note
    assert restarted.inventory == D("0.002")
    assert ctx.working(Side.BUY) == []  # still capped after the restart
    assert len(ctx.working(Side.SELL)) == 1
    journal.close()


def test_a_sell_fill_is_journaled_as_well() -> None:
    clock = ManualClock()
    store = MemoryStore()
    ctx = FakeContext(clock=clock)
    maker, _ = started(ctx, store)
    ctx.fill(maker, ctx.only_working(Side.SELL).client_order_id)
    assert D(store.values[maker.inventory_key]) == D("-0.001")


def test_an_unreadable_inventory_is_reported_and_starts_at_zero() -> None:
    store = MemoryStore()
    store.values["strategy.market_maker.inventory"] = "lots"
    maker, note = started(FakeContext(clock=ManualClock()), store)
    assert note is not None and "unreadable" in note
    assert maker.inventory == 0


def test_a_journal_that_cannot_be_written_does_not_stop_the_bookkeeping() -> None:
    store = MemoryStore()
    ctx = FakeContext(clock=ManualClock())
    maker, _ = started(ctx, store)
    store.fail = True
    ctx.fill(maker, ctx.only_working(Side.BUY).client_order_id)
    assert maker.inventory == D("0.001")
