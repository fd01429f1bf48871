"""Helpers for the Coinbase auth, rate limit and REST client unit tests: keys in every accepted
format, a ``ScriptedExchange`` behind ``httpx.MockTransport`` that answers from a script and
records what was sent, and a ``FakeSleep`` that advances the manual clock instead of waiting.
The fixtures built on them are in this package's conftest."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from core.clock import ManualClock
from core.coinbase.rest import CoinbaseRestClient

KEY_NAME = "organizations/0f6b6b2e-7d1e-4a1c-9a52-5b0d3c1f2a10/apiKeys/6c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"


BASE_URL = "https://api.coinbase.com"


REST_HOST = "api.coinbase.com"


PREFIX = "/api/v3/brokerage"


Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True)
class KeyMaterial:
    """A private key in one wire format, with what is needed to verify its tokens."""

    label: str
    private_key: str
    public_key: Any
    algorithm: str


def _pem(key: Any, private_format: serialization.PrivateFormat) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    ).decode()


def _ed25519_raw(key: ed25519.Ed25519PrivateKey) -> tuple[bytes, bytes]:
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return seed, public


def all_key_formats() -> list[KeyMaterial]:
    """One key per accepted format (fresh keys; verification uses their public halves)."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    seed, public = _ed25519_raw(ed_key)
    sec1 = _pem(ec_key, serialization.PrivateFormat.TraditionalOpenSSL)
    return [
        KeyMaterial("sec1-pem", sec1, ec_key.public_key(), "ES256"),
        KeyMaterial(
            "pkcs8-pem-ec",
            _pem(ec_key, serialization.PrivateFormat.PKCS8),
            ec_key.public_key(),
            "ES256",
        ),
        KeyMaterial(
            "pkcs8-pem-ed25519",
            _pem(ed_key, serialization.PrivateFormat.PKCS8),
            ed_key.public_key(),
            "EdDSA",
        ),
        KeyMaterial("base64-32", base64.b64encode(seed).decode(), ed_key.public_key(), "EdDSA"),
        KeyMaterial(
            "base64-64", base64.b64encode(seed + public).decode(), ed_key.public_key(), "EdDSA"
        ),
        KeyMaterial(
            "one-line-pem-literal-backslash-n",
            sec1.strip().replace("\n", "\\n"),
            ec_key.public_key(),
            "ES256",
        ),
        KeyMaterial(
            "base64-64-wrapped-with-whitespace",
            "  " + base64.encodebytes(seed + public).decode() + "\n",
            ed_key.public_key(),
            "EdDSA",
        ),
    ]


def decode_token(token: str, key: KeyMaterial) -> dict[str, Any]:
    """Verify a token's signature with the PUBLIC key and return its claims.

    Time claims are checked by the tests themselves against the manual clock (PyJWT would
    compare them with the real time), but they must be present.
    """
    return jwt.decode(
        token,
        key.public_key,
        algorithms=[key.algorithm],
        options={"verify_exp": False, "verify_nbf": False, "require": ["exp", "nbf", "sub"]},
    )


class FakeSleep:
    """An awaitable sleep that advances the manual clock instead of waiting, and records."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


def json_response(
    status: int, payload: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status,
        content=orjson.dumps(payload),
        headers={"content-type": "application/json", **(headers or {})},
    )


@dataclass
class RecordedRequest:
    """What the client sent, plus the manual clock's monotonic time when it arrived."""

    request: httpx.Request
    at: float

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        return self.request.url.path

    def query(self, name: str) -> list[str]:
        return self.request.url.params.get_list(name)

    def json(self) -> Any:
        return orjson.loads(self.request.content)

    @property
    def token(self) -> str | None:
        header = self.request.headers.get("authorization")
        if header is None:
            return None
        assert header.startswith("Bearer ")
        return header.removeprefix("Bearer ")


@dataclass
class ScriptedExchange:
    """An httpx handler answering from a per-(method, path) script, recording every request.

    ``on(method, path, *replies)`` queues replies (a Response, an exception to raise, or a
    callable taking the request); the last reply of a route is repeated once the queue is
    down to one. An unscripted route answers 599 so a test fails loudly.
    """

    clock: ManualClock
    requests: list[RecordedRequest] = field(default_factory=list)
    _routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self._routes.setdefault((method, PREFIX + path), []).extend(replies)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(RecordedRequest(request, self.clock.monotonic()))
        queue = self._routes.get((request.method, request.url.path))
        if not queue:
            return httpx.Response(599, text=f"unscripted {request.method} {request.url.path}")
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    def sent(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == PREFIX + path]


ClientFactory = Callable[..., CoinbaseRestClient]
