"""Tests for core.bad_input.BadInputCounter: count always, log once per kind per interval."""

from __future__ import annotations

import logging

import pytest

from core.bad_input import BadInputCounter
from core.clock import ManualClock


@pytest.fixture
def counter(clock: ManualClock) -> BadInputCounter:
    """A counter on the manual clock, logging to the 'test.bad_input' logger every 60 s."""
    return BadInputCounter(clock, logging.getLogger("test.bad_input"), log_interval_s=60.0)


def test_counts_every_occurrence_per_kind(counter: BadInputCounter) -> None:
    counter.record("malformed_json", "a")
    counter.record("malformed_json", "b")
    counter.record("unknown_channel", "status")
    assert counter.count("malformed_json") == 2
    assert counter.count("unknown_channel") == 1
    assert counter.count("never") == 0
    assert counter.total == 3
    assert counter.counts() == {"malformed_json": 2, "unknown_channel": 1}


def test_counts_returns_a_copy(counter: BadInputCounter) -> None:
    counter.record("x", "d")
    counts = counter.counts()
    counts["x"] = 99
    assert counter.count("x") == 1


def test_logs_at_most_once_per_kind_per_interval(
    counter: BadInputCounter, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="test.bad_input")
    for _ in range(100):
        counter.record("malformed_json", "garbage")
    counter.record("bad_side", "side 'up'")
    assert len(caplog.records) == 2
    assert "malformed_json" in caplog.records[0].getMessage()
    assert "bad_side" in caplog.records[1].getMessage()

    clock.advance(59.0)
    counter.record("malformed_json", "garbage")
    assert len(caplog.records) == 2

    clock.advance(1.5)
    counter.record("malformed_json", "more garbage")
    assert len(caplog.records) == 3
    # The line says how many were swallowed since the previous one (99 + 1).
    assert "100 more" in caplog.records[2].getMessage()
    assert counter.count("malformed_json") == 102
