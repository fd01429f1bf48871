"""Balances, holds and fees of the simulated exchange's users.

Every user has one wallet per currency with ``available`` and ``hold``. Orders move money from
available to hold when they are accepted and settle out of the hold as they fill; whatever an
order still holds goes back to available when it ends. Nothing ever goes negative: a hold that
cannot be covered is refused, and settlement only spends what was held.

Fees follow Coinbase's style: a maker and a taker rate per user (defaults 0.40 % / 0.60 %),
charged in the quote currency on each fill and paid into one fee account, so the total of every
currency across all users (fee account included) never changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal

from core.sim.types import SimAccount

__all__ = ["DEFAULT_MAKER_FEE", "DEFAULT_TAKER_FEE", "FEE_USER_ID", "Ledger", "Wallet"]

DEFAULT_MAKER_FEE = Decimal("0.004")
DEFAULT_TAKER_FEE = Decimal("0.006")
FEE_USER_ID = "sim-fee-collector"

_ZERO = Decimal(0)
# A fixed namespace so wallet uuids are the same on every run (deterministic demos and tests).
_WALLET_NAMESPACE = uuid.UUID("6f1d4c1e-2a57-4f0b-9a55-5c1d0b7e9a10")


class InsufficientFunds(Exception):
    """A hold or a debit larger than what is available."""


class Wallet:
    """One user's balance in one currency."""

    __slots__ = ("available", "currency", "hold", "uuid")

    def __init__(self, wallet_uuid: str, currency: str, available: Decimal) -> None:
        self.uuid = wallet_uuid
        self.currency = currency
        self.available = available
        self.hold = _ZERO

    def snapshot(self) -> SimAccount:
        return SimAccount(self.uuid, self.currency, self.available, self.hold)


class Ledger:
    """All wallets and fee rates. Amounts are exact ``Decimal``; no rounding happens here."""

    def __init__(
        self,
        *,
        maker_fee: Decimal = DEFAULT_MAKER_FEE,
        taker_fee: Decimal = DEFAULT_TAKER_FEE,
    ) -> None:
        self._wallets: dict[str, dict[str, Wallet]] = {}
        self._default_rates = (maker_fee, taker_fee)
        self._rates: dict[str, tuple[Decimal, Decimal]] = {}
        self.open(FEE_USER_ID, {})

    def open(self, user_id: str, balances: Mapping[str, Decimal]) -> None:
        """Create the user (if new) and credit the given amounts."""
        self._wallets.setdefault(user_id, {})
        for currency, amount in balances.items():
            if amount < 0:
                raise ValueError(f"an opening balance cannot be negative: {currency} {amount}")
            self.wallet(user_id, currency).available += amount

    def has_user(self, user_id: str) -> bool:
        return user_id in self._wallets

    def users(self) -> list[str]:
        return list(self._wallets)

    def wallet(self, user_id: str, currency: str) -> Wallet:
        """The user's wallet in ``currency``, created empty on first use."""
        wallets = self._wallets.setdefault(user_id, {})
        found = wallets.get(currency)
        if found is None:
            name = f"{user_id}/{currency}"
            found = wallets[currency] = Wallet(
                str(uuid.uuid5(_WALLET_NAMESPACE, name)), currency, _ZERO
            )
        return found

    def accounts(self, user_id: str) -> list[SimAccount]:
        """The user's wallets, sorted by currency."""
        wallets = self._wallets.get(user_id, {})
        return [wallets[currency].snapshot() for currency in sorted(wallets)]

    def total(self, currency: str) -> Decimal:
        """Available + hold of ``currency`` over every user: what conservation is checked on."""
        total = _ZERO
        for wallets in self._wallets.values():
            wallet = wallets.get(currency)
            if wallet is not None:
                total += wallet.available + wallet.hold
        return total

    # -- fees -------------------------------------------------------------------------------

    def fee_rates(self, user_id: str) -> tuple[Decimal, Decimal]:
        """(maker, taker) rates for the user's next order."""
        return self._rates.get(user_id, self._default_rates)

    def set_fee_rates(self, user_id: str, maker: Decimal, taker: Decimal) -> None:
        """Give one user its own fee tier (applies to orders placed afterwards)."""
        if maker < 0 or taker < 0:
            raise ValueError("fee rates cannot be negative")
        self._rates[user_id] = (maker, taker)

    # -- holds and settlement ---------------------------------------------------------------

    def place_hold(self, user_id: str, currency: str, amount: Decimal) -> None:
        """Move ``amount`` from available to hold, or raise InsufficientFunds."""
        wallet = self.wallet(user_id, currency)
        if amount > wallet.available:
            raise InsufficientFunds(f"{currency}: need {amount}, available {wallet.available}")
        wallet.available -= amount
        wallet.hold += amount

    def release_hold(self, user_id: str, currency: str, amount: Decimal) -> None:
        """Give held money back to available (an order ended or was priced better)."""
        if amount == 0:
            return
        wallet = self.wallet(user_id, currency)
        if amount > wallet.hold:
            raise AssertionError(f"releasing {amount} {currency} but only {wallet.hold} is held")
        wallet.hold -= amount
        wallet.available += amount

    def spend_hold(self, user_id: str, currency: str, amount: Decimal) -> None:
        """Take money out of the user's hold (it leaves the wallet: paid to a counterparty)."""
        wallet = self.wallet(user_id, currency)
        if amount > wallet.hold:
            raise AssertionError(f"spending {amount} {currency} but only {wallet.hold} is held")
        wallet.hold -= amount

    def credit(self, user_id: str, currency: str, amount: Decimal) -> None:
        """Add money to available (proceeds of a fill, or collected fees)."""
        self.wallet(user_id, currency).available += amount

    def available(self, user_id: str, currency: str) -> Decimal:
        wallet = self._wallets.get(user_id, {}).get(currency)
        return _ZERO if wallet is None else wallet.available
