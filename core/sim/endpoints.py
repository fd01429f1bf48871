"""Where a running simulated exchange listens, and the demo key that opens it.

Apart from ``core.sim.server`` so that the launcher (``core.sim.launcher``), which runs in
the console's process, can read the child's handshake without importing the server and its
web framework (aiohttp): the console's start-up must not pay for a server it does not run.
The demo key is kept as two strings, and ``credentials`` made from them on demand, so the
child, which writes the handshake, never loads the settings (pydantic; core/sim/options.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from core.config import Credentials

DEMO_USER_ID: Final = "demo-user"


@dataclass(frozen=True, slots=True)
class SimEndpoints:
    """Where a running sim listens and the demo key that opens it."""

    rest_url: str  # e.g. http://127.0.0.1:8123 (no /api/v3/brokerage, like exchange.rest_url)
    ws_market_url: str
    ws_user_url: str
    # The demo key, kept out of the repr (as ``Credentials`` keeps it) so no log shows it.
    key_name: str = field(repr=False)
    private_key: str = field(repr=False)
    user_id: str = DEMO_USER_ID
    ca_cert_path: Path | None = None  # the self-signed certificate to trust, with --tls

    @property
    def credentials(self) -> Credentials:
        from core.config import Credentials

        return Credentials(self.key_name, self.private_key)

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
            "key_name": self.key_name,
            "private_key": self.private_key,
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
            key_name=str(data["key_name"]),
            private_key=str(data["private_key"]),
            user_id=str(data.get("user_id") or DEMO_USER_ID),
            ca_cert_path=Path(ca) if ca else None,
        )
