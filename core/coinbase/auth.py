"""CDP API key loading and the JWTs that authenticate REST requests and WS subscriptions.

Coinbase Advanced Trade authenticates with a short-lived JWT signed by the key's private key
(docs/coinbase-protocol.md §1): ES256 for ECDSA P-256 keys, EdDSA for Ed25519 keys. A REST token is
bound to one request (``uri`` claim = method, host and path, no scheme, no query); a WebSocket
token has no ``uri``. Tokens live 120 s and carry a random nonce, so one is minted per request.

Key material never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from core.clock import Clock
from core.config import Credentials

Algorithm = Literal["ES256", "EdDSA"]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

TOKEN_LIFETIME_S = 120
ISSUER = "cdp"
COINBASE_REST_HOST = "api.coinbase.com"

_SEC1_PEM_HEADER = "-----BEGIN EC PRIVATE KEY-----"
_PKCS8_PEM_HEADER = "-----BEGIN PRIVATE KEY-----"
_ACCEPTED_FORMATS = (
    "accepted formats: an ECDSA P-256 key as PEM ('-----BEGIN EC PRIVATE KEY-----' or "
    "'-----BEGIN PRIVATE KEY-----'), an Ed25519 key as PKCS#8 PEM ('-----BEGIN PRIVATE "
    "KEY-----'), or an Ed25519 key as base64 of 32 or 64 bytes (the portal's format)"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class KeyFormatError(ValueError):
    """The private key matches no accepted format. The message never contains key material."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A loaded private key and the JWT algorithm it signs with."""

    private_key: PrivateKey = field(repr=False)
    algorithm: Algorithm


def load_signing_key(private_key: str) -> SigningKey:
    """Load a CDP private key, detecting its format (see ``KeyFormatError`` for the list)."""
    text = _unescape_newlines(private_key).strip()
    if "-----BEGIN" in text:
        return _load_pem(text)
    return _load_ed25519_base64(text)


def _unescape_newlines(text: str) -> str:
    # .env files and one-line environment variables often carry a PEM with literal "\n"
    # sequences; the official SDK runs the secret through unicode_escape for the same reason.
    # Replacing only the newline escapes cannot corrupt anything else in the key.
    return text.replace("\\r\\n", "\n").replace("\\n", "\n")


def _load_pem(text: str) -> SigningKey:
    if _SEC1_PEM_HEADER not in text and _PKCS8_PEM_HEADER not in text:
        raise KeyFormatError(f"unsupported PEM block in the private key; {_ACCEPTED_FORMATS}")
    try:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
        # ``from None``: the parser's own exception must not drag the key into a traceback.
        raise KeyFormatError(
            f"the private key looks like PEM but cannot be parsed (damaged, encrypted or "
            f"truncated?); {_ACCEPTED_FORMATS}"
        ) from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SigningKey(key, "EdDSA")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyFormatError(
                f"the EC private key is on curve {key.curve.name}, but Coinbase signs with "
                f"ES256, which needs P-256 (secp256r1); {_ACCEPTED_FORMATS}"
            )
        return SigningKey(key, "ES256")
    raise KeyFormatError(
        f"the private key is a {type(key).__name__.removeprefix('_')}, which Coinbase does "
        f"not accept; {_ACCEPTED_FORMATS}"
    )


def _load_ed25519_base64(text: str) -> SigningKey:
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(
            f"the private key is neither PEM nor base64; {_ACCEPTED_FORMATS}"
        ) from None
    if len(raw) not in (32, 64):
        raise KeyFormatError(
            f"the base64 private key decodes to {len(raw)} bytes, an Ed25519 key has 32 "
            f"(seed) or 64 (seed and public key); {_ACCEPTED_FORMATS}"
        )
    key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64:
        # The portal's 64-byte form is seed || public key: a mismatch means the string was
        # damaged (or two keys were mixed up) and every token would be refused with a 401.
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        if public != raw[32:]:
            raise KeyFormatError(
                "the 64-byte Ed25519 key's second half is not the public key of its first "
                f"half (damaged key?); {_ACCEPTED_FORMATS}"
            )
    return SigningKey(key, "EdDSA")


def rest_host_from_url(base_url: str) -> str:
    """The host[:port] that goes into a REST token's ``uri`` claim for this base URL.

    ``https://api.coinbase.com`` -> ``api.coinbase.com``; ``http://127.0.0.1:8123`` ->
    ``127.0.0.1:8123``. A port equal to the scheme's default is dropped, because HTTP clients
    drop it from the Host header too, and servers check the claim against that header.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) base URL: {base_url!r}")
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal keeps its brackets, as in the Host header
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in base URL {base_url!r}") from None
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return host
    return f"{host}:{port}"


class JwtSigner:
    """Mints a fresh JWT per REST request or WS subscribe message for one CDP key."""

    def __init__(self, credentials: Credentials, clock: Clock, rest_host: str) -> None:
        if not credentials.key_name:
            raise KeyFormatError("the API key name is empty")
        self._key_name = credentials.key_name
        self._key = load_signing_key(credentials.private_key)
        self._clock = clock
        self._rest_host = rest_host
        # Seconds to add to the local clock so nbf/exp follow the exchange's clock (measured
        # from GET /time). A skew of a minute or more otherwise yields 401s.
        self.clock_offset_s = 0.0

    @property
    def algorithm(self) -> Algorithm:
        return self._key.algorithm

    @property
    def rest_host(self) -> str:
        return self._rest_host

    def rest_token(self, method: str, path: str) -> str:
        """A token for one REST request: ``uri`` = "METHOD host/path", never scheme or query."""
        bare_path = path.split("?", 1)[0]
        if not bare_path.startswith("/"):
            raise ValueError(f"path must start with '/', got {bare_path!r}")
        return self._token(f"{method.upper()} {self._rest_host}{bare_path}")

    def ws_token(self) -> str:
        """A token for one WebSocket subscribe/unsubscribe message (no ``uri`` claim)."""
        return self._token(None)

    def _token(self, uri: str | None) -> str:
        now = int(self._clock.time() + self.clock_offset_s)
        claims: dict[str, object] = {
            "sub": self._key_name,
            "iss": ISSUER,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
        }
        if uri is not None:
            claims["uri"] = uri
        return jwt.encode(
            claims,
            self._key.private_key,
            algorithm=self._key.algorithm,
            headers={"kid": self._key_name, "nonce": secrets.token_hex()},
        )

    def __repr__(self) -> str:
        return f"JwtSigner(algorithm={self.algorithm!r}, rest_host={self._rest_host!r})"


def generate_demo_key(algorithm: Algorithm = "ES256") -> tuple[str, str, str]:
    """A fresh key for the simulated exchange: ``(key_name, private_key, public_key_pem)``.

    The key name has the portal's ``organizations/{uuid}/apiKeys/{uuid}`` form. An ES256 key is
    a SEC1 PEM; an Ed25519 key is base64 of seed || public key (64 bytes), like the portal's.
    """
    key_name = f"organizations/{uuid.uuid4()}/apiKeys/{uuid.uuid4()}"
    private: PrivateKey
    if algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        private_text = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode("ascii")
    elif algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        seed = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public_raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        private_text = base64.b64encode(seed + public_raw).decode("ascii")
    else:
        raise ValueError(f"algorithm must be 'ES256' or 'EdDSA', got {algorithm!r}")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return key_name, private_text, public_pem
