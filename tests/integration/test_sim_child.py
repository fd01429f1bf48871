"""The demo's simulated exchange as a child process, as the console starts it (``python -m
core.sim --settings-on-stdin``): what it loads before it says ready, and that a client who
connects the moment it is ready gets the whole book, consistently.

The child announces itself ready as soon as it listens and builds its market (the books, the
candle history) right after, before it serves any request (core/sim/runner.py ``run_sim``);
these tests try to catch it serving a half-built market.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from core.clock import SystemClock
from core.config import SimSettings
from core.sim.endpoints import SimEndpoints
from core.sim.launcher import SimProcess, early_sim_command, spawn_sim_process
from core.sim.options import SimOptions
from core.sim.server import API_PREFIX
from tests.integration.loopback import WsClient, make_jwt

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD"]
LADDER_LEVELS = 300  # MarketAgents' default: what the demo's books hold a side

# Runs the child's main() with two hooks: the modules loaded when it says ready, and again
# once its market is built, each as one more JSON line on stdout after the handshake.
_CHILD_WITH_PROBES = """
import json, sys
import core.sim.__main__ as child

real_announce, real_built = child._announce, child.boot_done

def announce(endpoints):
    real_announce(endpoints)
    print(json.dumps(sorted(sys.modules)), flush=True)

def built():
    real_built()
    print(json.dumps(sorted(sys.modules)), flush=True)

child._announce, child.boot_done = announce, built
sys.exit(child.main(["--settings-on-stdin"]))
"""


def _settings_line(**overrides: Any) -> bytes:
    return SimOptions.of(SimSettings(**overrides)).to_line()


def _roots(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_the_child_says_ready_before_loading_the_settings_jwt_or_tls_machinery() -> None:
    """pydantic (~0.1 s), PyJWT (~60 ms) and the certificate builder are not on the way to
    the handshake the console waits for; the JWT library is loaded once the market is built,
    before the first request needs it."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_WITH_PROBES],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO_ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(_settings_line())
        child.stdin.flush()
        handshake = json.loads(child.stdout.readline())
        at_ready = json.loads(child.stdout.readline())
        once_built = json.loads(child.stdout.readline())
    finally:
        child.stdin.close()
        code = child.wait(30)
    assert handshake["event"] == "ready"
    assert code == 0
    loaded = _roots(at_ready)
    assert not loaded & {"pydantic", "pydantic_core", "pydantic_settings", "jwt"}, loaded
    assert "core.config" not in at_ready
    assert "core.sim.tls" not in at_ready and "cryptography.x509" not in at_ready
    assert "jwt" in _roots(once_built)
    assert "pydantic" not in _roots(once_built)


def test_stdin_ending_before_the_settings_ends_the_child_quietly() -> None:
    """The console quit (or chose another mode) before it sent the settings: no handshake,
    exit 0."""
    done = subprocess.run(
        early_sim_command(),
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b'{"seed": 7}\n',
        b'{"seed": "7", "rate": 400.0, "host": "127.0.0.1", "port": 0, "tls": false}\n',
    ],
)
def test_bad_settings_are_refused_in_the_handshake(line: bytes) -> None:
    done = subprocess.run(
        early_sim_command(),
        input=line,
        capture_output=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    (handshake,) = done.stdout.splitlines()
    reply = json.loads(handshake)
    assert reply["event"] == "error" and reply["kind"] == "config"
    assert reply["message"].startswith("the sim's setting")


@pytest.fixture
def demo_child() -> Iterator[SimProcess]:
    """The child as the console starts it (early, settings sent afterwards)."""
    pending = spawn_sim_process(early_sim_command())
    pending.send_settings(SimSettings(seed=7, rate=400.0))
    with pending.ready(timeout_s=30) as sim:
        yield sim


def _apply(book: dict[str, dict[Decimal, Decimal]], updates: list[dict[str, Any]]) -> None:
    for update in updates:
        side = book["bid" if update["side"] == "bid" else "offer"]
        price, size = Decimal(update["price_level"]), Decimal(update["new_quantity"])
        if size:
            side[price] = size
        else:
            side.pop(price, None)


async def _first_messages(endpoints: SimEndpoints, count: int) -> list[dict[str, Any]]:
    """Connect the moment the child is ready, subscribe to level2 with a JWT (as the console
    does) and collect ``count`` messages."""
    token = make_jwt(endpoints.credentials, SystemClock())
    async with websockets.connect(endpoints.ws_market_url, max_size=None, open_timeout=10) as ws:
        client = WsClient(ws)
        await client.send(
            {"type": "subscribe", "channel": "level2", "product_ids": PRODUCTS, "jwt": token}
        )
        return [await client.recv(wait_s=10) for _ in range(count)]


async def test_a_client_subscribing_at_once_gets_whole_books_and_gapless_sequence_numbers(
    demo_child: SimProcess,
) -> None:
    messages = await _first_messages(demo_child.endpoints, 40)
    assert [m["sequence_num"] for m in messages] == list(range(40))
    books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}
    for message in messages:
        if message["channel"] != "l2_data":
            continue
        for event in message["events"]:
            product_id = event["product_id"]
            if event["type"] == "snapshot":
                assert product_id not in books, "a second snapshot without a resubscribe"
                books[product_id] = {"bid": {}, "offer": {}}
                _apply(books[product_id], event["updates"])
                # The whole ladder, not whatever was built when the client came in.
                assert len(books[product_id]["bid"]) == LADDER_LEVELS
                assert len(books[product_id]["offer"]) == LADDER_LEVELS
            else:
                assert product_id in books, "an update before the snapshot"
                _apply(books[product_id], event["updates"])
            book = books[product_id]
            assert max(book["bid"]) < min(book["offer"]), f"{product_id} crossed"
    assert sorted(books) == PRODUCTS


async def test_the_first_rest_answers_carry_the_candle_history(demo_child: SimProcess) -> None:
    """The 24 h figures and the candles come from the history built after the handshake: the
    first request made at once must already see all of it."""
    endpoints = demo_child.endpoints
    path = f"{API_PREFIX}/market/products/BTC-USD/candles"
    now = int(SystemClock().time())
    async with httpx.AsyncClient(base_url=endpoints.rest_url, timeout=10) as client:
        candles, product = await asyncio.gather(
            client.get(
                path, params={"start": now - 300 * 60, "end": now, "granularity": "ONE_MINUTE"}
            ),
            client.get(f"{API_PREFIX}/market/products/BTC-USD"),
        )
    assert candles.status_code == 200 and product.status_code == 200
    assert len(candles.json()["candles"]) >= 299  # five hours of minutes (the newest may be open)
    assert Decimal(product.json()["volume_24h"]) > 0


def test_by_hand_the_child_can_still_read_the_configuration(tmp_path: Path) -> None:
    """``python -m core.sim --from-settings --config FILE`` (running the child by hand as the
    demo would) reads the sim's settings itself: here the seed, and so the demo key."""
    from core.sim.jwt_verify import DemoKey

    config = tmp_path / "config.toml"
    config.write_text("[sim]\nseed = 5\nrate = 20.0\n")
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", "core.sim", "--from-settings", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO_ROOT,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        handshake = json.loads(child.stdout.readline())
    finally:
        child.stdin.close()
        child.wait(30)
    assert handshake["event"] == "ready"
    assert handshake["private_key"] == DemoKey.derive(5).private_key
