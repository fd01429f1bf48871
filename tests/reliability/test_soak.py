"""The soak, short version (CI): the engine trades with the market maker on the simulated
exchange over loopback while every kind of fault is injected (late order POSTs and trickling
answers included, during trading and during a kill) and the kill switch is pressed, and every
invariant holds against the exchange's own state (see ``tests/reliability/soak.py``;
the long run is ``scripts/soak.py`` / ``make soak``).

Also here: the invariant checks themselves catch what they exist to catch, so a soak that
passes means something.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.model import ExchangeOrderStatus
from tests.reliability.invariants import (
    JournalFill,
    JournalOrder,
    JournalView,
    VenueFill,
    VenueOrder,
    WorkingAtVenue,
    check_fills_once,
    check_ledger,
    check_limits_held,
    check_one_order_per_intent,
    check_orders_known_both_ways,
    ledger_from_fills,
)
from tests.reliability.soak import FAULT_KINDS, INVARIANTS, SoakConfig, run_soak

SEED = 7
D = Decimal


async def test_soak_keeps_every_invariant_under_faults_and_kills(tmp_path: Path) -> None:
    config = SoakConfig(seed=SEED)
    report = await run_soak(config, tmp_path)
    print(report.table())  # the figures, in the test log (pytest -s shows them live)
    assert report.ok, report.table()
    # It did what it claims: every fault kind was injected (and used), kills were pressed,
    # the engine resynced and reconnected, and the strategy traded.
    assert set(FAULT_KINDS) <= set(report.injected), report.injected
    assert report.kills == config.kills
    assert report.recoveries == config.episodes
    assert report.resyncs > 0 and report.reconnects > 0
    assert report.orders > 0 and report.fills > 0
    assert report.journal_fills >= 1
    # The malformed frames it injected were refused and counted, and the table says so.
    assert report.refused_inputs, report.table()
    assert "input refused" in report.table()
    for name in INVARIANTS:
        tally = report.invariants[name]
        assert tally.checks > 0 and tally.passed == tally.checks, name


async def test_a_market_that_never_reaches_the_quotes_still_fills_one(tmp_path: Path) -> None:
    """Quotes 60 bps from mid are out of the agents' reach in a short run: the soak has the
    market take one (so the fills-once and ledger invariants are checked against a fill on a
    loaded machine too), and the engine books it once."""
    config = SoakConfig(seed=3, episodes=2, kills=1, half_spread_bps=Decimal("60"))
    report = await run_soak(config, tmp_path)
    assert report.ok, report.table()
    assert report.quotes_hit >= 1, report.table()
    assert report.fills >= 1 and report.journal_fills == report.fills, report.table()


# --------------------------------------------------------------------------- the checks


def _venue_order(
    order_id: str,
    client_order_id: str,
    status: ExchangeOrderStatus = ExchangeOrderStatus.FILLED,
    filled: str = "0.002",
) -> VenueOrder:
    size = D(filled)
    return VenueOrder(
        order_id, client_order_id, "BTC-USD", status, size, size * 100, size * D("0.4")
    )


def _journal_order(client_order_id: str, order_id: str | None, state: str) -> JournalOrder:
    return JournalOrder(client_order_id, order_id, state, False, None, 0.0)


def _journal_fill(order_id: str, size: str) -> JournalFill:
    amount = D(size)
    return JournalFill("c1", order_id, "BTC-USD", "BUY", amount, amount * 100, amount * D("0.4"))


@pytest.fixture
def filled_twice() -> tuple[VenueOrder, list[VenueFill]]:
    """One venue order filled in two trades of 0.001 at 100 (fee 0.0004 each)."""
    fills = [VenueFill("o1", D("0.001"), D("0.1"), D("0.0004")) for _ in range(2)]
    return _venue_order("o1", "c1"), fills


def test_checks_pass_when_journal_and_venue_agree(
    filled_twice: tuple[VenueOrder, list[VenueFill]],
) -> None:
    order, fills = filled_twice
    journal = JournalView(
        {"c1": _journal_order("c1", "o1", "FILLED")},
        (_journal_fill("o1", "0.001"), _journal_fill("o1", "0.001")),
    )
    assert check_orders_known_both_ways(journal, [order]) == []
    assert check_one_order_per_intent(journal, [order]) == []
    assert check_fills_once(journal, [order], fills) == []


def test_a_doubled_or_missing_fill_is_caught(
    filled_twice: tuple[VenueOrder, list[VenueFill]],
) -> None:
    order, fills = filled_twice
    doubled = JournalView(
        {"c1": _journal_order("c1", "o1", "FILLED")},
        tuple(_journal_fill("o1", "0.001") for _ in range(3)),
    )
    missing = JournalView({"c1": _journal_order("c1", "o1", "FILLED")}, ())
    assert any("journal rows" in p for p in check_fills_once(doubled, [order], fills))
    assert check_fills_once(missing, [order], fills)


def test_orders_unknown_either_way_or_disagreeing_are_caught() -> None:
    venue = [_venue_order("o1", "c1", ExchangeOrderStatus.OPEN, "0")]
    stranger = JournalView({}, ())
    ghost = JournalView({"c2": _journal_order("c2", "o2", "ACCEPTED")}, ())
    disagree = JournalView({"c1": _journal_order("c1", "o1", "CANCELED")}, ())
    unresolved = JournalView({"c3": _journal_order("c3", None, "UNKNOWN")}, ())
    resent = JournalView({"c1": _journal_order("c1", None, "REJECTED")}, ())
    assert "unknown to the engine" in check_orders_known_both_ways(stranger, venue)[0]
    assert any("no such order" in p for p in check_orders_known_both_ways(ghost, venue))
    assert "engine says CANCELED" in check_orders_known_both_ways(disagree, venue)[0]
    assert any("still UNKNOWN" in p for p in check_orders_known_both_ways(unresolved, []))
    assert any("yet at the venue" in p for p in check_orders_known_both_ways(resent, venue))


def test_two_orders_for_one_intent_are_caught() -> None:
    venue = [_venue_order("o1", "c1"), _venue_order("o2", "c1")]
    journal = JournalView({"c1": _journal_order("c1", "o1", "FILLED")}, ())
    assert "produced 2 orders" in check_one_order_per_intent(journal, venue)[0]


def test_the_ledger_of_journaled_fills_must_match_the_balances() -> None:
    held = ledger_from_fills({"USD": D(1000), "BTC": D(1)}, [_journal_fill("o1", "0.5")])
    assert held == {"USD": D("949.8"), "BTC": D("1.5")}
    assert check_ledger(held, {"USD": D("949.8"), "BTC": D("1.5")}) == []
    assert check_ledger(held, {"USD": D("949.8"), "BTC": D("1.4")}) == [
        "BTC: expected 1.5, venue holds 1.4"
    ]


def test_limits_counting_working_orders_are_checked_from_the_venue() -> None:
    def check(working: list[WorkingAtVenue], held: str = "0.5") -> list[str]:
        return check_limits_held(
            working,
            product_id="BTC-USD",
            held=D(held),
            lowest_buy_price=D(100),
            max_open_orders=2,
            max_position=D(60),
        )

    buy = WorkingAtVenue("BTC-USD", "BUY", D("0.05"))
    sell = WorkingAtVenue("BTC-USD", "SELL", D("0.5"))
    assert check([buy, sell]) == []  # 0.55 * 100 = 55 if the buy fills
    assert "3 open at the venue > limit 2" in check([buy, buy, sell])[0]
    # Two working buys: each alone fits, together they pass the limit.
    assert "worst case 60.01" in check([buy, buy], held="0.5001")[0]
    assert check([sell, sell]) == [], "sells shrink the long position"
    other = WorkingAtVenue("ETH-USD", "BUY", D(5))
    assert check([other]) == []
