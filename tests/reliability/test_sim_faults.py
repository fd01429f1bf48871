"""Every fault the simulated exchange can inject, seen from a client over loopback (raw
httpx, the project's REST client, the whole engine), and the launcher's promise that a sim
child process never outlives its parent."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from core.clock import ManualClock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.errors import TransportError
from core.coinbase.rest import CoinbaseRestClient
from core.config import Settings
from core.emergency import KillPhase
from core.model import ExchangeOrderStatus, Side
from core.order_state import OrderState
from core.sim.exchange import SimExchange
from core.sim.faults import FaultPlan
from core.sim.server import SimEndpoints, SimServer
from core.venue import OrderOutcomeUnknown
from tests.integration.engine_harness import (
    EngineRun,
    eventually,
    limit_spec,
    proof_settings,
    running_engine,
)
from tests.integration.loopback import RestClient
from tests.processes import process_running

LIMIT = {"limit_limit_gtc": {"base_size": "0.01", "limit_price": "60000.00"}}


# ----------------------------------------------------------------------------- REST


async def test_rest_429_has_an_html_body(rest: RestClient, sim_server: SimServer) -> None:
    sim_server.faults.next_rest(429)
    response = await rest.get("/accounts")
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert (await rest.get("/accounts")).status_code == 200, "one-shot: the next one is fine"


async def test_rest_500(rest: RestClient, sim_server: SimServer) -> None:
    sim_server.faults.next_rest(500, count=2)
    assert (await rest.get("/time", auth=False)).status_code == 500
    response = await rest.get("/accounts")
    assert response.status_code == 500 and response.json()["error"] == "INTERNAL"
    assert (await rest.get("/accounts")).status_code == 200


async def test_rest_delay_outlasts_the_client_timeout(
    rest: RestClient, sim_server: SimServer
) -> None:
    sim_server.faults.next_rest("delay", delay_s=2.0)
    with pytest.raises(httpx.ReadTimeout):
        await rest.http.get("/api/v3/brokerage/time", timeout=0.2)
    assert (await rest.get("/time", auth=False)).status_code == 200


async def test_lost_order_response_still_creates_the_order(
    rest: RestClient, sim_server: SimServer
) -> None:
    sim_server.faults.next_rest("lose_order_response")
    # Other requests are not affected: the fault waits for the next POST /orders.
    assert (await rest.get("/accounts")).status_code == 200
    client_order_id = str(uuid.uuid4())
    with pytest.raises(httpx.TransportError):
        await rest.create_order("BTC-USD", "BUY", LIMIT, client_order_id)
    orders = (await rest.get("/orders/historical/batch")).json()["orders"]
    assert [o["client_order_id"] for o in orders] == [client_order_id]
    # Retrying with the same client_order_id returns the order that was created.
    retry = (await rest.create_order("BTC-USD", "BUY", LIMIT, client_order_id)).json()
    assert retry["success"] is True
    assert retry["success_response"]["order_id"] == orders[0]["order_id"]


async def test_random_rest_faults_follow_the_plan_and_the_seed(
    rest: RestClient, sim_server: SimServer
) -> None:
    sim_server.faults.plan = FaultPlan.parse("rest_429=0.3,rest_500=0.3")
    statuses = [(await rest.get("/time", auth=False)).status_code for _ in range(40)]
    assert {429, 500, 200} == set(statuses)
    assert sim_server.faults.injected["rest_429"] == statuses.count(429)
    assert sim_server.faults.injected["rest_500"] == statuses.count(500)


async def test_random_lost_order_responses(rest: RestClient, sim_server: SimServer) -> None:
    sim_server.faults.plan = FaultPlan.parse("lose_order_response=1")
    with pytest.raises(httpx.TransportError):
        await rest.create_order("BTC-USD", "BUY", LIMIT)
    sim_server.faults.plan = FaultPlan()
    assert len((await rest.get("/orders/historical/batch")).json()["orders"]) == 1


async def test_a_late_order_is_created_after_the_client_gave_up(
    rest: RestClient, sim_server: SimServer
) -> None:
    sim_server.faults.next_rest("late_order", delay_s=0.5)
    # Other requests are not held: the fault waits for the next POST /orders.
    assert (await rest.get("/accounts")).status_code == 200
    client_order_id = str(uuid.uuid4())
    body = {
        "client_order_id": client_order_id,
        "product_id": "BTC-USD",
        "side": "BUY",
        "order_configuration": LIMIT,
    }
    with pytest.raises(httpx.ReadTimeout):
        await rest.http.post(
            "/api/v3/brokerage/orders",
            content=orjson.dumps(body),
            headers={**rest.auth("POST", "/orders"), "Content-Type": "application/json"},
            timeout=0.1,
        )
    exchange = sim_server.exchange
    user = sim_server.demo_user_id

    def landed() -> bool:
        return any(o.client_order_id == client_order_id for o in exchange.list_orders(user))

    assert not landed(), "the client gave up before the order reached the exchange"
    await eventually(landed, timeout=10)
    assert sim_server.faults.injected["rest_late_order"] == 1


async def test_a_trickled_answer_arrives_one_byte_at_a_time(
    rest: RestClient, sim_server: SimServer
) -> None:
    sim_server.faults.next_rest("trickle", delay_s=0.005)
    async with rest.http.stream("GET", "/api/v3/brokerage/time") as response:
        assert response.status_code == 200
        chunks = [chunk async for chunk in response.aiter_raw()]
    body = b"".join(chunks)
    assert orjson.loads(body)["epochSeconds"], "complete, if slow"
    assert len(chunks) > 1 and sim_server.faults.trickled_bytes == len(body)
    assert (await rest.get("/time", auth=False)).status_code == 200, "one-shot"


@pytest.fixture
async def deadline_client(
    endpoints: SimEndpoints, sim_clock: ManualClock
) -> AsyncIterator[CoinbaseRestClient]:
    """The project's REST client with a generous per-read timeout and a short total deadline."""
    signer = JwtSigner(endpoints.credentials, sim_clock, rest_host_from_url(endpoints.rest_url))
    async with CoinbaseRestClient(
        endpoints.rest_url, signer, clock=sim_clock, timeout_s=5.0, deadline_s=0.5
    ) as client:
        yield client


async def test_the_client_gives_up_on_a_trickle_at_its_total_deadline(
    deadline_client: CoinbaseRestClient, sim_server: SimServer
) -> None:
    # Every GET attempt trickles (the client retries GETs): each byte comes well inside the
    # 5 s per-read timeout, so only the 0.5 s total deadline can end the call.
    sim_server.faults.next_rest("trickle", count=4, delay_s=0.05)
    async with asyncio.timeout(30):  # fails instead of hanging if the deadline does not hold
        with pytest.raises(TransportError) as caught:
            await deadline_client.list_accounts()
    assert caught.value.timed_out and "deadline" in str(caught.value)
    assert sim_server.faults.trickled_bytes > 0, "bytes were flowing: no per-read timeout fired"


async def test_a_trickled_order_answer_is_an_unknown_outcome_yet_the_order_exists(
    deadline_client: CoinbaseRestClient, sim_server: SimServer
) -> None:
    sim_server.faults.next_rest("trickle", delay_s=0.05)
    spec = limit_spec("BTC-USD", Side.BUY, "0.01", "60000.00")
    async with asyncio.timeout(30):
        outcome = await deadline_client.create_order(spec, "trickled-1")
    assert isinstance(outcome, OrderOutcomeUnknown) and "deadline" in outcome.reason
    [order] = sim_server.exchange.list_orders(sim_server.demo_user_id)
    assert order.client_order_id == "trickled-1" and order.status is ExchangeOrderStatus.OPEN


# ----------------------------------------------------------------------------- the engine

LATE_S = 1.5  # how late the POST lands: past the engine's 0.5 s total deadline


def _short_deadline(data_dir: Path) -> Settings:
    settings = proof_settings(data_dir)
    exchange = settings.exchange.model_copy(
        update={"request_timeout_s": 0.4, "request_deadline_s": 0.5}
    )
    return settings.model_copy(update={"exchange": exchange})


@pytest.fixture
async def late_run(
    sim_server: SimServer, sim_exchange: SimExchange, sim_clock: ManualClock, tmp_path: Path
) -> AsyncIterator[EngineRun]:
    settings = _short_deadline(tmp_path)
    async with running_engine(
        sim_server, sim_exchange, sim_clock, tmp_path, settings=settings
    ) as run:
        yield run


def _states(run: EngineRun, client_order_id: str) -> list[OrderState]:
    return [r.state for r in run.engine.journal.order_history(client_order_id)]


def _engine_state(run: EngineRun, client_order_id: str) -> OrderState | None:
    order = run.engine.orders.get(client_order_id)
    return None if order is None else order.state


async def test_a_late_post_is_unknown_then_accepted_and_the_kill_cancels_it(
    late_run: EngineRun,
) -> None:
    run = late_run
    # Every POST is late, the engine's re-send (same client_order_id) too: only the venue
    # showing the order can resolve it.
    run.sim.server.faults.next_rest("late_order", count=3, delay_s=LATE_S)
    order = await run.submit(limit_spec("SOL-USD", Side.BUY, "1", "149"))
    coid = order.client_order_id
    # The client gave up at its deadline: the order may exist, so it is UNKNOWN (counted by
    # the gate, covered by the kill), not rejected.
    assert order.state is OrderState.UNKNOWN
    assert run.sim.by_client_id(coid) == []
    assert len(run.engine.orders.open_orders()) == 1
    # The POST lands; the venue shows the order (user channel, listings): it is ACCEPTED.
    await eventually(lambda: _engine_state(run, coid) is OrderState.ACCEPTED, timeout=15)
    [at_sim] = run.sim.by_client_id(coid)
    assert run.engine.orders.get(coid).order_id == at_sim.order_id  # type: ignore[union-attr]
    progress = await asyncio.wait_for(run.engine.kill("kill after a late POST"), 30)
    assert progress.phase is KillPhase.DONE
    assert run.sim.open_orders() == []
    assert run.sim.order(at_sim.order_id).status is ExchangeOrderStatus.CANCELLED
    states = _states(run, coid)
    assert states.index(OrderState.UNKNOWN) < states.index(OrderState.ACCEPTED)
    assert states[-1] is OrderState.CANCELED


async def test_a_post_landing_after_it_was_proven_absent_re_opens_it_for_the_kill(
    late_run: EngineRun, sim_clock: ManualClock
) -> None:
    """The POST lands after the engine's absence window (issue 9 §1: Coinbase accepted one
    14 s after a 10 s timeout): the order was closed NOT_AT_VENUE, and what the venue then
    reports re-opens it, so the kill still cancels it."""
    run = late_run
    run.sim.server.faults.next_rest("late_order", delay_s=3.0)
    order = await run.submit(limit_spec("SOL-USD", Side.BUY, "1", "149"))
    coid = order.client_order_id
    assert order.state is OrderState.UNKNOWN
    # Past the window (and the re-send window): the next lookup proves it absent.
    sim_clock.advance(61)
    await eventually(lambda: _engine_state(run, coid) is OrderState.REJECTED, timeout=10)
    assert run.engine.orders.open_orders() == []
    # Then the POST lands: the venue's report re-opens the order.
    await eventually(lambda: _engine_state(run, coid) is OrderState.ACCEPTED, timeout=15)
    assert [o.client_order_id for o in run.engine.orders.open_orders()] == [coid]
    progress = await asyncio.wait_for(run.engine.kill("kill after a re-opened order"), 30)
    assert progress.phase is KillPhase.DONE
    assert run.sim.open_orders() == []
    [at_sim] = run.sim.by_client_id(coid)
    assert at_sim.status is ExchangeOrderStatus.CANCELLED
    states = _states(run, coid)
    assert states.index(OrderState.REJECTED) < states.index(OrderState.ACCEPTED)
    assert states[-1] is OrderState.CANCELED


async def test_a_kill_pressed_while_a_post_is_late_waits_for_it_and_cancels_it(
    late_run: EngineRun,
) -> None:
    run = late_run
    run.sim.server.faults.next_rest("late_order", count=3, delay_s=LATE_S)
    order = await run.submit(limit_spec("SOL-USD", Side.BUY, "1", "149"))
    assert order.state is OrderState.UNKNOWN
    kill = run.engine.kill("kill with a POST on its way")
    # The sweep may not end while the POST can still land: it says it waits for it.
    await eventually(
        lambda: "unknown outcome" in (run.engine.emergency.progress.waiting or ""), timeout=10
    )
    assert not kill.done()
    progress = await asyncio.wait_for(kill, 30)
    assert progress.phase is KillPhase.DONE
    # It landed while HALTED, was found and cancelled: the venue is flat, nothing re-sent.
    [at_sim] = run.sim.by_client_id(order.client_order_id)
    assert at_sim.status is ExchangeOrderStatus.CANCELLED
    assert run.sim.open_orders() == []
    assert OrderState.UNKNOWN in _states(run, order.client_order_id)
    assert _engine_state(run, order.client_order_id) is OrderState.CANCELED


# ----------------------------------------------------------------------------- WebSocket


async def test_drop_websockets_cuts_without_a_close_frame(
    ws_connect: Any, sim_server: SimServer
) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("heartbeats")
        assert sim_server.faults.drop_websockets() == 1
        await asyncio.wait_for(ws.connection.wait_closed(), 5)
        assert ws.connection.close_code == 1006, "abnormal closure: no close frame"


async def test_close_websockets_with_1001(ws_connect: Any, sim_server: SimServer) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("heartbeats")
        sim_server.faults.close_websockets(1001)
        await asyncio.wait_for(ws.connection.wait_closed(), 5)
        assert ws.connection.close_code == 1001


async def test_skip_sequence_makes_a_gap(ws_connect: Any, sim_server: SimServer) -> None:
    async with ws_connect() as ws:
        ack = await ws.subscribe("heartbeats")
        first = await ws.recv_until(lambda m: m["channel"] == "heartbeats")
        sim_server.faults.skip_sequence(3)
        second = await ws.recv()
        assert first["sequence_num"] >= ack["sequence_num"] + 1
        assert second["sequence_num"] == first["sequence_num"] + 4


async def test_malformed_frame(ws_connect: Any, sim_server: SimServer) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("heartbeats")
        sim_server.faults.send_malformed()
        frames = [await asyncio.wait_for(ws.connection.recv(), 5) for _ in range(3)]
        import orjson

        bad = []
        for frame in frames:
            try:
                orjson.loads(frame)
            except orjson.JSONDecodeError:
                bad.append(frame)
        assert len(bad) == 1


async def test_silence_sends_nothing_until_it_ends(
    ws_connect: Any, sim_server: SimServer, sim_clock: ManualClock
) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("heartbeats")
        before = await ws.recv_until(lambda m: m["channel"] == "heartbeats")
        sim_server.faults.silence(3.0)
        with pytest.raises(TimeoutError):
            await ws.recv(wait_s=0.5)  # five heartbeat periods of nothing
        sim_clock.advance(3.0)
        after = await ws.recv()
        assert after["channel"] == "heartbeats"
        assert after["sequence_num"] > before["sequence_num"] + 1, "messages lost in silence"


@pytest.mark.parametrize(
    ("plan", "close_code"),
    [("ws_drop=1", 1006), ("ws_close_1001=1", 1001)],
)
async def test_random_websocket_closes(
    ws_connect: Any, sim_server: SimServer, plan: str, close_code: int
) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("heartbeats")
        sim_server.faults.plan = FaultPlan.parse(plan)
        await asyncio.wait_for(ws.connection.wait_closed(), 5)
        assert ws.connection.close_code == close_code


async def test_random_sequence_skips_and_malformed_frames(
    ws_connect: Any, sim_server: SimServer
) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("heartbeats")
        sim_server.faults.plan = FaultPlan.parse("seq_skip=2@0.5,malformed=0.5")
        import orjson

        numbers: list[int] = []
        malformed = 0
        while len(numbers) < 12:
            frame = await asyncio.wait_for(ws.connection.recv(), 5)
            try:
                numbers.append(orjson.loads(frame)["sequence_num"])
            except orjson.JSONDecodeError:
                malformed += 1
        gaps = [b - a for a, b in itertools.pairwise(numbers)]
        assert 3 in gaps and all(gap in (1, 3) for gap in gaps)
        assert malformed > 0


async def test_random_silence(
    ws_connect: Any, sim_server: SimServer, sim_clock: ManualClock
) -> None:
    async with ws_connect() as ws:
        await ws.subscribe("heartbeats")
        await ws.recv_until(lambda m: m["channel"] == "heartbeats")
        sim_server.faults.plan = FaultPlan.parse("silence=10@1")
        with pytest.raises(TimeoutError):
            await ws.recv(wait_s=0.5)
        sim_server.faults.plan = FaultPlan()
        sim_clock.advance(10)
        assert (await ws.recv())["channel"] == "heartbeats"


# ----------------------------------------------------------------------------- the launcher

_PARENT = """
import sys, time
from core.config import SimSettings
from core.sim.launcher import start_sim_process
sim = start_sim_process(SimSettings(seed=1, rate=50))
print(sim.pid, sim.log_path, flush=True)
time.sleep(60)
"""


def test_the_sim_child_dies_with_its_parent() -> None:
    """SIGKILL the parent (no cleanup runs): the child sees EOF on stdin and exits."""
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid_text, log_path = parent.stdout.readline().split()
    child_pid = int(pid_text)
    assert process_running(child_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while process_running(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_running(child_pid)
    Path(log_path).unlink(missing_ok=True)  # nobody was left to clean up after the child


def test_launcher_stop_and_bad_plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from core.config import SimSettings
    from core.sim.launcher import SimLaunchError, sim_command, start_sim_process

    with pytest.raises(ValueError, match="unknown"):
        start_sim_process(SimSettings(), faults="nonsense=1")
    command = sim_command(SimSettings(seed=3, tls=True), faults=FaultPlan.parse("rest_429=0.5"))
    assert command[1:4] == ["-P", "-m", "core.sim"]
    assert "--tls" in command and command[command.index("--faults") + 1] == "rest_429=0.5"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # failed runs keep their log
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho starting >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(SimLaunchError, match="starting"):
        start_sim_process(SimSettings(), python=str(broken), timeout_s=5)
    with start_sim_process(SimSettings(seed=2, rate=50)) as sim:
        assert sim.alive and sim.endpoints.rest_url.startswith("http://127.0.0.1:")
        response = httpx.get(f"{sim.endpoints.rest_url}/api/v3/brokerage/time", timeout=5)
        assert response.status_code == 200
    assert not sim.alive
    assert sim.stop() == 0, "stopping twice is harmless"


def test_child_entry_point_announces_and_stops_on_stdin_eof(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m core.sim`` run in-process with stdin at EOF: it prints the one-line
    handshake, sees the EOF and stops cleanly."""
    import orjson

    from core.sim import __main__ as child

    with open(os.devnull) as devnull:
        monkeypatch.setattr(sys, "stdin", devnull)
        assert child.main(["--seed", "4", "--rate", "50", "--faults", "rest_429=0.1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    handshake = orjson.loads(line)
    assert handshake["event"] == "ready"
    assert handshake["rest_url"].startswith("http://127.0.0.1:")
    assert handshake["key_name"].startswith("organizations/cryptoj-sim/apiKeys/")
    assert child.main(["--faults", "bogus=1"]) == 2


async def test_launcher_async_variants_and_a_silent_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from core.config import SimSettings
    from core.sim.launcher import SimLaunchError, astart_sim_process, start_sim_process

    async with await astart_sim_process(SimSettings(seed=6, rate=50)) as sim:
        assert sim.alive
    assert not sim.alive
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # failed runs keep their log
    silent = tmp_path / "python"
    silent.write_text("#!/bin/sh\nexec sleep 30\n")
    silent.chmod(0o755)
    with pytest.raises(SimLaunchError, match="did not start"):
        await asyncio.to_thread(start_sim_process, SimSettings(), python=str(silent), timeout_s=0.3)
