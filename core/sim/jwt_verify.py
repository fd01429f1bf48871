"""The simulated exchange's side of CDP key authentication: demo keys and JWT checks.

``DemoKey`` is the sim's one API key, derived from the seed so a key file written by one run
still works in the next. ``JwtVerifier`` checks a Bearer token the way Coinbase does
(docs/coinbase-protocol.md §1.2-1.3): signature by the key named in ``kid`` with ES256 or EdDSA,
``iss`` "cdp", ``sub`` == ``kid``, the ``nbf``/``exp`` window (with a little leeway for
clock skew) and, for REST, ``uri`` == ``"{METHOD} {host}{path}"`` with no scheme and no
query. Any failure gives ``None``: the server answers a plain 401, never why.

PyJWT (``jwt``) and the settings' ``Credentials`` are imported where they are used, not at
the top: the simulated exchange's child announces itself ready before any token arrives,
and the console's demo waits for that (docs/design.md, start-up). The key itself
(``cryptography``) is made before ready: the handshake carries it.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from core.clock import Clock

if TYPE_CHECKING:
    from core.config import Credentials

KeyAlgorithm = Literal["ES256", "EdDSA"]
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

DEFAULT_LEEWAY_S: Final = 5.0
# Coinbase's SDK mints tokens valid for 120 s; refuse tokens that claim a much longer life.
MAX_TOKEN_LIFETIME_S: Final = 300.0
_P256_ORDER: Final = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


@dataclass(frozen=True, slots=True)
class DemoKey:
    """An API key of the simulated exchange: its name, the private key text, the public key."""

    key_name: str
    private_key: str  # SEC1 PEM for ES256; base64 of seed || public key for EdDSA (portal form)
    public_key: PublicKey
    algorithm: KeyAlgorithm

    @property
    def credentials(self) -> Credentials:
        from core.config import Credentials

        return Credentials(self.key_name, self.private_key)

    def __repr__(self) -> str:
        return f"DemoKey({self.key_name!r}, {self.algorithm})"

    @classmethod
    def derive(cls, seed: int, algorithm: KeyAlgorithm = "ES256") -> DemoKey:
        """The demo key for ``seed``: same seed, same key (it guards a local toy, not money)."""
        digest = hashlib.sha256(f"cryptoj-sim-demo-key:{seed}".encode()).digest()
        key_id = uuid.UUID(bytes=digest[:16], version=4)
        key_name = f"organizations/cryptoj-sim/apiKeys/{key_id}"
        if algorithm == "EdDSA":
            ed_key = ed25519.Ed25519PrivateKey.from_private_bytes(digest)
            public_bytes = ed_key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            text = base64.b64encode(digest + public_bytes).decode()
            return cls(key_name, text, ed_key.public_key(), "EdDSA")
        scalar = int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1
        ec_key = ec.derive_private_key(scalar, ec.SECP256R1())
        pem = ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN EC PRIVATE KEY", as the portal
            serialization.NoEncryption(),
        ).decode()
        return cls(key_name, pem, ec_key.public_key(), "ES256")


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    public_key: PublicKey
    algorithm: KeyAlgorithm
    user_id: str


class JwtVerifier:
    """Checks CDP JWTs against the keys it knows and maps a good token to its user id."""

    def __init__(self, clock: Clock, *, leeway_s: float = DEFAULT_LEEWAY_S) -> None:
        self._clock = clock
        self._leeway_s = leeway_s
        self._keys: dict[str, RegisteredKey] = {}

    @staticmethod
    def load() -> None:
        """Import the JWT library now (~60 ms) rather than in the first request that needs
        it (the simulated exchange calls this once it has announced itself ready)."""
        import jwt  # noqa: F401

    def register(self, key: DemoKey, user_id: str) -> None:
        self._keys[key.key_name] = RegisteredKey(key.public_key, key.algorithm, user_id)

    @property
    def keys(self) -> Mapping[str, RegisteredKey]:
        return self._keys

    def verify_rest(self, token: str, method: str, host: str, path: str) -> str | None:
        """The user id if ``token`` is valid for this request, else None.

        ``path`` is the request path without the query string; a token whose ``uri`` has a
        query, a scheme or another host/path does not match.
        """
        claims = self._verified_claims(token)
        if claims is None:
            return None
        user_id, payload = claims
        if payload.get("uri") != f"{method.upper()} {host}{path}":
            return None
        return user_id

    def verify_ws(self, token: object) -> str | None:
        """The user id for a WebSocket subscribe's ``jwt`` (no ``uri`` claim needed)."""
        if not isinstance(token, str):
            return None
        claims = self._verified_claims(token)
        return None if claims is None else claims[0]

    def _verified_claims(self, token: str) -> tuple[str, dict[str, object]] | None:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None or header.get("alg") != key.algorithm:
            return None
        try:
            # Times are checked below against the injected clock, not PyJWT's time.time().
            payload: dict[str, object] = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "require": ["sub", "iss", "nbf", "exp"],
                },
            )
        except jwt.PyJWTError:
            return None
        if payload.get("iss") != "cdp" or payload.get("sub") != kid:
            return None
        nbf, exp = payload.get("nbf"), payload.get("exp")
        if not isinstance(nbf, int | float) or not isinstance(exp, int | float):
            return None
        now = self._clock.time()
        if not (nbf - self._leeway_s <= now <= exp + self._leeway_s):
            return None
        if exp - nbf > MAX_TOKEN_LIFETIME_S:
            return None
        return key.user_id, payload
