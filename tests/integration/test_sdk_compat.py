"""The official Coinbase SDK (coinbase-advanced-py 1.8.4), a client nobody here wrote, against
the simulated exchange over TLS: its WSClient and RESTClient must work unchanged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from coinbase.rest import RESTClient
from coinbase.websocket import WSClient
from coinbase.websocket.types.websocket_response import WebsocketResponse

from core.clock import SystemClock
from core.sim.runner import DEMO_BALANCES
from core.sim.server import SimEndpoints, SimServer


@pytest.fixture
def sim_clock() -> SystemClock:
    """The real clock: the SDK signs its JWTs with time.time()."""
    return SystemClock()


@pytest.fixture
def server_options() -> dict[str, Any]:
    """TLS on: the SDK only speaks https/wss."""
    return {"tls": True}


@pytest.fixture
def sdk_rest(endpoints: SimEndpoints, monkeypatch: pytest.MonkeyPatch) -> RESTClient:
    """The SDK's RESTClient on the sim (base_url host:port), trusting the sim's certificate
    through REQUESTS_CA_BUNDLE (requests lets that variable override a session's verify)."""
    client = RESTClient(
        api_key=endpoints.credentials.key_name,
        api_secret=endpoints.credentials.private_key,
        base_url=endpoints.rest_host,
        timeout=10,
    )
    assert endpoints.ca_cert_path is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(endpoints.ca_cert_path))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return client


async def test_sdk_websocket_client_parses_our_messages(
    endpoints: SimEndpoints, sim_server: SimServer
) -> None:
    assert endpoints.ws_market_url.startswith("wss://")
    received: list[WebsocketResponse] = []
    errors: list[str] = []

    wanted = {"l2_data", "ticker", "heartbeats", "user"}
    all_seen = asyncio.Event()

    def on_message(raw: str) -> None:
        data = json.loads(raw)
        if data.get("type") == "error":
            errors.append(raw)
            return
        received.append(WebsocketResponse(data))
        if wanted <= {m.channel for m in received}:
            all_seen.set()

    client = WSClient(
        api_key=endpoints.credentials.key_name,
        api_secret=endpoints.credentials.private_key,
        base_url=endpoints.ws_market_url,
        on_message=on_message,
        retry=False,
    )
    await client.open_async()
    try:
        await client.subscribe_async(["BTC-USD"], ["level2", "ticker", "heartbeats"])
        await client.subscribe_async([], ["user"])  # authenticated with the SDK's own JWT
        await asyncio.wait_for(all_seen.wait(), 10)
    finally:
        await client.close_async()
    assert errors == []
    l2 = next(m for m in received if m.channel == "l2_data")
    assert l2.events[0].type == "snapshot" and l2.events[0].product_id == "BTC-USD"
    assert {u.side for u in l2.events[0].updates} == {"bid", "offer"}
    ticker = next(m for m in received if m.channel == "ticker")
    assert ticker.events[0].tickers[0].product_id == "BTC-USD"
    beat = next(m for m in received if m.channel == "heartbeats")
    assert beat.events[0].heartbeat_counter
    numbers = [m.sequence_num for m in received]
    assert numbers == list(range(len(numbers))), "every message parsed, none missing"


async def test_sdk_rest_client_trades(sdk_rest: RESTClient, sim_server: SimServer) -> None:
    def scenario() -> dict[str, Any]:
        products = sdk_rest.get_products()
        accounts = sdk_rest.get_accounts()
        client_order_id = str(uuid.uuid4())
        placed = sdk_rest.limit_order_gtc_buy(
            client_order_id=client_order_id,
            product_id="BTC-USD",
            base_size="0.001",
            limit_price="60000.00",
        )
        listed = sdk_rest.list_orders(order_status=["OPEN"], product_ids=["BTC-USD"])
        cancelled = sdk_rest.cancel_orders(order_ids=[placed.success_response["order_id"]])
        after = sdk_rest.get_order(placed.success_response["order_id"])
        fills = sdk_rest.get_fills(order_ids=[placed.success_response["order_id"]])
        book = sdk_rest.get_product_book("BTC-USD", limit=5)
        return {
            "products": products,
            "accounts": accounts,
            "client_order_id": client_order_id,
            "placed": placed,
            "listed": listed,
            "cancelled": cancelled,
            "after": after,
            "fills": fills,
            "book": book,
        }

    result = await asyncio.to_thread(scenario)
    assert [p.product_id for p in result["products"].products] == ["BTC-USD", "ETH-USD", "SOL-USD"]
    currencies = {a.currency for a in result["accounts"].accounts}
    assert currencies == {"USD", "BTC", "ETH", "SOL"}
    placed = result["placed"]
    assert placed.success is True
    order_id = placed.success_response["order_id"]
    assert placed.success_response["client_order_id"] == result["client_order_id"]
    assert [o.order_id for o in result["listed"].orders] == [order_id]
    assert result["cancelled"].results[0].success is True
    assert result["after"].order.status == "CANCELLED"
    assert result["fills"].fills == []
    assert len(result["book"].pricebook.bids) == 5


def test_cryptoj_sim_command_prints_what_the_sdk_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cryptoj sim`` in the foreground: its key file and URLs work with the SDK; Ctrl-C stops it."""
    env = {
        **os.environ,
        "CRYPTOJ_STORAGE__DATA_DIR": str(tmp_path),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cryptoj_tui", "sim", "--seed", "5", "--rate", "100", "--tls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed: dict[str, str] = {}
        for line in process.stdout:
            name, _, value = line.strip().partition("=")
            if name.startswith(("CRYPTOJ_", "REQUESTS_CA_BUNDLE")):
                printed[name] = value.split("  #")[0]
            if name == "REQUESTS_CA_BUNDLE":
                break
        key_file = Path(printed["CRYPTOJ_CREDENTIALS__KEY_FILE"])
        assert key_file.parent == tmp_path / "sim"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = json.loads(key_file.read_text())
        assert set(key) == {"name", "privateKey"}
        rest_url = printed["CRYPTOJ_EXCHANGE__REST_URL"]
        assert rest_url.startswith("https://127.0.0.1:")
        assert (
            printed["CRYPTOJ_EXCHANGE__WS_MARKET_URL"] == rest_url.replace("https", "wss") + "/ws"
        )
        client = RESTClient(
            key_file=str(key_file), base_url=rest_url.removeprefix("https://"), timeout=10
        )
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", printed["REQUESTS_CA_BUNDLE"])
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        accounts = client.get_accounts()
        balances = {a.currency: a.available_balance["value"] for a in accounts.accounts}
        assert balances == {currency: str(amount) for currency, amount in DEMO_BALANCES.items()}
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
