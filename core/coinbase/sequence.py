"""Integrity of one market-data connection: ``sequence_num`` and the heartbeat counter.

Coinbase numbers every message on a connection with ONE counter across all channels, starting
at 0 on each new connection (docs/coinbase-protocol.md §3.4). It is not per product: keeping it
per product (as cryptofeed does) flags false gaps. So there is one tracker per connection,
reset on every (re)connect.

Backwards is not a duplicate: on one connection the counter only grows, so a number below the
last one means the numbering started over (the server or a proxy in between opened a new
upstream stream) and everything after it is NEW data. Treating it as stale drops every real
update until the counter climbs back past the old value (hundreds of them) and leaves a book
that is silently wrong. Only a repeat of the last number is a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

_NO_BASELINE = -1  # sequence numbers are >= 0, so no message ever equals it


class SequenceVerdict(Enum):
    OK = "ok"
    # seq == last: the same message again. Ignore it.
    DUPLICATE_OR_STALE = "duplicate_or_stale"
    # seq < last: the numbering started over, a new stream. Resync everything derived from it.
    RESTARTED = "restarted"
    # seq > last + 1: messages were dropped. Everything derived from the connection is suspect.
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class SequenceGap:
    expected: int
    received: int

    @property
    def missing(self) -> int:
        return self.received - self.expected


class SequenceTracker:
    """Checks ``sequence_num`` (and the heartbeat counter) of one connection.

    Hot-path contract: ``seq == tracker.next_expected`` means ``observe(seq)`` would return OK;
    a caller may then set ``tracker.next_expected = seq + 1`` itself and skip the call (a Python
    call per message is a measurable share of the level2 budget). Anything else: ``observe``.
    """

    __slots__ = (
        "gaps",
        "heartbeat_jumps",
        "last_gap",
        "last_heartbeat",
        "last_restart",
        "next_expected",
        "restarts",
    )

    def __init__(self) -> None:
        self.next_expected = _NO_BASELINE
        self.last_gap: SequenceGap | None = None
        self.gaps = 0
        # (last accepted number, the smaller number that started the new stream)
        self.last_restart: tuple[int, int] | None = None
        self.restarts = 0
        self.last_heartbeat: int | None = None
        self.heartbeat_jumps = 0

    @property
    def last(self) -> int | None:
        """The last accepted sequence number (None before the first message)."""
        return None if self.next_expected == _NO_BASELINE else self.next_expected - 1

    def reset(self) -> None:
        """A new connection: both counters start over (the totals are kept)."""
        self.next_expected = _NO_BASELINE
        self.last_heartbeat = None

    def observe(self, seq: int) -> SequenceVerdict:
        expected = self.next_expected
        if seq == expected or expected == _NO_BASELINE:
            # The first message after a reset is the baseline (0 on a fresh socket; a replay
            # file may start anywhere).
            self.next_expected = seq + 1
            return SequenceVerdict.OK
        if seq == expected - 1:
            return SequenceVerdict.DUPLICATE_OR_STALE
        if seq < expected:
            self.last_restart = (expected - 1, seq)
            self.next_expected = seq + 1
            self.restarts += 1
            return SequenceVerdict.RESTARTED
        # Resume counting from here so one drop is reported once, not on every later message.
        self.last_gap = SequenceGap(expected=expected, received=seq)
        self.next_expected = seq + 1
        self.gaps += 1
        return SequenceVerdict.GAP

    def observe_heartbeat(self, counter: int) -> bool:
        """True if ``counter`` follows the previous heartbeat (or is the first one seen)."""
        previous = self.last_heartbeat
        self.last_heartbeat = counter
        if previous is None or counter == previous + 1:
            return True
        self.heartbeat_jumps += 1
        return False
