"""Fixtures every test package shares. Helpers live in helper modules (``tests/doubles/`` and
the packages' own modules), never here: a conftest is for fixtures only."""

from __future__ import annotations

import pytest

from core.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at 2026-01-01T00:00:00Z (wall) and 0 (monotonic) that moves only when a
    test advances it."""
    return ManualClock()
