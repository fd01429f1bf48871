"""Token bucket pacing on a manual clock with a fake sleep (no real waiting)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from core.clock import ManualClock
from core.coinbase.ratelimit import RestRateLimits, TokenBucket
from tests.core.coinbase.scripted import FakeSleep


async def test_burst_passes_at_once_then_waits_one_interval(
    clock: ManualClock, fake_sleep: FakeSleep
) -> None:
    bucket = TokenBucket(10, 3, clock, sleep=fake_sleep)
    for _ in range(3):
        await bucket.acquire()
    assert fake_sleep.delays == []
    await bucket.acquire()
    assert fake_sleep.delays == [pytest.approx(0.1)]
    assert clock.monotonic() == pytest.approx(0.1)


async def test_steady_rate_is_held(clock: ManualClock, fake_sleep: FakeSleep) -> None:
    bucket = TokenBucket(5, 1, clock, sleep=fake_sleep)
    times = []
    for _ in range(11):
        await bucket.acquire()
        times.append(clock.monotonic())
    # First is immediate, then one every 1/5 s: 10 intervals in 2 s.
    assert times[0] == 0
    assert times[-1] == pytest.approx(2.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap == pytest.approx(0.2) for gap in gaps)


async def test_idle_time_refills_only_up_to_burst(
    clock: ManualClock, fake_sleep: FakeSleep
) -> None:
    bucket = TokenBucket(10, 2, clock, sleep=fake_sleep)
    await bucket.acquire()
    await bucket.acquire()
    assert bucket.available() == pytest.approx(0)
    clock.advance(100)
    assert bucket.available() == pytest.approx(2)
    for _ in range(2):
        await bucket.acquire()
    assert fake_sleep.delays == []
    await bucket.acquire()
    assert len(fake_sleep.delays) == 1


async def test_concurrent_waiters_are_served_in_order_at_the_rate(clock: ManualClock) -> None:
    delays: list[float] = []

    async def yielding_sleep(seconds: float) -> None:
        delays.append(seconds)
        clock.advance(seconds)
        await asyncio.sleep(0)  # let the other waiters run, as a real sleep would

    bucket = TokenBucket(4, 1, clock, sleep=yielding_sleep)
    served: list[tuple[int, float]] = []

    async def worker(index: int) -> None:
        await bucket.acquire()
        served.append((index, clock.monotonic()))

    await asyncio.gather(*(worker(i) for i in range(6)))
    assert [index for index, _ in served] == list(range(6))
    assert [at for _, at in served] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.25])


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0.5)])
def test_invalid_parameters(rate: float, burst: float, clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, clock)


def test_rest_limits_defaults_stay_under_coinbase_ceilings(clock: ManualClock) -> None:
    limits = RestRateLimits.create(clock)
    assert limits.bucket(private=True) is limits.private
    assert limits.bucket(private=False) is limits.public
    assert limits.private.rate_per_s == 25
    assert limits.public.rate_per_s == 8
    # Worst case in any one second: a full burst plus a second of refill.
    assert limits.private.burst + limits.private.rate_per_s <= 30
    assert limits.public.burst + limits.public.rate_per_s <= 10
    slow = RestRateLimits.create(clock, private_rate_per_s=2, public_rate_per_s=1)
    assert slow.private.burst == 1
    assert slow.public.burst == 1


async def test_a_frozen_clock_cannot_stall_callers(clock: ManualClock) -> None:
    slept: list[float] = []

    async def real_time_sleep(seconds: float) -> None:  # time passes, the manual clock does not
        slept.append(seconds)

    bucket = TokenBucket(4, 1, clock, sleep=real_time_sleep)
    for _ in range(5):
        await bucket.acquire()
    assert slept == pytest.approx([0.25] * 4)
    assert clock.monotonic() == 0
