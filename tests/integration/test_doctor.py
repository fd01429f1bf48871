"""``cryptoj doctor`` against the simulated exchange over real loopback sockets.

In-process: the conftest's ``SimServer`` on a ManualClock, the doctor on its own clock (the
same one, or one set ahead to fake a skewed machine). Out of process: the real ``cryptoj
doctor`` command against a simulated exchange in a child process (``start_sim_process``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from core.clock import ManualClock
from core.coinbase.auth import generate_demo_key
from core.config import CredentialSettings, Mode, Settings, SimSettings, load_settings
from core.doctor import (
    API_KEY,
    CLOCK,
    CONFIG,
    PERMISSIONS,
    REST,
    WS_MARKET,
    WS_USER,
    DoctorReport,
    Status,
    check_api_key,
    check_websocket,
    diagnose,
    run_doctor,
)
from core.sim.exchange import SimExchange
from core.sim.launcher import SimProcess, start_sim_process
from core.sim.server import SimEndpoints, SimServer

TIMEOUT_S = 5.0
NETWORK_CHECKS = (REST, CLOCK, WS_MARKET, WS_USER, PERMISSIONS)


def doctor_settings(
    endpoints: SimEndpoints,
    *,
    key_name: str | None = None,
    private_key: str | None = None,
    mode: str = "live",
    rest_url: str | None = None,
) -> Settings:
    """Settings pointing at the sim with the given key (the sim's demo key by default)."""
    credentials: dict[str, Any] = {
        "key_name": key_name if key_name is not None else endpoints.credentials.key_name,
        "private_key": private_key
        if private_key is not None
        else endpoints.credentials.private_key,
    }
    return load_settings(
        None,
        overrides={
            "mode": mode,
            "exchange": {
                "rest_url": rest_url or endpoints.rest_url,
                "ws_market_url": endpoints.ws_market_url,
                "ws_user_url": endpoints.ws_user_url,
            },
            "credentials": credentials,
        },
        environ={"HOME": "/nonexistent-home"},
    )


def statuses(report: DoctorReport) -> dict[str, Status]:
    return {check.name: check.status for check in report.checks}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_everything_ok_against_the_sim(
    endpoints: SimEndpoints, sim_clock: ManualClock
) -> None:
    report = await diagnose(doctor_settings(endpoints), clock=sim_clock, timeout_s=TIMEOUT_S)

    assert statuses(report) == {
        CONFIG: Status.OK,
        API_KEY: Status.OK,
        REST: Status.OK,
        CLOCK: Status.OK,
        WS_MARKET: Status.OK,
        WS_USER: Status.OK,
        PERMISSIONS: Status.OK,
    }, report.render()
    assert report.exit_code == 0
    assert "ES256" in report.check(API_KEY).summary
    assert "heartbeat received" in report.check(WS_USER).summary
    assert report.render().endswith("all checks passed")


async def test_an_ed25519_key_is_recognised(
    sim_exchange: SimExchange, sim_clock: ManualClock
) -> None:
    server = SimServer(
        sim_exchange, None, clock=sim_clock, demo_key_algorithm="EdDSA", heartbeat_interval_s=0.1
    )
    endpoints = await server.start()
    try:
        report = await diagnose(doctor_settings(endpoints), clock=sim_clock, timeout_s=TIMEOUT_S)
    finally:
        await server.stop()
    assert report.check(API_KEY).status is Status.OK
    assert "Ed25519" in report.check(API_KEY).summary
    assert report.check(PERMISSIONS).status is Status.OK, report.render()


async def test_a_key_the_exchange_does_not_know_is_not_accepted(
    endpoints: SimEndpoints, sim_clock: ManualClock
) -> None:
    key_name, private_key, _ = generate_demo_key("ES256")
    settings = doctor_settings(endpoints, key_name=key_name, private_key=private_key)

    report = await diagnose(settings, clock=sim_clock, timeout_s=TIMEOUT_S)

    permissions = report.check(PERMISSIONS)
    assert permissions.status is Status.FAIL
    assert permissions.summary.startswith("the key is not accepted: HTTP 401")
    assert permissions.fix is not None and "portal" in permissions.fix
    assert report.check(API_KEY).status is Status.OK  # well-formed, just not this exchange's
    assert report.check(REST).status is Status.OK
    assert report.exit_code == 1
    assert private_key not in report.render()
    assert private_key not in json.dumps(report.as_json())


@pytest.mark.parametrize(
    ("skew_s", "expected", "words"),
    [
        (2.0, Status.OK, "2.0 s ahead of"),
        (-12.0, Status.WARN, "12.0 s behind"),
        (90.0, Status.FAIL, "90.0 s ahead of"),
    ],
)
async def test_clock_offset_against_the_exchange_time(
    endpoints: SimEndpoints, sim_clock: ManualClock, skew_s: float, expected: Status, words: str
) -> None:
    local = ManualClock(sim_clock.time() + skew_s)

    report = await diagnose(doctor_settings(endpoints), clock=local, timeout_s=TIMEOUT_S)

    clock = report.check(CLOCK)
    assert clock.status is expected, clock
    assert words in clock.summary
    if expected is not Status.OK:
        assert clock.fix is not None and "time synchronisation" in clock.fix
    # The doctor signs with the measured offset, so the permission check still gets through.
    assert report.check(PERMISSIONS).status is Status.OK
    assert report.exit_code == (1 if expected is Status.FAIL else 0)


async def test_unreachable_exchange(sim_clock: ManualClock, endpoints: SimEndpoints) -> None:
    port = free_port()  # nothing listens there
    settings = load_settings(
        None,
        overrides={
            "exchange": {
                "rest_url": f"http://127.0.0.1:{port}",
                "ws_market_url": f"ws://127.0.0.1:{port}/ws",
                "ws_user_url": f"ws://127.0.0.1:{port}/ws/user",
            },
            "credentials": {
                "key_name": endpoints.credentials.key_name,
                "private_key": endpoints.credentials.private_key,
            },
        },
        environ={},
    )

    report = await diagnose(settings, clock=sim_clock, timeout_s=TIMEOUT_S)

    assert statuses(report) == {
        CONFIG: Status.OK,
        API_KEY: Status.OK,
        REST: Status.FAIL,
        CLOCK: Status.SKIP,
        WS_MARKET: Status.FAIL,
        WS_USER: Status.FAIL,
        PERMISSIONS: Status.SKIP,
    }
    assert "GET /time failed" in report.check(REST).summary
    assert all(report.check(name).fix for name in (REST, WS_MARKET, WS_USER))
    assert report.exit_code == 1


async def test_a_damaged_private_key(endpoints: SimEndpoints, sim_clock: ManualClock) -> None:
    damaged = endpoints.credentials.private_key.replace("\n", "\n!", 2)
    report = await diagnose(
        doctor_settings(endpoints, private_key=damaged), clock=sim_clock, timeout_s=TIMEOUT_S
    )
    key = report.check(API_KEY)
    assert key.status is Status.FAIL
    assert key.summary.startswith("the private key is unusable: ")
    assert key.fix is not None and "Developer Platform" in key.fix
    assert report.check(PERMISSIONS).status is Status.SKIP
    # Connectivity is still reported: it does not depend on the key.
    assert report.check(WS_MARKET).status is Status.OK
    body_lines = [line for line in damaged.splitlines() if line and "-----" not in line]
    assert not [line for line in body_lines if line.lstrip("!") in report.render()]


async def test_no_key_is_a_warning_outside_live(
    endpoints: SimEndpoints, sim_clock: ManualClock
) -> None:
    settings = doctor_settings(endpoints, mode="paper").model_copy(
        update={"credentials": Settings().credentials}
    )
    report = await diagnose(settings, clock=sim_clock, timeout_s=TIMEOUT_S)
    assert report.check(API_KEY).status is Status.WARN
    assert report.check(PERMISSIONS).status is Status.SKIP
    assert report.exit_code == 0

    live = settings.model_copy(update={"mode": Mode.LIVE})
    report = await diagnose(live, clock=sim_clock, timeout_s=TIMEOUT_S)
    assert report.check(API_KEY).status is Status.FAIL
    assert report.exit_code == 1


class _PermissionsSim(SimServer):
    """The simulated exchange with another answer to ``GET /key_permissions``."""

    def __init__(self, *args: Any, answer: tuple[int, dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answer = answer

    async def _key_permissions(self, request: web.Request) -> web.Response:
        status, body = self.answer
        return web.json_response(body, status=status)


@pytest.mark.parametrize(
    ("answer", "status", "summary"),
    [
        (
            (200, {"can_view": True, "can_trade": False, "can_transfer": False}),
            Status.FAIL,
            "the key cannot trade",
        ),
        (
            (200, {"can_view": False, "can_trade": False, "can_transfer": False}),
            Status.FAIL,
            "the key cannot view or trade",
        ),
        (
            (200, {"can_view": True, "can_trade": True, "can_transfer": True}),
            Status.WARN,
            "the key can view and trade, and can also transfer funds",
        ),
        (
            (403, {"error": "PERMISSION_DENIED", "error_details": "Missing required scopes"}),
            Status.FAIL,
            "the key may not read its permissions: HTTP 403 PERMISSION_DENIED",
        ),
        (
            (500, {"error": "INTERNAL", "message": "boom"}),
            Status.FAIL,
            "GET /key_permissions failed: HTTP 500 INTERNAL: boom",
        ),
    ],
    ids=["read-only", "no view", "can transfer", "403 scopes", "500"],
)
async def test_key_permission_answers(
    sim_exchange: SimExchange,
    sim_clock: ManualClock,
    answer: tuple[int, dict[str, Any]],
    status: Status,
    summary: str,
) -> None:
    server = _PermissionsSim(
        sim_exchange, None, clock=sim_clock, heartbeat_interval_s=0.1, answer=answer
    )
    endpoints = await server.start()
    try:
        report = await diagnose(doctor_settings(endpoints), clock=sim_clock, timeout_s=TIMEOUT_S)
    finally:
        await server.stop()
    permissions = report.check(PERMISSIONS)
    assert permissions.status is status, permissions
    assert permissions.summary.startswith(summary), permissions.summary
    assert permissions.fix
    assert report.exit_code == (0 if status is Status.WARN else 1)
    if status is Status.WARN:
        assert report.render().endswith("no failures, 1 warning(s)")


@pytest.fixture
async def odd_ws_server() -> AsyncIterator[str]:
    """A loopback WebSocket server with two misbehaving endpoints: ``/silent`` accepts the
    subscription and never answers, ``/error`` answers it with Coinbase's error message."""

    async def silent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    async def error(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            await ws.send_str('{"type":"error","message":"authentication failure"}')
        return ws

    app = web.Application()
    app.router.add_get("/silent", silent)
    app.router.add_get("/error", error)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_silent_websocket_fails_after_the_timeout(odd_ws_server: str) -> None:
    result = await check_websocket(
        WS_MARKET,
        f"{odd_ws_server}/silent",
        signer=None,
        clock=ManualClock(),
        ssl_context=None,
        timeout_s=0.5,
    )
    assert result.status is Status.FAIL
    assert result.summary == f"{odd_ws_server}/silent: no heartbeat within 0 s"


async def test_a_websocket_error_message_is_reported(odd_ws_server: str) -> None:
    result = await check_websocket(
        WS_USER,
        f"{odd_ws_server}/error",
        signer=None,
        clock=ManualClock(),
        ssl_context=None,
        timeout_s=TIMEOUT_S,
    )
    assert result.status is Status.FAIL
    assert result.summary.endswith("answered: authentication failure")


async def test_key_file_problems(
    endpoints: SimEndpoints, sim_clock: ManualClock, tmp_path: Path
) -> None:
    key_file = tmp_path / "key.json"
    settings = doctor_settings(endpoints).model_copy(
        update={"credentials": CredentialSettings(key_file=key_file)}
    )
    missing = check_api_key(settings, sim_clock)[0]
    assert missing.status is Status.FAIL and "cannot read it" in missing.summary

    key_file.write_text(
        json.dumps(
            {
                "name": endpoints.credentials.key_name,
                "privateKey": endpoints.credentials.private_key,
            }
        )
    )
    key_file.chmod(0o644)
    readable, signer = check_api_key(settings, sim_clock)
    assert readable.status is Status.WARN and readable.fix == f"chmod 600 {key_file}"
    assert signer is not None  # a warning: the key itself is usable

    key_file.chmod(0o600)
    assert check_api_key(settings, sim_clock)[0].status is Status.OK

    odd_name = settings.model_copy(
        update={
            "credentials": CredentialSettings(
                key_name=SecretStr("my key"),
                private_key=SecretStr(endpoints.credentials.private_key),
            )
        }
    )
    named = check_api_key(odd_name, sim_clock)[0]
    assert named.status is Status.WARN and "organizations/" in named.summary


async def test_an_unusable_rest_url(endpoints: SimEndpoints, sim_clock: ManualClock) -> None:
    report = await diagnose(
        doctor_settings(endpoints, rest_url="http://"), clock=sim_clock, timeout_s=TIMEOUT_S
    )
    assert report.check(API_KEY).status is Status.OK
    assert report.check(REST).status is Status.FAIL
    assert report.check(WS_MARKET).status is Status.OK


async def test_a_bad_config_file_fails_and_skips_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[exchange]\nrequest_timeout_s = -1\n")

    report = await run_doctor(config, clock=ManualClock())

    assert report.check(CONFIG).status is Status.FAIL
    assert "exchange.request_timeout_s" in report.check(CONFIG).summary
    assert {report.check(name).status for name in (API_KEY, *NETWORK_CHECKS)} == {Status.SKIP}
    assert report.exit_code == 1
    assert "configuration failed" in report.render()


async def test_a_readable_config_file_with_the_key_is_a_warning(
    endpoints: SimEndpoints, sim_clock: ManualClock, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[exchange]\n"
        f'rest_url = "{endpoints.rest_url}"\n'
        f'ws_market_url = "{endpoints.ws_market_url}"\n'
        f'ws_user_url = "{endpoints.ws_user_url}"\n'
        "[credentials]\n"
        f'key_name = "{endpoints.credentials.key_name}"\n'
        f"private_key = '''{endpoints.credentials.private_key}'''\n"
    )
    config.chmod(0o644)

    report = await run_doctor(config, clock=sim_clock, timeout_s=TIMEOUT_S)

    assert report.check(CONFIG).status is Status.WARN
    assert report.check(CONFIG).fix == f"chmod 600 {config}"
    assert report.check(PERMISSIONS).status is Status.OK
    assert report.exit_code == 0

    config.chmod(0o600)
    report = await run_doctor(config, clock=sim_clock, timeout_s=TIMEOUT_S)
    assert report.check(CONFIG).status is Status.OK


async def test_websocket_to_coinbase_without_tls_is_refused() -> None:
    result = await check_websocket(
        WS_MARKET,
        "ws://advanced-trade-ws.coinbase.com",
        signer=None,
        clock=ManualClock(),
        ssl_context=None,
        timeout_s=TIMEOUT_S,
    )
    assert result.status is Status.FAIL
    assert "must be reached over wss" in result.summary


async def test_a_tls_url_for_coinbase_over_http_is_refused_for_rest(
    endpoints: SimEndpoints, sim_clock: ManualClock
) -> None:
    settings = doctor_settings(endpoints, rest_url="http://api.coinbase.com")
    report = await diagnose(settings, clock=sim_clock, timeout_s=TIMEOUT_S)
    assert report.check(REST).status is Status.FAIL
    assert "must be reached over https" in report.check(REST).summary
    assert report.check(PERMISSIONS).status is Status.SKIP


# --------------------------------------------------------------------------- the real command


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """A simulated exchange in a child process (seed 11, slow market), for the CLI tests."""
    with start_sim_process(SimSettings(seed=11, rate=20)) as sim:
        yield sim


def run_cli(
    sim: SimProcess, *args: str, key_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CRYPTOJ_MODE": "live",
        "CRYPTOJ_EXCHANGE__REST_URL": sim.endpoints.rest_url,
        "CRYPTOJ_EXCHANGE__WS_MARKET_URL": sim.endpoints.ws_market_url,
        "CRYPTOJ_EXCHANGE__WS_USER_URL": sim.endpoints.ws_user_url,
        "CRYPTOJ_LOG__LEVEL": "WARNING",
    }
    if key_file is None:
        env["CRYPTOJ_CREDENTIALS__KEY_NAME"] = sim.endpoints.credentials.key_name
        env["CRYPTOJ_CREDENTIALS__PRIVATE_KEY"] = sim.endpoints.credentials.private_key
    else:
        env["CRYPTOJ_CREDENTIALS__KEY_FILE"] = str(key_file)
    return subprocess.run(
        [sys.executable, "-m", "cryptoj_tui", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_doctor_against_a_sim_process(sim_process: SimProcess) -> None:
    done = run_cli(sim_process, "doctor", "--timeout", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout
    for name in (CONFIG, API_KEY, REST, CLOCK, WS_MARKET, WS_USER, PERMISSIONS):
        assert f"OK    {name}" in done.stdout


def test_cli_doctor_json_with_a_foreign_key(sim_process: SimProcess, tmp_path: Path) -> None:
    key_name, private_key, _ = generate_demo_key("EdDSA")
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps({"name": key_name, "privateKey": private_key}))
    key_file.chmod(0o600)

    done = run_cli(sim_process, "doctor", "--json", "--timeout", "5", key_file=key_file)

    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    by_name = {check["name"]: check for check in report["checks"]}
    assert by_name[PERMISSIONS]["status"] == "FAIL"
    assert by_name[PERMISSIONS]["summary"].startswith("the key is not accepted: ")
    assert by_name[API_KEY]["status"] == "OK"
    assert private_key not in done.stdout + done.stderr
