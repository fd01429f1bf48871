"""JWT auth: key formats, token headers and claims, uri rules, expiry, bad keys."""

from __future__ import annotations

import base64
import re
import string

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.clock import ManualClock
from core.coinbase.auth import (
    JwtSigner,
    KeyFormatError,
    generate_demo_key,
    load_signing_key,
    rest_host_from_url,
)
from core.config import Credentials
from tests.core.coinbase.scripted import (
    KEY_NAME,
    REST_HOST,
    KeyMaterial,
    all_key_formats,
    decode_token,
)

KEY_FORMATS = all_key_formats()


@pytest.mark.parametrize("key", KEY_FORMATS, ids=[k.label for k in KEY_FORMATS])
def test_every_key_format_signs_tokens_the_public_key_verifies(
    key: KeyMaterial, clock: ManualClock
) -> None:
    assert load_signing_key(key.private_key).algorithm == key.algorithm
    signer = JwtSigner(Credentials(KEY_NAME, key.private_key), clock, REST_HOST)
    assert signer.algorithm == key.algorithm

    rest_claims = decode_token(signer.rest_token("GET", "/api/v3/brokerage/accounts"), key)
    ws_claims = decode_token(signer.ws_token(), key)

    assert rest_claims["uri"] == "GET api.coinbase.com/api/v3/brokerage/accounts"
    assert "uri" not in ws_claims
    assert rest_claims["sub"] == ws_claims["sub"] == KEY_NAME


def test_a_token_from_another_key_does_not_verify(clock: ManualClock) -> None:
    mine, other = KEY_FORMATS[0], all_key_formats()[0]
    signer = JwtSigner(Credentials(KEY_NAME, mine.private_key), clock, REST_HOST)
    with pytest.raises(jwt.InvalidSignatureError):
        decode_token(signer.ws_token(), other)


def test_header_fields(signer: JwtSigner) -> None:
    header = jwt.get_unverified_header(signer.rest_token("POST", "/api/v3/brokerage/orders"))
    assert header["alg"] == "ES256"
    assert header["kid"] == KEY_NAME
    assert header["typ"] == "JWT"
    assert re.fullmatch(r"[0-9a-f]{64}", header["nonce"])
    assert set(header) == {"alg", "kid", "typ", "nonce"}


def test_claims_follow_the_clock_and_live_120_seconds(
    signer: JwtSigner, clock: ManualClock, es256_key: KeyMaterial
) -> None:
    clock.advance(0.75)  # nbf is whole seconds, truncated
    claims = decode_token(signer.rest_token("POST", "/api/v3/brokerage/orders"), es256_key)
    assert claims == {
        "sub": KEY_NAME,
        "iss": "cdp",
        "nbf": int(clock.time()),
        "exp": int(clock.time()) + 120,
        "uri": "POST api.coinbase.com/api/v3/brokerage/orders",
    }
    # After 120 s the token is dead: a fresh one must be minted (the client does, per request).
    clock.advance(120)
    assert clock.time() >= claims["exp"]
    later = decode_token(signer.ws_token(), es256_key)
    assert later["nbf"] == claims["nbf"] + 120
    assert later["exp"] == later["nbf"] + 120


def test_uri_has_no_query_and_uppercase_method(signer: JwtSigner, es256_key: KeyMaterial) -> None:
    token = signer.rest_token(
        "get", "/api/v3/brokerage/orders/historical/batch?order_status=OPEN&product_ids=BTC-USD"
    )
    claims = decode_token(token, es256_key)
    assert claims["uri"] == "GET api.coinbase.com/api/v3/brokerage/orders/historical/batch"
    assert "https://" not in claims["uri"]


def test_path_must_be_absolute(signer: JwtSigner) -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        signer.rest_token("GET", "https://api.coinbase.com/api/v3/brokerage/accounts")


def test_every_token_is_fresh(signer: JwtSigner) -> None:
    tokens = [signer.rest_token("GET", "/api/v3/brokerage/accounts") for _ in range(50)]
    nonces = {jwt.get_unverified_header(token)["nonce"] for token in tokens}
    assert len(set(tokens)) == 50
    assert len(nonces) == 50


def test_clock_offset_moves_nbf_and_exp(
    signer: JwtSigner, clock: ManualClock, es256_key: KeyMaterial
) -> None:
    signer.clock_offset_s = 42.6
    claims = decode_token(signer.ws_token(), es256_key)
    assert claims["nbf"] == int(clock.time() + 42.6)
    assert claims["exp"] == claims["nbf"] + 120


def test_repr_hides_the_key(signer: JwtSigner, es256_key: KeyMaterial) -> None:
    text = repr(signer)
    assert "ES256" in text
    assert KEY_NAME not in text
    assert "BEGIN" not in text
    assert "BEGIN" not in repr(load_signing_key(es256_key.private_key))


def test_empty_key_name_is_refused(es256_key: KeyMaterial, clock: ManualClock) -> None:
    with pytest.raises(KeyFormatError, match="key name"):
        JwtSigner(Credentials("", es256_key.private_key), clock, REST_HOST)


# --------------------------------------------------------------------------- bad keys


def _pkcs8(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _bad_keys() -> list[tuple[str, str]]:
    ed = ed25519.Ed25519PrivateKey.generate()
    seed = ed.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    other_public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    p384 = ec.generate_private_key(ec.SECP384R1())
    sec1_p384 = p384.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    encrypted = ed.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter22"),
    ).decode()
    p256_pem = KEY_FORMATS[0].private_key
    public_pem = (
        ed.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return [
        ("not-base64", "this is not a key at all!"),
        ("base64-16-bytes", base64.b64encode(seed[:16]).decode()),
        ("base64-48-bytes", base64.b64encode(seed + seed[:16]).decode()),
        ("base64-64-wrong-public-half", base64.b64encode(seed + other_public).decode()),
        ("rsa-pkcs8", _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=1024))),
        ("ec-p384-sec1", sec1_p384),
        ("ec-p384-pkcs8", _pkcs8(p384)),
        ("encrypted-pkcs8", encrypted),
        ("truncated-pem", p256_pem[: len(p256_pem) // 2] + "\n-----END EC PRIVATE KEY-----\n"),
        ("public-key-pem", public_pem),
        ("empty", ""),
    ]


BAD_KEYS = _bad_keys()


def _secret_fragments(private_key: str) -> list[str]:
    """Runs of key body characters long enough that seeing one in a message is a leak."""
    body = "".join(
        line for line in private_key.replace("\\n", "\n").splitlines() if "-----" not in line
    )
    allowed = set(string.ascii_letters + string.digits + "+/=")
    compact = "".join(ch for ch in body if ch in allowed)
    return [compact[i : i + 12] for i in range(0, max(0, len(compact) - 12), 6)]


@pytest.mark.parametrize("private_key", [k for _, k in BAD_KEYS], ids=[n for n, _ in BAD_KEYS])
def test_bad_keys_raise_key_format_error_without_key_material(private_key: str) -> None:
    with pytest.raises(KeyFormatError) as caught:
        load_signing_key(private_key)
    message = str(caught.value)
    assert "accepted formats" in message
    assert isinstance(caught.value, ValueError)
    # No chained parser exception that could carry key bytes into a traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    for fragment in _secret_fragments(private_key):
        assert fragment not in message


def test_wrong_curve_message_names_the_curve() -> None:
    with pytest.raises(KeyFormatError, match="secp384r1"):
        load_signing_key(dict(BAD_KEYS)["ec-p384-sec1"])


# --------------------------------------------------------------------------- hosts and demo keys


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://api.coinbase.com", "api.coinbase.com"),
        ("https://api.coinbase.com/", "api.coinbase.com"),
        ("https://API.Coinbase.com:443", "api.coinbase.com"),
        ("http://127.0.0.1:8123", "127.0.0.1:8123"),
        ("https://127.0.0.1:8443/", "127.0.0.1:8443"),
        ("http://localhost:80", "localhost"),
        ("http://[::1]:9000", "[::1]:9000"),
    ],
)
def test_rest_host_from_url(url: str, host: str) -> None:
    assert rest_host_from_url(url) == host


@pytest.mark.parametrize("url", ["ftp://example.com", "api.coinbase.com", "http://host:99999"])
def test_rest_host_from_url_rejects_non_http(url: str) -> None:
    with pytest.raises(ValueError):
        rest_host_from_url(url)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_generate_demo_key(algorithm: str, clock: ManualClock) -> None:
    key_name, private_key, public_pem = generate_demo_key(algorithm)  # type: ignore[arg-type]
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.fullmatch(rf"organizations/{uuid}/apiKeys/{uuid}", key_name)
    if algorithm == "ES256":
        assert private_key.startswith("-----BEGIN EC PRIVATE KEY-----")
    else:
        assert len(base64.b64decode(private_key, validate=True)) == 64
    public_key = serialization.load_pem_public_key(public_pem.encode())
    signer = JwtSigner(Credentials(key_name, private_key), clock, "127.0.0.1:8123")
    assert signer.algorithm == algorithm
    claims = decode_token(
        signer.rest_token("GET", "/api/v3/brokerage/accounts"),
        KeyMaterial("demo", private_key, public_key, algorithm),
    )
    assert claims["uri"] == "GET 127.0.0.1:8123/api/v3/brokerage/accounts"
    assert claims["sub"] == key_name


def test_generate_demo_key_rejects_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="ES256"):
        generate_demo_key("RS256")  # type: ignore[arg-type]
