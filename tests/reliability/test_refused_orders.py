"""An open order whose listing is refused as impossible is still cancelled.

The REST decoder refuses an order with impossible figures (a fill past its size, a fee of
1e20) so that nothing books them; before, it also left the order out of the listing, so the
kill switch never saw it, said DONE, and the order stayed open at the venue. Now a refused
order that still names itself, its product and its side, and is open, is listed for cancelling
only (identity and status, no fill figures) and counted as refused; one that is not open, or
cannot even say which order it is, is still left out.
"""

from __future__ import annotations

import asyncio
import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.bad_input import REFUSED_EXCHANGE_DATA
from core.clock import ManualClock
from core.coinbase.rest_decode import BAD_ORDER, decode_orders_page
from core.emergency import KillPhase
from core.fill_guard import FILL_NOT_SANE, FILL_PAST_ORDER_SIZE
from core.model import ExchangeOrderStatus, Side
from core.order_state import OrderState
from core.sim.exchange import SimExchange
from core.sim.server import SimServer
from core.sim.types import SimOrderRequest
from tests.integration.engine_harness import running_engine

D = Decimal
DATA = Path(__file__).resolve().parents[1] / "data" / "coinbase"


def _orders_by_id() -> dict[str, dict[str, Any]]:
    page = json.loads((DATA / "orders_page_with_bad_orders.json").read_text())
    return {order["order_id"]: order for order in page["orders"]}


def _open(order: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(order)
    changed["status"] = "OPEN"
    changed.update(changes)
    return changed


def _counts() -> dict[str, int]:
    return REFUSED_EXCHANGE_DATA.counts()


def test_a_refused_open_order_is_listed_for_cancelling_only_and_counted() -> None:
    raw = _orders_by_id()
    page = {
        "orders": [
            raw["good-1"],
            _open(raw["past-size"]),  # 5 filled on a 0.001 order
            _open(raw["huge-fill"]),  # 1e400 filled
            _open(raw["good-2"], total_fees="1e20"),  # a fee beyond any real amount
        ],
        "has_next": False,
        "cursor": "",
    }
    before = _counts()
    orders = {o.order_id: o for o in decode_orders_page(page).items}
    after = _counts()
    assert list(orders) == ["good-1", "past-size", "huge-fill", "good-2"]
    for order_id in ("past-size", "huge-fill", "good-2"):
        kept = orders[order_id]
        # Who it is and that it is open: enough to cancel it.
        assert kept.status is ExchangeOrderStatus.OPEN and kept.product_id == "BTC-USD"
        assert kept.side is Side.BUY and kept.client_order_id == f"client-{order_id}"
        # No figure of a refused report is passed on.
        assert kept.filled_size == kept.filled_value == kept.total_fees == 0
        assert kept.average_filled_price == 0
        # Its own sizes and prices are kept where sane (the gate counts it as working).
        assert kept.base_size == D("0.001") and kept.limit_price == D("60000.00")
    assert after.get(FILL_PAST_ORDER_SIZE, 0) - before.get(FILL_PAST_ORDER_SIZE, 0) == 1
    assert after.get(FILL_NOT_SANE, 0) - before.get(FILL_NOT_SANE, 0) == 2


@pytest.mark.parametrize(
    ("order_id", "changes"),
    [
        ("past-size", {"status": "FILLED"}),  # finished: nothing to cancel, nothing to book
        ("bad-side", {}),  # open, but not even its side can be read
        ("past-size", {"order_id": ""}),  # open, but which order is it?
        ("past-size", {"product_id": None}),
    ],
)
def test_a_refused_order_that_is_not_open_or_not_identifiable_is_left_out(
    order_id: str, changes: dict[str, Any]
) -> None:
    order = _open(_orders_by_id()[order_id], **changes)
    before = sum(_counts().values())
    assert decode_orders_page({"orders": [order], "has_next": False}).items == []
    assert sum(_counts().values()) == before + 1, "still counted as refused"


def test_an_unreadable_open_order_that_names_itself_is_kept_for_cancelling() -> None:
    order = _open(_orders_by_id()["good-1"], filled_size={"not": "a number"})
    before = _counts().get(BAD_ORDER, 0)
    [kept] = decode_orders_page({"orders": [order], "has_next": False}).items
    assert kept.order_id == "good-1" and kept.filled_size == 0
    assert _counts().get(BAD_ORDER, 0) == before + 1


async def test_the_kill_cancels_an_open_order_whose_listing_is_refused(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> None:
    """Over loopback: an order of ours placed elsewhere that the engine hears of through REST
    only, with an impossible fee in every listing. The kill must cancel it (refused, counted,
    never booked) and say DONE only when the exchange holds none open."""
    async with running_engine(sim_server, sim_exchange, sim_clock, tmp_path) as run:
        # The user channel stays silent: the engine learns of the order from listings alone.
        sim_server.faults.silence(3600)
        user = run.sim.user_id
        result = sim_exchange.create_order(
            user,
            SimOrderRequest(
                "placed-elsewhere",
                "SOL-USD",
                Side.BUY,
                "limit_limit_gtc",
                base_size=D("1"),
                limit_price=D("149.00"),
            ),
        )
        assert result.success
        [order] = run.sim.by_client_id("placed-elsewhere")
        order.total_fees = D("1e20")  # what a hostile proxy or a venue bug reports
        refused_before = REFUSED_EXCHANGE_DATA.count(FILL_NOT_SANE)
        progress = await asyncio.wait_for(run.engine.kill("kill with a refused order open"), 30)
        assert progress.phase is KillPhase.DONE
        assert run.sim.order(order.order_id).status is ExchangeOrderStatus.CANCELLED
        assert run.sim.open_orders() == []
        assert REFUSED_EXCHANGE_DATA.count(FILL_NOT_SANE) > refused_before
        adopted = [o for o in run.engine.journal.fills() if o.fill.order_id == order.order_id]
        assert adopted == [], "nothing booked from a refused report"
        known = run.engine.orders.get("placed-elsewhere")
        # Adopted from the cancel-only listing and cancelled. Every later report of it is
        # refused too (its fee), so it stays PENDING_CANCEL, counted as working: the safe side.
        assert known is not None and known.external
        assert known.state is OrderState.PENDING_CANCEL
        sim_server.faults.end_silence()
