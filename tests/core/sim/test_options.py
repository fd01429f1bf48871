"""The one line in which the console hands the demo's child its settings (core/sim/options.py),
and the handshake's endpoints that carry the demo key back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import SimSettings
from core.sim.endpoints import SimEndpoints
from core.sim.jwt_verify import DemoKey
from core.sim.options import SimOptions

_OPTIONS = st.builds(
    SimOptions,
    seed=st.integers(0, 2**32 - 1),
    rate=st.floats(0.001, 50_000, allow_nan=False),
    host=st.sampled_from(["127.0.0.1", "localhost", "::1", "0.0.0.0"]),
    port=st.integers(0, 65535),
    tls=st.booleans(),
)


@given(_OPTIONS)
def test_a_line_reads_back_as_what_was_written(options: SimOptions) -> None:
    line = options.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert SimOptions.from_line(line) == options


def test_the_line_carries_the_validated_settings() -> None:
    settings = SimSettings(seed=3, rate=20.0, port=8123, tls=True)
    options = SimOptions.from_line(SimOptions.of(settings).to_line())
    assert (options.seed, options.rate, options.host, options.port, options.tls) == (
        3,
        20.0,
        "127.0.0.1",
        8123,
        True,
    )


_GOOD = {"seed": 7, "rate": 400.0, "host": "127.0.0.1", "port": 0, "tls": False}


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"[7]\n", "not a JSON object"),
        (json.dumps({k: v for k, v in _GOOD.items() if k != "port"}).encode(), "keys"),
        (json.dumps({**_GOOD, "extra": 1}).encode(), "keys"),
        (json.dumps({**_GOOD, "seed": "7"}).encode(), "'seed'"),
        (json.dumps({**_GOOD, "seed": True}).encode(), "'seed'"),
        (json.dumps({**_GOOD, "port": 1.5}).encode(), "'port'"),
        (json.dumps({**_GOOD, "tls": 1}).encode(), "'tls'"),
        (json.dumps({**_GOOD, "host": None}).encode(), "'host'"),
        (json.dumps({**_GOOD, "rate": "fast"}).encode(), "'rate'"),
    ],
)
def test_a_bad_line_is_refused_with_what_is_wrong(line: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        SimOptions.from_line(line)


def test_the_endpoints_never_show_the_demo_key() -> None:
    key = DemoKey.derive(7)
    endpoints = SimEndpoints(
        rest_url="http://127.0.0.1:1",
        ws_market_url="ws://127.0.0.1:1/ws",
        ws_user_url="ws://127.0.0.1:1/ws/user",
        key_name=key.key_name,
        private_key=key.private_key,
    )
    shown = repr(endpoints) + str(endpoints)
    assert key.private_key not in shown and "PRIVATE" not in shown
    assert key.key_name not in shown
    again = SimEndpoints.from_handshake(json.loads(json.dumps(endpoints.to_handshake())))
    assert again == endpoints
    assert again.credentials.private_key == key.private_key
    assert repr(again.credentials) == "Credentials(<hidden>)"
