"""Client-side request pacing for the Coinbase REST API.

Coinbase allows about 30 private (per key) and 10 public (per IP) requests per second and
answers excess with 429s (sometimes disguised as 401s). Pacing ourselves below those ceilings
is cheaper than retrying. Time comes from the injected ``Clock`` and waiting from an injected
``sleep`` so tests run on a manual clock without real waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.clock import Clock

SleepFn = Callable[[float], Awaitable[None]]

# A bucket may hold this fraction of a second's worth of tokens. With burst = rate/5, any one
# second admits at most rate * 1.2 requests, so the default 25/s stays under the 30/s ceiling
# even when a burst lands at the start of the window.
BURST_FRACTION_OF_RATE = 0.2
_TOKEN_TOLERANCE = 1e-9


class TokenBucket:
    """A token bucket: ``acquire()`` returns when a token is available, waiters in FIFO order."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        clock: Clock,
        *,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._updated = clock.monotonic()
        # Held while a caller waits for its token, so callers are served in arrival order and
        # no two waiters compute the same refill.
        self._lock = asyncio.Lock()

    @property
    def rate_per_s(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def available(self) -> float:
        """Tokens available now (for display and tests)."""
        self._refill()
        return self._tokens

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            # The tolerance absorbs float rounding: without it a refill that lands at
            # 0.9999999999999998 asks for a sleep too short to move the clock, forever.
            while self._tokens < 1 - _TOKEN_TOLERANCE:
                wait = (1 - self._tokens) / self._rate
                before = self._clock.monotonic()
                await self._sleep(wait)
                self._refill()
                # Credit at least the time we slept: a clock that does not move (a ManualClock
                # shared with a simulator while real sleeps pass) must not stall callers forever.
                moved = self._clock.monotonic() - before
                if moved < wait:
                    self._tokens = min(self._burst, self._tokens + (wait - moved) * self._rate)
            self._tokens -= 1

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)


@dataclass(frozen=True, slots=True)
class RestRateLimits:
    """The two budgets Coinbase counts separately: authenticated and public endpoints."""

    private: TokenBucket
    public: TokenBucket

    @classmethod
    def create(
        cls,
        clock: Clock,
        *,
        private_rate_per_s: float = 25.0,
        public_rate_per_s: float = 8.0,
        sleep: SleepFn = asyncio.sleep,
    ) -> RestRateLimits:
        """Buckets at the given rates (``ExchangeSettings`` defaults), burst per the fraction."""
        return cls(
            private=TokenBucket(
                private_rate_per_s,
                max(1.0, private_rate_per_s * BURST_FRACTION_OF_RATE),
                clock,
                sleep=sleep,
            ),
            public=TokenBucket(
                public_rate_per_s,
                max(1.0, public_rate_per_s * BURST_FRACTION_OF_RATE),
                clock,
                sleep=sleep,
            ),
        )

    def bucket(self, *, private: bool) -> TokenBucket:
        return self.private if private else self.public
