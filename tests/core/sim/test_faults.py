"""The fault plan syntax and the injector's decisions (unit level; the wire effects are in
tests/reliability/test_sim_faults.py)."""

from __future__ import annotations

import pytest

from core.clock import ManualClock
from core.sim.faults import (
    FAULT_HELP,
    FaultInjector,
    FaultPlan,
    RestFault,
    RestFaultKind,
    WsFaultKind,
)

FULL = (
    "ws_drop=0.01,ws_close_1001=0.005,seq_skip=0.01,silence=3@0.002,malformed=0.01,"
    "rest_429=0.05,rest_500=0.05,rest_delay=15@0.02,lose_order_response=0.1,"
    "late_order=25@0.05,trickle=2@0.01"
)


class _Target:
    """Records what the one-shot faults asked of the server."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def drop_websockets(self) -> int:
        self.calls.append(("drop", 0))
        return 2

    def close_websockets(self, code: int) -> int:
        self.calls.append(("close", code))
        return 2

    def skip_sequence(self, count: int) -> int:
        self.calls.append(("skip", count))
        return 2

    def send_malformed(self) -> int:
        self.calls.append(("malformed", 0))
        return 2


def test_parse_the_brief_example() -> None:
    plan = FaultPlan.parse(FULL)
    assert plan == FaultPlan(
        ws_drop=0.01,
        ws_close_1001=0.005,
        seq_skip=0.01,
        silence=0.002,
        silence_s=3.0,
        malformed=0.01,
        rest_429=0.05,
        rest_500=0.05,
        rest_delay=0.02,
        rest_delay_s=15.0,
        lose_order_response=0.1,
        late_order=0.05,
        late_order_s=25.0,
        trickle=0.01,
        trickle_s=2.0,
    )
    assert plan.ws_active and plan.rest_active
    assert FaultPlan.parse("trickle=1@0.5").rest_active
    assert FaultPlan.parse(plan.describe()) == plan


def test_parse_amounts_spaces_and_empty() -> None:
    plan = FaultPlan.parse(" seq_skip = 5@0.5 , , rest_500=1 ")
    assert (plan.seq_skip, plan.seq_skip_count, plan.rest_500) == (0.5, 5, 1.0)
    assert FaultPlan.parse("") == FaultPlan()
    assert not FaultPlan().ws_active and not FaultPlan().rest_active
    assert FaultPlan().describe() == "none"
    assert FaultPlan.parse("rest_429=0").describe() == "none"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ws_dorp=0.1", "unknown"),
        ("ws_drop", "expected NAME=P"),
        ("ws_drop=", "expected NAME=P"),
        ("ws_drop=abc", "not a number"),
        ("ws_drop=1.5", "not in [0, 1]"),
        ("ws_drop=-0.1", "not in [0, 1]"),
        ("ws_drop=0.1,ws_drop=0.2", "given twice"),
        ("ws_drop=3@0.1", "takes no amount"),
        ("silence=0.1", "needs a duration"),
        ("rest_delay=0.1", "needs a duration"),
        ("late_order=0.1", "needs a duration"),
        ("trickle=0.1", "needs a duration"),
        ("trickle=0@0.1", "must be positive"),
        ("silence=x@0.1", "not a number"),
        ("silence=0@0.1", "must be positive"),
        ("seq_skip=1.5@0.1", "not a number"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FaultPlan.parse(text)


def test_help_documents_every_fault() -> None:
    for name in (
        "ws_drop",
        "ws_close_1001",
        "seq_skip",
        "silence",
        "malformed",
        "rest_429",
        "rest_500",
        "rest_delay",
        "lose_order_response",
        "late_order",
        "trickle",
    ):
        assert name in FAULT_HELP


def test_one_shot_websocket_faults_act_on_the_target() -> None:
    injector = FaultInjector(None, seed=1, clock=ManualClock())
    assert injector.drop_websockets() == 0, "nothing attached yet"
    target = _Target()
    injector.attach(target)
    assert injector.drop_websockets() == 2
    assert injector.close_websockets() == 2
    assert injector.skip_sequence(4) == 2
    assert injector.send_malformed() == 2
    assert target.calls == [("drop", 0), ("close", 1001), ("skip", 4), ("malformed", 0)]
    with pytest.raises(ValueError):
        injector.skip_sequence(0)
    assert injector.injected[WsFaultKind.DROP] == 2


def test_silence_follows_the_clock() -> None:
    clock = ManualClock()
    injector = FaultInjector(None, seed=1, clock=clock)
    assert not injector.is_silent
    injector.silence(2.0)
    assert injector.is_silent
    clock.advance(1.9)
    assert injector.is_silent
    clock.advance(0.2)
    assert not injector.is_silent
    injector.silence(5)
    injector.end_silence()
    assert not injector.is_silent
    with pytest.raises(ValueError):
        injector.silence(0)


def test_one_shot_rest_faults_in_order() -> None:
    injector = FaultInjector(FaultPlan(rest_delay_s=7), seed=1, clock=ManualClock())
    injector.next_rest(429)
    injector.next_rest("lose_order_response")
    injector.next_rest("delay")
    injector.next_rest(500, count=2)
    assert injector.rest_fault(is_order=False) == RestFault(RestFaultKind.TOO_MANY_REQUESTS, 7)
    assert injector.rest_fault(is_order=False) == RestFault(RestFaultKind.DELAY, 7)
    assert injector.rest_fault(is_order=True) == RestFault(RestFaultKind.SERVER_ERROR, 7)
    assert injector.rest_fault(is_order=False) == RestFault(RestFaultKind.SERVER_ERROR, 7)
    assert injector.rest_fault(is_order=False) is None, "a lost response waits for an order"
    assert injector.rest_fault(is_order=True) == RestFault(RestFaultKind.LOSE_ORDER_RESPONSE, 7)
    assert injector.rest_fault(is_order=True) is None
    with pytest.raises(ValueError):
        injector.next_rest(418)
    with pytest.raises(ValueError):
        injector.next_rest(429, count=0)
    injector.next_rest(429)
    injector.silence(1)
    injector.clear()
    assert injector.rest_fault(is_order=False) is None and not injector.is_silent


def test_late_orders_wait_for_a_post_and_trickles_take_any_request() -> None:
    injector = FaultInjector(FaultPlan(late_order_s=9, trickle_s=3), seed=1, clock=ManualClock())
    injector.next_rest("late_order")
    injector.next_rest("trickle")
    injector.next_rest("late_order", delay_s=0.5)
    assert injector.rest_fault(is_order=False) == RestFault(RestFaultKind.TRICKLE, 3)
    assert injector.rest_fault(is_order=False) is None, "a late order waits for an order"
    assert injector.rest_fault(is_order=True) == RestFault(RestFaultKind.LATE_ORDER, 9)
    assert injector.rest_fault(is_order=True) == RestFault(RestFaultKind.LATE_ORDER, 0.5)
    assert injector.injected["rest_late_order"] == 2 and injector.injected["rest_trickle"] == 1
    with pytest.raises(ValueError):
        injector.next_rest("trickle", delay_s=0)


def test_random_late_orders_and_trickles_follow_the_rates() -> None:
    plan = FaultPlan.parse("late_order=5@0.3,trickle=1@0.2")
    injector = FaultInjector(plan, seed=2, clock=ManualClock())
    kinds = [f.kind if (f := injector.rest_fault(is_order=True)) else None for _ in range(2000)]
    assert 0.26 < kinds.count(RestFaultKind.LATE_ORDER) / 2000 < 0.34
    # 0.2 of what the late orders left over.
    assert 0.11 < kinds.count(RestFaultKind.TRICKLE) / 2000 < 0.17
    no_orders = FaultInjector(FaultPlan.parse("late_order=5@1"), seed=2, clock=ManualClock())
    assert no_orders.rest_fault(is_order=False) is None


def test_random_faults_are_seeded_and_follow_the_rates() -> None:
    plan = FaultPlan.parse("rest_429=0.2,rest_500=0.1,rest_delay=2@0.1,lose_order_response=0.5")

    def draws(seed: int) -> list[RestFaultKind | None]:
        injector = FaultInjector(plan, seed=seed, clock=ManualClock())
        faults = [injector.rest_fault(is_order=True) for _ in range(2000)]
        return [f.kind if f else None for f in faults]

    first = draws(5)
    assert first == draws(5), "same seed, same faults"
    assert first != draws(6)
    share = {kind: first.count(kind) / len(first) for kind in RestFaultKind}
    assert 0.17 < share[RestFaultKind.TOO_MANY_REQUESTS] < 0.23
    assert 0.06 < share[RestFaultKind.SERVER_ERROR] < 0.10
    assert 0.05 < share[RestFaultKind.DELAY] < 0.09
    assert 0.25 < share[RestFaultKind.LOSE_ORDER_RESPONSE] < 0.33
    non_order = FaultInjector(FaultPlan.parse("lose_order_response=1"), seed=1, clock=ManualClock())
    assert non_order.rest_fault(is_order=False) is None


def test_random_websocket_faults() -> None:
    clock = ManualClock()
    injector = FaultInjector(FaultPlan(), seed=3, clock=clock)
    assert injector.ws_fault() is None
    injector.plan = FaultPlan.parse("seq_skip=4@1")
    fault = injector.ws_fault()
    assert fault is not None and fault.kind is WsFaultKind.SKIP and fault.skip == 4
    injector.plan = FaultPlan.parse("silence=2@1")
    assert injector.ws_fault() is not None and injector.is_silent
    clock.advance(2)
    assert not injector.is_silent
    for text, kind in (
        ("ws_drop=1", WsFaultKind.DROP),
        ("ws_close_1001=1", WsFaultKind.CLOSE_1001),
        ("malformed=1", WsFaultKind.MALFORMED),
    ):
        injector.plan = FaultPlan.parse(text)
        fault = injector.ws_fault()
        assert fault is not None and fault.kind is kind
    injector.plan = FaultPlan.parse("ws_drop=0.1,malformed=0.1")
    kinds = [f.kind if (f := injector.ws_fault()) else None for _ in range(3000)]
    assert 0.08 < kinds.count(WsFaultKind.DROP) / 3000 < 0.12
    assert 0.07 < kinds.count(WsFaultKind.MALFORMED) / 3000 < 0.11
