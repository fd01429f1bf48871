"""The REST client's bounds against a real HTTP server on loopback (aiohttp).

A server that trickles its answer one byte at a time resets httpx's per-read timeout forever:
only the call's total deadline ends it. A server that streams an endless (or a declared huge)
body must be refused at the cap, not read into memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest
from aiohttp import web

from core.clock import SystemClock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.errors import ResponseTooLargeError, TransportError
from core.coinbase.rest import CoinbaseRestClient
from core.config import Credentials
from core.model import OrderSpec, OrderType, Side
from core.venue import OrderOutcomeUnknown
from tests.core.coinbase.scripted import KEY_NAME, KeyMaterial

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The test fails (instead of hanging) if a bound does not hold.
GUARD_S = 30.0


async def _serve(handler: Handler) -> AsyncIterator[str]:
    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", route)
    # Handlers that never finish are cut at cleanup instead of being waited for.
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class Trickle:
    """Answers 200 and then one byte every ``interval_s``, forever; counts the bytes sent."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.sent = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"{")
        while True:
            await asyncio.sleep(self.interval_s)
            await response.write(b" ")
            self.sent += 1


class Endless:
    """Answers 200 and streams 64 KiB chunks of JSON whitespace without end."""

    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * 65536
        while True:
            await response.write(chunk)
            self.sent += len(chunk)


async def _declared_huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "application/json", "Content-Length": str(10**12)}
    )
    await response.prepare(request)
    await response.write(b"{}")
    await asyncio.sleep(GUARD_S)
    return response


def _client(base_url: str, **options: float | int) -> CoinbaseRestClient:
    return CoinbaseRestClient(base_url, None, clock=SystemClock(), **options)  # type: ignore[arg-type]


async def test_a_trickling_server_fails_the_call_at_its_total_deadline() -> None:
    # Each byte arrives well inside the per-read timeout: only a total deadline can end this.
    trickle = Trickle(interval_s=0.05)
    async for url in _serve(trickle):
        async with _client(url, timeout_s=5.0, deadline_s=0.6, retry_attempts=3) as client:
            async with asyncio.timeout(GUARD_S):
                with pytest.raises(TransportError) as caught:
                    await client.get_server_time()
    assert caught.value.timed_out
    assert "deadline" in str(caught.value)
    assert trickle.sent > 0  # the server really was sending: a per-read timeout never fired


async def test_a_trickled_order_post_is_an_unknown_outcome_at_the_deadline(
    es256_key: KeyMaterial,
) -> None:
    trickle = Trickle(interval_s=0.05)
    async for url in _serve(trickle):
        clock = SystemClock()
        signer = JwtSigner(
            Credentials(KEY_NAME, es256_key.private_key), clock, rest_host_from_url(url)
        )
        client = CoinbaseRestClient(url, signer, clock=clock, timeout_s=5.0, deadline_s=0.5)
        async with client:
            spec = OrderSpec("BTC-USD", Side.BUY, OrderType.MARKET, quote_size=Decimal("10"))
            async with asyncio.timeout(GUARD_S):
                outcome = await client.create_order(spec, "trickled-order-1")
    # The order may exist: an unknown outcome (reconciled later), never a rejection.
    assert isinstance(outcome, OrderOutcomeUnknown)
    assert "deadline" in outcome.reason


async def test_an_endless_body_is_refused_at_the_cap() -> None:
    endless = Endless()
    cap = 1024 * 1024
    async for url in _serve(endless):
        async with _client(url, deadline_s=GUARD_S, max_response_bytes=cap) as client:
            async with asyncio.timeout(GUARD_S):
                with pytest.raises(ResponseTooLargeError) as caught:
                    await client.get_server_time()
    assert str(cap) in str(caught.value)
    assert "refused" in str(caught.value)


async def test_a_declared_huge_body_is_refused_before_reading_it() -> None:
    async for url in _serve(_declared_huge):
        async with _client(url, deadline_s=GUARD_S, max_response_bytes=65536) as client:
            async with asyncio.timeout(GUARD_S):
                with pytest.raises(ResponseTooLargeError, match="1000000000000 bytes"):
                    await client.get_server_time()


async def test_a_too_large_answer_is_not_retried() -> None:
    calls = 0

    async def huge(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(body=b" " * 200_000, content_type="application/json")

    async for url in _serve(huge):
        async with _client(url, max_response_bytes=65536, retry_attempts=3) as client:
            with pytest.raises(ResponseTooLargeError):
                await client.get_server_time()
    assert calls == 1


async def test_an_answer_under_the_cap_is_read() -> None:
    async def time(request: web.Request) -> web.Response:
        return web.json_response({"iso": "2024-01-01T00:00:00Z", "epochSeconds": "1704067200"})

    async for url in _serve(time):
        async with _client(url, max_response_bytes=65536, deadline_s=GUARD_S) as client:
            server_time = await client.get_server_time()
    assert server_time.epoch_seconds == 1704067200


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        _client("http://127.0.0.1:1", deadline_s=0)
    with pytest.raises(ValueError):
        _client("http://127.0.0.1:1", max_response_bytes=0)
