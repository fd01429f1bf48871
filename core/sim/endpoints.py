"""Where a running simulated exchange listens, and the demo key that opens it.

Apart from ``core.sim.server`` so that the launcher (``core.sim.launcher``), which runs in
the console's process, can read the child's handshake without importing the server and its
web framework (aiohttp): the console's start-up must not pay for a server it does not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from core.config import Credentials

DEMO_USER_ID: Final = "demo-user"


@dataclass(frozen=True, slots=True)
class SimEndpoints:
    """Where a running sim listens and the demo key that opens it."""

    rest_url: str  # e.g. http://127.0.0.1:8123 (no /api/v3/brokerage, like exchange.rest_url)
    ws_market_url: str
    ws_user_url: str
    credentials: Credentials
    user_id: str = DEMO_USER_ID
    ca_cert_path: Path | None = None  # the self-signed certificate to trust, with --tls

    @property
    def rest_host(self) -> str:
        """``host:port``, as the JWT ``uri`` claim and the official SDK's base_url want it."""
        return self.rest_url.split("://", 1)[1]

    def to_handshake(self) -> dict[str, Any]:
        """The launcher's one-line JSON handshake (carries the demo key to the parent)."""
        return {
            "rest_url": self.rest_url,
            "ws_market_url": self.ws_market_url,
            "ws_user_url": self.ws_user_url,
            "key_name": self.credentials.key_name,
            "private_key": self.credentials.private_key,
            "user_id": self.user_id,
            "ca_cert_path": str(self.ca_cert_path) if self.ca_cert_path else None,
        }

    @classmethod
    def from_handshake(cls, data: Mapping[str, Any]) -> SimEndpoints:
        ca = data.get("ca_cert_path")
        return cls(
            rest_url=str(data["rest_url"]),
            ws_market_url=str(data["ws_market_url"]),
            ws_user_url=str(data["ws_user_url"]),
            credentials=Credentials(str(data["key_name"]), str(data["private_key"])),
            user_id=str(data.get("user_id") or DEMO_USER_ID),
            ca_cert_path=Path(ca) if ca else None,
        )
