"""Fixtures for the Coinbase auth, rate limit and REST client unit tests.

The REST client talks to a ``ScriptedExchange`` through ``httpx.MockTransport``: each test
scripts the answers per (method, path) and then inspects the requests that were sent. Time is a
``ManualClock``; waiting is a ``FakeSleep`` that advances it, so nothing really sleeps.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from core.clock import ManualClock
from core.coinbase.auth import JwtSigner
from core.coinbase.rest import CoinbaseRestClient
from core.config import Credentials
from tests.core.coinbase.scripted import (
    BASE_URL,
    KEY_NAME,
    REST_HOST,
    ClientFactory,
    FakeSleep,
    KeyMaterial,
    ScriptedExchange,
    all_key_formats,
)


@pytest.fixture
def es256_key() -> KeyMaterial:
    """A fresh ECDSA P-256 key as a SEC1 PEM, with its public key for verification."""
    return all_key_formats()[0]


@pytest.fixture
def signer(clock: ManualClock, es256_key: KeyMaterial) -> JwtSigner:
    """A JwtSigner for ``es256_key`` under KEY_NAME, signing for api.coinbase.com."""
    return JwtSigner(Credentials(KEY_NAME, es256_key.private_key), clock, REST_HOST)


@pytest.fixture
def fake_sleep(clock: ManualClock) -> FakeSleep:
    """A FakeSleep on the test's manual clock (its ``delays`` lists every wait asked for)."""
    return FakeSleep(clock)


@pytest.fixture
def exchange(clock: ManualClock) -> ScriptedExchange:
    """An empty ScriptedExchange; script it with ``exchange.on(...)``."""
    return ScriptedExchange(clock)


@pytest.fixture
async def make_client(
    exchange: ScriptedExchange, signer: JwtSigner, clock: ManualClock, fake_sleep: FakeSleep
) -> AsyncIterator[ClientFactory]:
    """A factory of CoinbaseRestClients wired to ``exchange``, the manual clock, the fake
    sleep and a seeded RNG (keyword arguments override; ``signer=None`` for no key). Every
    client made is closed at teardown."""
    made: list[CoinbaseRestClient] = []

    def factory(**overrides: Any) -> CoinbaseRestClient:
        options: dict[str, Any] = {
            "base_url": BASE_URL,
            "signer": signer,
            "clock": clock,
            "transport": httpx.MockTransport(exchange),
            "sleep": fake_sleep,
            "rng": random.Random(1234),
        }
        options.update(overrides)
        client = CoinbaseRestClient(options.pop("base_url"), options.pop("signer"), **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


@pytest.fixture
def client(make_client: ClientFactory) -> CoinbaseRestClient:
    """A CoinbaseRestClient with the ES256 signer, on the scripted exchange."""
    return make_client()


@pytest.fixture
def caplog_rest(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog capturing everything the REST client logs (DEBUG and up)."""
    with caplog.at_level("DEBUG", logger="core.coinbase"):
        yield caplog
