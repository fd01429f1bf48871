"""Balances, holds and fee rates of the ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.sim.accounts import (
    DEFAULT_MAKER_FEE,
    DEFAULT_TAKER_FEE,
    FEE_USER_ID,
    InsufficientFunds,
    Ledger,
)

D = Decimal


@pytest.fixture
def ledger() -> Ledger:
    """A ledger with user "u" holding 100 USD and 2 BTC."""
    ledger = Ledger()
    ledger.open("u", {"USD": D(100), "BTC": D(2)})
    return ledger


def test_open_lists_wallets_sorted_with_stable_uuids(ledger: Ledger) -> None:
    accounts = ledger.accounts("u")
    assert [(a.currency, a.available, a.hold) for a in accounts] == [
        ("BTC", D(2), D(0)),
        ("USD", D(100), D(0)),
    ]
    again = Ledger()
    again.open("u", {"USD": D(1)})
    usd_uuid = {a.currency: a.uuid for a in accounts}["USD"]
    assert again.accounts("u")[0].uuid == usd_uuid  # same user+currency, same uuid every run
    assert ledger.has_user(FEE_USER_ID)
    assert ledger.accounts("nobody") == []


def test_open_tops_up_and_refuses_negative(ledger: Ledger) -> None:
    ledger.open("u", {"USD": D(5)})
    assert ledger.available("u", "USD") == D(105)
    with pytest.raises(ValueError, match="negative"):
        ledger.open("u", {"USD": D(-1)})


def test_hold_moves_available_and_refuses_overdraft(ledger: Ledger) -> None:
    ledger.place_hold("u", "USD", D(60))
    usd = ledger.wallet("u", "USD")
    assert (usd.available, usd.hold) == (D(40), D(60))
    with pytest.raises(InsufficientFunds):
        ledger.place_hold("u", "USD", D("40.01"))
    assert (usd.available, usd.hold) == (D(40), D(60))


def test_release_spend_and_credit(ledger: Ledger) -> None:
    ledger.place_hold("u", "USD", D(60))
    ledger.spend_hold("u", "USD", D(50))
    ledger.release_hold("u", "USD", D(10))
    ledger.release_hold("u", "USD", D(0))
    ledger.credit("u", "BTC", D("0.5"))
    assert ledger.available("u", "USD") == D(50)
    assert ledger.wallet("u", "USD").hold == 0
    assert ledger.available("u", "BTC") == D("2.5")
    assert ledger.total("USD") == D(50)


def test_hold_can_never_go_negative(ledger: Ledger) -> None:
    ledger.place_hold("u", "BTC", D(1))
    with pytest.raises(AssertionError):
        ledger.release_hold("u", "BTC", D(2))
    with pytest.raises(AssertionError):
        ledger.spend_hold("u", "BTC", D(2))


def test_fee_rates_default_and_per_user(ledger: Ledger) -> None:
    assert (
        ledger.fee_rates("u")
        == (DEFAULT_MAKER_FEE, DEFAULT_TAKER_FEE)
        == (
            D("0.004"),
            D("0.006"),
        )
    )
    ledger.set_fee_rates("vip", D(0), D("0.001"))
    assert ledger.fee_rates("vip") == (D(0), D("0.001"))
    assert ledger.fee_rates("u") == (D("0.004"), D("0.006"))
    with pytest.raises(ValueError):
        ledger.set_fee_rates("vip", D(-1), D(0))


def test_total_sums_every_user(ledger: Ledger) -> None:
    ledger.open("v", {"BTC": D(3)})
    ledger.place_hold("v", "BTC", D(1))
    assert ledger.total("BTC") == D(5)
    assert ledger.total("ETH") == D(0)
    assert set(ledger.users()) == {FEE_USER_ID, "u", "v"}
