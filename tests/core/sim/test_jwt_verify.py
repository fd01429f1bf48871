"""JWT verification of the simulated exchange, against tokens built like Coinbase's SDK does."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import jwt
import pytest
from coinbase import jwt_generator
from cryptography.hazmat.primitives import serialization

from core.clock import ManualClock, SystemClock
from core.sim.jwt_verify import DemoKey, JwtVerifier

HOST = "127.0.0.1:8443"
PATH = "/api/v3/brokerage/accounts"
URI = f"GET {HOST}{PATH}"


def _token(key: DemoKey, clock: ManualClock, uri: str | None = URI, **changes: Any) -> str:
    if key.algorithm == "ES256":
        private: Any = serialization.load_pem_private_key(key.private_key.encode(), None)
    else:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        private = ed25519.Ed25519PrivateKey.from_private_bytes(
            base64.b64decode(key.private_key)[:32]
        )
    now = int(clock.time())
    claims: dict[str, Any] = {"sub": key.key_name, "iss": "cdp", "nbf": now, "exp": now + 120}
    if uri is not None:
        claims["uri"] = uri
    headers: dict[str, Any] = {"kid": key.key_name, "nonce": uuid.uuid4().hex}
    headers.update(changes.pop("headers", {}))
    claims.update(changes)
    for name in [n for n, v in claims.items() if v is None]:
        del claims[name]
    return jwt.encode(claims, private, algorithm=key.algorithm, headers=headers)


@pytest.fixture(params=["ES256", "EdDSA"])
def key(request: pytest.FixtureRequest) -> DemoKey:
    """The demo key of seed 1, once per algorithm."""
    return DemoKey.derive(1, request.param)


@pytest.fixture
def verifier(key: DemoKey, clock: ManualClock) -> JwtVerifier:
    """A verifier that knows ``key`` as user ``demo``."""
    verifier = JwtVerifier(clock, leeway_s=5)
    verifier.register(key, "demo")
    return verifier


def test_demo_key_is_deterministic_and_in_portal_form() -> None:
    assert DemoKey.derive(3).key_name == DemoKey.derive(3).key_name
    assert DemoKey.derive(3).private_key == DemoKey.derive(3).private_key
    assert DemoKey.derive(3).key_name != DemoKey.derive(4).key_name
    es = DemoKey.derive(3, "ES256")
    assert es.private_key.startswith("-----BEGIN EC PRIVATE KEY-----")
    assert es.key_name.startswith("organizations/cryptoj-sim/apiKeys/")
    ed = DemoKey.derive(3, "EdDSA")
    assert len(base64.b64decode(ed.private_key)) == 64
    assert "PRIVATE" not in repr(es) and es.private_key not in repr(es)
    assert es.credentials.key_name == es.key_name


def test_valid_token(verifier: JwtVerifier, key: DemoKey, clock: ManualClock) -> None:
    assert verifier.verify_rest(_token(key, clock), "GET", HOST, PATH) == "demo"
    assert verifier.verify_rest(_token(key, clock), "get", HOST, PATH) == "demo"
    assert verifier.verify_ws(_token(key, clock, uri=None)) == "demo"


def test_window_with_leeway(verifier: JwtVerifier, key: DemoKey, clock: ManualClock) -> None:
    token = _token(key, clock)
    clock.advance(124)
    assert verifier.verify_rest(token, "GET", HOST, PATH) == "demo", "exp + leeway"
    clock.advance(2)
    assert verifier.verify_rest(token, "GET", HOST, PATH) is None, "expired"
    early = _token(key, clock, nbf=int(clock.time()) + 4, exp=int(clock.time()) + 120)
    assert verifier.verify_rest(early, "GET", HOST, PATH) == "demo", "nbf - leeway"
    future = _token(key, clock, nbf=int(clock.time()) + 10, exp=int(clock.time()) + 120)
    assert verifier.verify_rest(future, "GET", HOST, PATH) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "coinbase-cloud"},
        {"sub": "other"},
        {"nbf": None},
        {"exp": None},
        {"nbf": "soon"},
        {"exp": 10**12},
        {"headers": {"kid": "unknown"}},
    ],
)
def test_bad_claims(
    verifier: JwtVerifier, key: DemoKey, clock: ManualClock, changes: dict[str, Any]
) -> None:
    assert verifier.verify_rest(_token(key, clock, **changes), "GET", HOST, PATH) is None


@pytest.mark.parametrize(
    ("method", "host", "path"),
    [
        ("POST", HOST, PATH),
        ("GET", "api.coinbase.com", PATH),
        ("GET", HOST, "/api/v3/brokerage/products"),
        ("GET", HOST, PATH + "?limit=1"),
    ],
)
def test_uri_must_match_the_request(
    verifier: JwtVerifier, key: DemoKey, clock: ManualClock, method: str, host: str, path: str
) -> None:
    assert verifier.verify_rest(_token(key, clock), method, host, path) is None


def test_uri_with_query_or_scheme_is_refused(
    verifier: JwtVerifier, key: DemoKey, clock: ManualClock
) -> None:
    for uri in (f"GET {HOST}{PATH}?limit=1", f"GET https://{HOST}{PATH}", None):
        assert verifier.verify_rest(_token(key, clock, uri=uri), "GET", HOST, PATH) is None


def test_forged_and_garbage_tokens(verifier: JwtVerifier, key: DemoKey, clock: ManualClock) -> None:
    other = DemoKey.derive(2, key.algorithm)
    forged = _token(other, clock, sub=key.key_name, headers={"kid": key.key_name})
    assert verifier.verify_rest(forged, "GET", HOST, PATH) is None
    assert verifier.verify_rest("a.b.c", "GET", HOST, PATH) is None
    assert verifier.verify_ws(None) is None
    assert verifier.verify_ws(12) is None
    unsigned = jwt.encode(
        {"sub": key.key_name, "iss": "cdp", "nbf": 0, "exp": 10**10},
        key=None,
        algorithm="none",
        headers={"kid": key.key_name},
    )
    assert verifier.verify_ws(unsigned) is None
    # Right key, wrong algorithm in the header: refused before any signature check.
    swapped = jwt.encode(
        {"sub": key.key_name, "iss": "cdp", "nbf": 0, "exp": 10**10},
        "a shared secret that is long enough for HS256",
        algorithm="HS256",
        headers={"kid": key.key_name},
    )
    assert verifier.verify_ws(swapped) is None


def test_tokens_from_the_official_sdk(key: DemoKey) -> None:
    verifier = JwtVerifier(SystemClock())
    verifier.register(key, "demo")
    rest = jwt_generator.build_rest_jwt(URI, key.key_name, key.private_key)
    assert verifier.verify_rest(rest, "GET", HOST, PATH) == "demo"
    ws = jwt_generator.build_ws_jwt(key.key_name, key.private_key)
    assert verifier.verify_ws(ws) == "demo"
    assert set(verifier.keys) == {key.key_name}
