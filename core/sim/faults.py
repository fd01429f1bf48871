"""Fault injection for the simulated exchange: what can go wrong, how often, and on demand.

A ``FaultPlan`` holds the random faults, parsed from one string (``cryptoj sim --faults``)::

    ws_drop=0.01,ws_close_1001=0.005,seq_skip=0.01,silence=3@0.002,malformed=0.01,
    rest_429=0.05,rest_500=0.05,rest_delay=15@0.02,lose_order_response=0.1,
    late_order=25@0.05,trickle=2@0.01

Each item is ``name=PROBABILITY`` or ``name=AMOUNT@PROBABILITY``. WebSocket faults are
drawn once per data message the server is about to send on a connection; REST faults once
per request (``lose_order_response`` and ``late_order`` once per POST /orders). See
``FAULT_HELP``.

A ``FaultInjector`` draws them with its own seeded generators and also fires one-shot faults
for tests (``drop_websockets()``, ``next_rest(429)``, ...). The server owns the sockets, so
it attaches itself as the ``WsFaultTarget`` that the one-shot WebSocket faults act on.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Final, Protocol

from core.clock import Clock

FAULT_HELP: Final = """\
fault plan: comma-separated NAME=P or NAME=AMOUNT@P, P a probability in [0, 1]
  WebSocket (drawn per data message sent on a connection):
    ws_drop=P              drop the TCP connection abruptly (no close frame)
    ws_close_1001=P        close with code 1001 Going Away (what a server restart does)
    seq_skip=[N@]P         skip N sequence numbers (default 1): the client sees a gap
    silence=S@P            send nothing at all, not even heartbeats, for S seconds on every
                           connection (messages due meanwhile are lost; their numbers too)
    malformed=P            send a frame that is not valid JSON before the real message
  REST (drawn per request):
    rest_429=P             answer 429 with an HTML body, as Coinbase's edge does
    rest_500=P             answer 500 with a JSON error body
    rest_delay=S@P         hold the answer S seconds (longer than the client's timeout)
    lose_order_response=P  POST /orders: create the order, then drop the connection
                           without an answer (the client cannot know the outcome)
    late_order=S@P         POST /orders: the request reaches the exchange S seconds late:
                           the order is created (and answered) only then, after a client
                           with a shorter deadline gave up; it shows up later in listings
                           and on the user channel
    trickle=S@P            answer, then send the body one byte every S seconds (each byte
                           resets a per-read timeout: only a total deadline ends the call);
                           the request itself is carried out at once
  example: --faults ws_drop=0.01,silence=3@0.002,rest_429=0.05,lose_order_response=0.1
  late POSTs and trickling answers: --faults late_order=25@0.05,trickle=2@0.01"""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Probabilities (and sizes) of the random faults; all zero means a healthy exchange."""

    ws_drop: float = 0.0
    ws_close_1001: float = 0.0
    seq_skip: float = 0.0
    seq_skip_count: int = 1
    silence: float = 0.0
    silence_s: float = 3.0
    malformed: float = 0.0
    rest_429: float = 0.0
    rest_500: float = 0.0
    rest_delay: float = 0.0
    rest_delay_s: float = 15.0
    lose_order_response: float = 0.0
    late_order: float = 0.0
    late_order_s: float = 25.0  # past the client's default 20 s total deadline
    trickle: float = 0.0
    trickle_s: float = 2.0  # seconds between two bytes of the answer

    @property
    def ws_active(self) -> bool:
        return any((self.ws_drop, self.ws_close_1001, self.seq_skip, self.silence, self.malformed))

    @property
    def rest_active(self) -> bool:
        return any(
            (
                self.rest_429,
                self.rest_500,
                self.rest_delay,
                self.lose_order_response,
                self.late_order,
                self.trickle,
            )
        )

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """Parse the ``--faults`` syntax; raise ``ValueError`` with a one-line reason."""
        plan = cls()
        seen: set[str] = set()
        for raw_item in text.split(","):
            item = raw_item.strip()
            if not item:
                continue
            name, equals, value = (part.strip() for part in item.partition("="))
            if not equals or not value:
                raise ValueError(f"fault {item!r}: expected NAME=P or NAME=AMOUNT@P")
            if name not in _FAULT_AMOUNTS:
                known = ", ".join(_FAULT_AMOUNTS)
                raise ValueError(f"fault {name!r} is unknown; known faults: {known}")
            if name in seen:
                raise ValueError(f"fault {name!r} is given twice")
            seen.add(name)
            amount_text, at, probability_text = value.rpartition("@")
            probability = _parse_probability(name, probability_text)
            changes: dict[str, float | int] = {name: probability}
            amount_field = _FAULT_AMOUNTS[name]
            if at:
                if amount_field is None:
                    raise ValueError(f"fault {name!r} takes no amount; write {name}=P")
                changes[amount_field] = _parse_amount(name, amount_text, amount_field)
            elif name in _NEEDS_DURATION:
                raise ValueError(f"fault {name!r} needs a duration; write {name}=SECONDS@P")
            plan = replace(plan, **changes)  # type: ignore[arg-type]
        return plan

    def describe(self) -> str:
        """The plan in the ``--faults`` syntax (only the faults that are on)."""
        items = []
        for name, amount_field in _FAULT_AMOUNTS.items():
            probability = getattr(self, name)
            if not probability:
                continue
            if amount_field is None:
                items.append(f"{name}={probability:g}")
            else:
                items.append(f"{name}={getattr(self, amount_field):g}@{probability:g}")
        return ",".join(items) or "none"


# Fault name -> the plan field holding its amount (None: the fault has no amount).
_FAULT_AMOUNTS: Final[dict[str, str | None]] = {
    "ws_drop": None,
    "ws_close_1001": None,
    "seq_skip": "seq_skip_count",
    "silence": "silence_s",
    "malformed": None,
    "rest_429": None,
    "rest_500": None,
    "rest_delay": "rest_delay_s",
    "lose_order_response": None,
    "late_order": "late_order_s",
    "trickle": "trickle_s",
}
# Faults whose duration has no sensible default: the plan must say it.
_NEEDS_DURATION: Final = frozenset({"silence", "rest_delay", "late_order", "trickle"})
assert set(_FAULT_AMOUNTS) | {f for f in _FAULT_AMOUNTS.values() if f} == {
    f.name for f in fields(FaultPlan)
}


def _parse_probability(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"fault {name!r}: probability {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fault {name!r}: probability {text} is not in [0, 1]")
    return value


def _parse_amount(name: str, text: str, amount_field: str) -> float | int:
    try:
        value: float | int = int(text) if amount_field == "seq_skip_count" else float(text)
    except ValueError:
        raise ValueError(f"fault {name!r}: amount {text!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"fault {name!r}: amount {text} must be positive")
    return value


class WsFaultKind(StrEnum):
    DROP = "ws_drop"
    CLOSE_1001 = "ws_close_1001"
    SKIP = "seq_skip"
    MALFORMED = "malformed"
    SILENCE = "silence"


@dataclass(frozen=True, slots=True)
class WsFault:
    kind: WsFaultKind
    skip: int = 0  # for SKIP: how many sequence numbers to leave out


class RestFaultKind(StrEnum):
    TOO_MANY_REQUESTS = "429"
    SERVER_ERROR = "500"
    DELAY = "delay"
    LOSE_ORDER_RESPONSE = "lose_order_response"
    LATE_ORDER = "late_order"
    TRICKLE = "trickle"


# Faults that wait for the next POST /orders, whatever other requests come first.
_ORDER_ONLY: Final = frozenset({RestFaultKind.LOSE_ORDER_RESPONSE, RestFaultKind.LATE_ORDER})


@dataclass(frozen=True, slots=True)
class RestFault:
    kind: RestFaultKind
    # DELAY and LATE_ORDER: how long the request is held; TRICKLE: seconds between bytes.
    delay_s: float = 0.0


class WsFaultTarget(Protocol):
    """The server's connections, as the one-shot WebSocket faults need them.

    Each call acts on every open connection and returns how many it touched.
    """

    def drop_websockets(self) -> int: ...

    def close_websockets(self, code: int) -> int: ...

    def skip_sequence(self, count: int) -> int: ...

    def send_malformed(self) -> int: ...


class FaultInjector:
    """Draws the plan's random faults and fires one-shot faults; counts what it injected."""

    def __init__(self, plan: FaultPlan | None, *, seed: int, clock: Clock) -> None:
        self._plan = plan or FaultPlan()
        self._clock = clock
        # Separate streams so WebSocket traffic volume does not change which request fails.
        self._ws_random = random.Random(f"{seed}:ws")
        self._rest_random = random.Random(f"{seed}:rest")
        self._target: WsFaultTarget | None = None
        self._silent_until = float("-inf")
        self._pending_rest: deque[RestFault] = deque()
        self._pending_order: deque[RestFault] = deque()
        self.injected: Counter[str] = Counter()
        self.trickled_bytes = 0  # bytes of trickled answers sent (the server counts them)

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        self._plan = plan

    def attach(self, target: WsFaultTarget) -> None:
        self._target = target

    # ----- one-shot faults (tests) -----

    def drop_websockets(self) -> int:
        """Drop every WebSocket connection now, without a close frame."""
        self.injected[WsFaultKind.DROP] += 1
        return self._target.drop_websockets() if self._target else 0

    def close_websockets(self, code: int = 1001) -> int:
        """Close every WebSocket connection now with ``code`` (1001 = Going Away)."""
        self.injected[f"close_{code}"] += 1
        return self._target.close_websockets(code) if self._target else 0

    def skip_sequence(self, count: int = 1) -> int:
        """On every connection, the next data message skips ``count`` sequence numbers."""
        if count < 1:
            raise ValueError("skip at least one sequence number")
        self.injected[WsFaultKind.SKIP] += 1
        return self._target.skip_sequence(count) if self._target else 0

    def send_malformed(self) -> int:
        """Send one frame that is not valid JSON on every connection."""
        self.injected[WsFaultKind.MALFORMED] += 1
        return self._target.send_malformed() if self._target else 0

    def silence(self, seconds: float) -> None:
        """Send nothing on any WebSocket for ``seconds`` (by the injected clock)."""
        if seconds <= 0:
            raise ValueError("silence must last a positive number of seconds")
        self.injected[WsFaultKind.SILENCE] += 1
        self._silent_until = max(self._silent_until, self._clock.monotonic() + seconds)

    def end_silence(self) -> None:
        self._silent_until = float("-inf")

    def next_rest(self, status: int | str, count: int = 1, *, delay_s: float | None = None) -> None:
        """Make the next ``count`` REST requests fail with ``status``.

        ``status`` is 429, 500, ``"delay"`` (answer after ``delay_s``, default the plan's
        ``rest_delay_s``), ``"trickle"`` (the answer one byte every ``delay_s``, default the
        plan's ``trickle_s``), or one that applies to the next POST /orders whatever other
        requests come first: ``"lose_order_response"``, ``"late_order"`` (the order created
        and answered ``delay_s`` late, default the plan's ``late_order_s``).
        """
        kind = RestFaultKind(str(status))
        if count < 1:
            raise ValueError("count must be at least 1")
        if delay_s is None:
            delay_s = {
                RestFaultKind.LATE_ORDER: self._plan.late_order_s,
                RestFaultKind.TRICKLE: self._plan.trickle_s,
            }.get(kind, self._plan.rest_delay_s)
        elif delay_s <= 0:
            raise ValueError("delay_s must be positive")
        fault = RestFault(kind, delay_s)
        queue = self._pending_order if kind in _ORDER_ONLY else self._pending_rest
        queue.extend([fault] * count)

    def clear(self) -> None:
        """Forget pending one-shot faults and end any silence."""
        self._pending_rest.clear()
        self._pending_order.clear()
        self.end_silence()

    # ----- what the server asks -----

    @property
    def is_silent(self) -> bool:
        return self._clock.monotonic() < self._silent_until

    @property
    def ws_active(self) -> bool:
        return self._plan.ws_active

    def ws_fault(self) -> WsFault | None:
        """Draw the random WebSocket fault (if any) for one message about to be sent."""
        plan = self._plan
        if not plan.ws_active:
            return None
        draw = self._ws_random.random
        fault: WsFault | None = None
        if plan.ws_drop and draw() < plan.ws_drop:
            fault = WsFault(WsFaultKind.DROP)
        elif plan.ws_close_1001 and draw() < plan.ws_close_1001:
            fault = WsFault(WsFaultKind.CLOSE_1001)
        elif plan.silence and draw() < plan.silence:
            self._silent_until = max(self._silent_until, self._clock.monotonic() + plan.silence_s)
            fault = WsFault(WsFaultKind.SILENCE)
        elif plan.seq_skip and draw() < plan.seq_skip:
            fault = WsFault(WsFaultKind.SKIP, skip=plan.seq_skip_count)
        elif plan.malformed and draw() < plan.malformed:
            fault = WsFault(WsFaultKind.MALFORMED)
        if fault is not None:
            self.injected[fault.kind] += 1
        return fault

    def rest_fault(self, *, is_order: bool) -> RestFault | None:
        """The fault (if any) for one REST request; ``is_order`` for POST /orders."""
        fault: RestFault | None = None
        if self._pending_rest:
            fault = self._pending_rest.popleft()
        elif is_order and self._pending_order:
            fault = self._pending_order.popleft()
        elif self._plan.rest_active:
            fault = self._draw_rest(is_order)
        if fault is not None:
            self.injected[f"rest_{fault.kind}"] += 1
        return fault

    def _draw_rest(self, is_order: bool) -> RestFault | None:
        plan = self._plan
        draw = self._rest_random.random
        if plan.rest_429 and draw() < plan.rest_429:
            return RestFault(RestFaultKind.TOO_MANY_REQUESTS)
        if plan.rest_500 and draw() < plan.rest_500:
            return RestFault(RestFaultKind.SERVER_ERROR)
        if plan.rest_delay and draw() < plan.rest_delay:
            return RestFault(RestFaultKind.DELAY, plan.rest_delay_s)
        if is_order and plan.lose_order_response and draw() < plan.lose_order_response:
            return RestFault(RestFaultKind.LOSE_ORDER_RESPONSE)
        # Drawn after the older faults, so a plan without these draws what it always drew.
        if is_order and plan.late_order and draw() < plan.late_order:
            return RestFault(RestFaultKind.LATE_ORDER, plan.late_order_s)
        if plan.trickle and draw() < plan.trickle:
            return RestFault(RestFaultKind.TRICKLE, plan.trickle_s)
        return None
