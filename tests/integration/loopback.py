"""Helpers and fixtures that run the simulated exchange in-process on 127.0.0.1:0 and talk to it over
real loopback sockets (httpx for REST, websockets for WS).

The exchange is seeded and its book is made by a market-maker user placing a fixed ladder of
resting limit orders, so every test starts from the same book without the market agents.
The server runs on a ``ManualClock``: timestamps and JWT windows are deterministic, the
market loop steps nothing on its own, and silence faults end when the test advances time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import jwt
import orjson
import pytest
import websockets
from cryptography.hazmat.primitives import serialization

from core.clock import Clock, ManualClock
from core.config import Credentials
from core.model import Side
from core.sim.exchange import SimExchange
from core.sim.runner import build_exchange
from core.sim.server import API_PREFIX, SimEndpoints, SimServer
from core.sim.types import SimOrderRequest

SEED = 42
MAKER_USER = "market-maker"
# (product, best bid, best ask, tick step between levels, size per level)
LADDERS = (
    ("BTC-USD", Decimal("67990.00"), Decimal("68010.00"), Decimal("10.00"), Decimal("0.5")),
    ("ETH-USD", Decimal("3499.00"), Decimal("3501.00"), Decimal("1.00"), Decimal("5")),
    ("SOL-USD", Decimal("149.90"), Decimal("150.10"), Decimal("0.10"), Decimal("50")),
)
LEVELS_PER_SIDE = 10


def seed_liquidity(exchange: SimExchange) -> None:
    """Rest ``LEVELS_PER_SIDE`` bid and ask levels per product for the market maker."""
    exchange.open_account(
        MAKER_USER,
        {
            "USD": Decimal(10**9),
            "BTC": Decimal(10**4),
            "ETH": Decimal(10**5),
            "SOL": Decimal(10**7),
        },
    )
    for product_id, bid, ask, step, size in LADDERS:
        for level in range(LEVELS_PER_SIDE):
            for side, price in ((Side.BUY, bid - step * level), (Side.SELL, ask + step * level)):
                result = exchange.create_order(
                    MAKER_USER,
                    SimOrderRequest(
                        client_order_id=f"mm-{product_id}-{side}-{level}",
                        product_id=product_id,
                        side=side,
                        config_kind="limit_limit_gtc",
                        base_size=size,
                        limit_price=price,
                    ),
                )
                assert result.success, result


def make_jwt(
    credentials: Credentials,
    clock: Clock,
    uri: str | None = None,
    *,
    lifetime_s: int = 120,
    not_before_offset_s: float = 0,
    claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """A CDP JWT signed with ``credentials`` the way Coinbase's SDK builds it."""
    secret = credentials.private_key
    if secret.startswith("-----BEGIN"):
        key: Any = serialization.load_pem_private_key(secret.encode(), password=None)
        algorithm = "ES256"
    else:
        import base64

        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(secret)[:32])
        algorithm = "EdDSA"
    now = int(clock.time() + not_before_offset_s)
    payload: dict[str, Any] = {
        "sub": credentials.key_name,
        "iss": "cdp",
        "nbf": now,
        "exp": now + lifetime_s,
    }
    if uri is not None:
        payload["uri"] = uri
    payload.update(claims or {})
    header = {"kid": credentials.key_name, "nonce": uuid.uuid4().hex, **(headers or {})}
    return jwt.encode(payload, key, algorithm=algorithm, headers=header)


class RestClient:
    """httpx against the sim, signing each request with a fresh JWT for its method + path."""

    def __init__(self, client: httpx.AsyncClient, endpoints: SimEndpoints, clock: Clock) -> None:
        self.http = client
        self.endpoints = endpoints
        self.clock = clock

    def auth(self, method: str, path: str) -> dict[str, str]:
        uri = f"{method} {self.endpoints.rest_host}{API_PREFIX}{path}"
        return {"Authorization": f"Bearer {make_jwt(self.endpoints.credentials, self.clock, uri)}"}

    async def get(self, path: str, params: Any = None, *, auth: bool = True) -> httpx.Response:
        headers = self.auth("GET", path) if auth else {}
        return await self.http.get(API_PREFIX + path, params=params, headers=headers)

    async def post(self, path: str, body: Any, *, auth: bool = True) -> httpx.Response:
        headers = self.auth("POST", path) if auth else {}
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        headers["Content-Type"] = "application/json"
        return await self.http.post(API_PREFIX + path, content=content, headers=headers)

    async def create_order(
        self, product_id: str, side: str, configuration: dict[str, Any], client_order_id: str = ""
    ) -> httpx.Response:
        body = {
            "client_order_id": client_order_id or str(uuid.uuid4()),
            "product_id": product_id,
            "side": side,
            "order_configuration": configuration,
        }
        return await self.post("/orders", body)


class WsClient:
    """A websockets connection with JSON helpers that never wait forever."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    async def recv(self, wait_s: float = 5.0) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.connection.recv(), wait_s)
        decoded: dict[str, Any] = orjson.loads(frame)
        return decoded

    async def recv_until(
        self, predicate: Callable[[dict[str, Any]], bool], wait_s: float = 5.0
    ) -> dict[str, Any]:
        """The first message matching ``predicate`` (earlier ones are dropped)."""
        async with asyncio.timeout(wait_s):
            while True:
                message = await self.recv(wait_s)
                if predicate(message):
                    return message

    async def subscribe(
        self, channel: str, product_ids: list[str] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """Subscribe and return the ``subscriptions`` ack."""
        message: dict[str, Any] = {
            "type": "subscribe",
            "channel": channel,
            "product_ids": product_ids or [],
        }
        if token is not None:
            message["jwt"] = token
        await self.send(message)
        return await self.recv_until(lambda m: m.get("channel") == "subscriptions")


@pytest.fixture
def sim_clock() -> ManualClock:
    """The simulated exchange's clock: a ManualClock at 2026-01-01T00:00:00Z."""
    return ManualClock()


@pytest.fixture
def sim_exchange(sim_clock: ManualClock) -> SimExchange:
    """A seeded SimExchange with the demo user's account and a fixed market-maker ladder."""
    exchange = build_exchange(SEED, sim_clock)
    seed_liquidity(exchange)
    return exchange


@pytest.fixture
def server_options() -> dict[str, Any]:
    """Extra SimServer keyword arguments; override in a module to change them (e.g. tls)."""
    return {}


@pytest.fixture
async def sim_server(
    sim_exchange: SimExchange, sim_clock: ManualClock, server_options: dict[str, Any]
) -> AsyncIterator[SimServer]:
    """A started SimServer on 127.0.0.1:<free port> (no market agents; fast timeouts)."""
    options: dict[str, Any] = {
        "seed": SEED,
        "subscribe_timeout_s": 0.5,
        "heartbeat_interval_s": 0.1,
        **server_options,
    }
    server = SimServer(sim_exchange, None, clock=sim_clock, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def endpoints(sim_server: SimServer) -> SimEndpoints:
    """The running server's URLs and demo credentials."""
    assert sim_server.endpoints is not None
    return sim_server.endpoints


@pytest.fixture
async def rest(endpoints: SimEndpoints, sim_clock: ManualClock) -> AsyncIterator[RestClient]:
    """A REST client that signs every request with the demo key."""
    verify: Any = True
    if endpoints.ca_cert_path is not None:
        verify = str(endpoints.ca_cert_path)
    async with httpx.AsyncClient(base_url=endpoints.rest_url, timeout=10, verify=verify) as client:
        yield RestClient(client, endpoints, sim_clock)


@pytest.fixture
def ws_connect(
    endpoints: SimEndpoints,
) -> Callable[..., Any]:
    """``async with ws_connect(user=False) as ws``: a WsClient on the market (or user) URL."""
    import contextlib

    @contextlib.asynccontextmanager
    async def connect(*, user: bool = False) -> AsyncIterator[WsClient]:
        url = endpoints.ws_user_url if user else endpoints.ws_market_url
        async with websockets.connect(url, max_size=None, open_timeout=5) as connection:
            yield WsClient(connection)

    return connect
