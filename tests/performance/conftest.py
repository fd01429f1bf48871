"""Fixtures for the performance benchmarks: seeded recordings, generated once per session."""

from __future__ import annotations

import pytest

from core.synthetic_l2 import SyntheticL2Config, generate_l2_lines

# Small enough that the default run (benchmarks disabled: each executes once) stays fast;
# the full 200k-message comparison is scripts/compare_book.py.
BENCH_MESSAGES = 20_000


@pytest.fixture(scope="session")
def l2_recording_lines() -> list[bytes]:
    """A seeded BTC-USD level2 recording (1,000 levels a side, 20,000 update messages, 1-8
    level updates each, heartbeats interleaved) as raw frames in memory."""
    return generate_l2_lines(SyntheticL2Config(messages=BENCH_MESSAGES, seed=1))
