"""``cryptoj doctor``: is this setup able to trade, and if not, what exactly to fix.

Five checks, in the order a problem in one hides the next:

1. config: the settings load (``load_settings``), and a file holding secrets is not readable
   by other users;
2. API key: the key resolves (environment, TOML or key file) and its private key is in a
   format Coinbase signs with (``core.coinbase.auth.load_signing_key``);
3. REST and clock: ``GET /time`` answers, and the local clock is within 5 s (WARN) or 30 s
   (FAIL) of the exchange's, because JWTs are valid for 120 s from the local clock's "now";
4. WebSockets: both sockets (market data and user data) connect and deliver a heartbeat after
   subscribing to ``heartbeats``;
5. permissions: ``GET /key_permissions`` accepts the key, which can view and trade.

Each check gives OK, WARN or FAIL (SKIP when an earlier failure makes it pointless) with one
line saying what was found and, when not OK, one line saying what to do. It talks to the
exchange through the same client code the console uses (``CoinbaseRestClient``,
``CoinbaseWebSocket``), so TLS rules and signing are the ones that matter. No key material is
ever part of a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from websockets.exceptions import InvalidURI

from core.clock import Clock
from core.coinbase.auth import JwtSigner, KeyFormatError, rest_host_from_url
from core.coinbase.errors import AuthenticationError, CoinbaseError, PermissionDeniedError
from core.coinbase.market_messages import ErrorMessage, HeartbeatMessage, decode_market_message
from core.coinbase.rest import CoinbaseRestClient
from core.coinbase.stream import ConnectionControl
from core.coinbase.ws import CoinbaseWebSocket
from core.config import (
    ConfigError,
    Mode,
    Settings,
    default_config_path,
    load_settings,
    resolve_credentials,
    world_readable_secret_warning,
)

CLOCK_WARN_S: Final = 5.0
CLOCK_FAIL_S: Final = 30.0
DEFAULT_TIMEOUT_S: Final = 10.0
# How often the WebSocket check looks at its socket while waiting for the first heartbeat.
_POLL_S: Final = 0.02
# The portal's key name form; newer CDP tooling also shows bare UUIDs (docs/coinbase-protocol.md §1.1).
_KEY_NAME = re.compile(
    r"^(organizations/[^/\s]+/apiKeys/[^/\s]+|"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
_NEW_KEY_FIX: Final = (
    "create a Secret API key (ECDSA or Ed25519) in the Coinbase Developer Platform portal and "
    "set credentials.key_file to the JSON file it downloads (legacy and Exchange keys do not "
    "work with Advanced Trade)"
)


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not run: an earlier failure makes its answer meaningless


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: what was found (``summary``) and, unless OK, what to do (``fix``)."""

    name: str
    status: Status
    summary: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class DoctorReport:
    target: str  # the REST URL the checks talked to ("" when the config did not load)
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(check.status is not Status.FAIL for check in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when nothing failed (warnings allowed), else 1."""
        return 0 if self.ok else 1

    def check(self, name: str) -> CheckResult:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "checks": [{**asdict(check), "status": check.status.value} for check in self.checks],
        }

    def render(self) -> str:
        """The report as the terminal shows it: one line per check, a fix line under each."""
        width = max(len(check.name) for check in self.checks)
        lines = [f"cryptoj doctor: {self.target or 'no exchange (configuration failed)'}"]
        for check in self.checks:
            lines.append(f"  {check.status.value:<4}  {check.name:<{width}}  {check.summary}")
            if check.fix and check.status is not Status.OK:
                lines.append(f"  {'':<4}  {'':<{width}}  fix: {check.fix}")
        failed = sum(check.status is Status.FAIL for check in self.checks)
        warned = sum(check.status is Status.WARN for check in self.checks)
        if failed:
            lines.append(f"{failed} check(s) failed, {warned} warning(s)")
        elif warned:
            lines.append(f"no failures, {warned} warning(s)")
        else:
            lines.append("all checks passed")
        return "\n".join(lines)


# Check names, as shown and as the JSON output keys them.
CONFIG = "config"
API_KEY = "API key"
REST = "REST"
CLOCK = "clock"
WS_MARKET = "WS market"
WS_USER = "WS user"
PERMISSIONS = "permissions"


async def run_doctor(
    config_path: Path | None,
    *,
    clock: Clock,
    overrides: dict[str, Any] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DoctorReport:
    """Load the settings from ``config_path`` (as the CLI does) and run every check."""
    try:
        settings = load_settings(config_path, overrides=overrides)
    except ConfigError as error:
        failed = CheckResult(
            CONFIG,
            Status.FAIL,
            str(error).replace("\n", "; "),
            "correct the key named above; config.example.toml lists every setting",
        )
        return DoctorReport("", (failed, *_skipped("the configuration does not load")))
    return await diagnose(
        settings,
        clock=clock,
        config_path=config_path,
        ssl_context=ssl_context,
        timeout_s=timeout_s,
    )


async def diagnose(
    settings: Settings,
    *,
    clock: Clock,
    config_path: Path | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DoctorReport:
    """Run the checks for already loaded ``settings`` against ``settings.exchange``."""
    checks = [check_config_file(settings, config_path)]
    key_check, signer = check_api_key(settings, clock)
    checks.append(key_check)
    target = settings.exchange.rest_url
    try:
        client = CoinbaseRestClient.from_settings(
            settings.exchange,
            signer,
            clock=clock,
            verify=ssl_context if ssl_context is not None else True,
            retry_attempts=0,
        )
    except ValueError as error:  # e.g. TLS verification off or plain http for coinbase.com
        sockets = await _check_websockets(settings, signer, clock, ssl_context, timeout_s)
        checks += [
            CheckResult(REST, Status.FAIL, str(error), "fix exchange.rest_url"),
            CheckResult(CLOCK, Status.SKIP, "needs the REST API"),
            *sockets,
            CheckResult(PERMISSIONS, Status.SKIP, "needs the REST API"),
        ]
        return DoctorReport(target, tuple(checks))
    async with client:
        rest_check, clock_check = await check_rest_and_clock(client, timeout_s)
        sockets = await _check_websockets(settings, signer, clock, ssl_context, timeout_s)
        checks += [rest_check, clock_check, *sockets]
        if signer is None:
            checks.append(CheckResult(PERMISSIONS, Status.SKIP, "no usable API key to check"))
        elif rest_check.status is Status.FAIL:
            checks.append(CheckResult(PERMISSIONS, Status.SKIP, "the REST API is not reachable"))
        else:
            checks.append(await check_permissions(client, timeout_s))
    return DoctorReport(target, tuple(checks))


# --------------------------------------------------------------------------- config and key


def check_config_file(settings: Settings, config_path: Path | None) -> CheckResult:
    """Which file was read, and whether it holds secrets that other users can read."""
    path = config_path if config_path is not None else default_config_path()
    mode = f"mode {settings.mode.value}"
    if path is None or not path.exists():
        return CheckResult(CONFIG, Status.OK, f"no config file, defaults and environment ({mode})")
    credentials = settings.credentials
    holds_secret = credentials.private_key is not None or credentials.key_name is not None
    warning = world_readable_secret_warning(path) if holds_secret else None
    if warning is not None:
        return CheckResult(
            CONFIG,
            Status.WARN,
            f"{path} holds the API key and other users can read it ({mode})",
            f"chmod 600 {path}",
        )
    return CheckResult(CONFIG, Status.OK, f"loaded {path} ({mode})")


def check_api_key(settings: Settings, clock: Clock) -> tuple[CheckResult, JwtSigner | None]:
    """The key resolves and its private key loads; returns the signer the later checks use."""
    try:
        credentials = resolve_credentials(settings.credentials)
    except ConfigError as error:
        return CheckResult(API_KEY, Status.FAIL, str(error), _NEW_KEY_FIX), None
    if credentials is None:
        needed = settings.mode is Mode.LIVE
        return (
            CheckResult(
                API_KEY,
                Status.FAIL if needed else Status.WARN,
                "no API key configured" + ("" if needed else " (only --live needs one)"),
                "set CRYPTOJ_CREDENTIALS__KEY_FILE (or credentials.key_file) to the key file "
                "from the Coinbase Developer Platform portal",
            ),
            None,
        )
    try:
        host = rest_host_from_url(settings.exchange.rest_url)
    except ValueError:
        host = "unusable-rest-url"  # the REST check reports the URL; this check is the key's
    try:
        signer = JwtSigner(credentials, clock, host)
    except KeyFormatError as error:
        return CheckResult(
            API_KEY, Status.FAIL, f"the private key is unusable: {error}", _NEW_KEY_FIX
        ), None
    kind = "ECDSA P-256 (ES256)" if signer.algorithm == "ES256" else "Ed25519 (EdDSA)"
    key_file = settings.credentials.key_file
    file_warning = world_readable_secret_warning(key_file) if key_file is not None else None
    if file_warning is not None:
        summary = f"{kind} key loads, but other users can read {key_file}"
        return CheckResult(API_KEY, Status.WARN, summary, f"chmod 600 {key_file}"), signer
    if not _KEY_NAME.match(credentials.key_name):
        return (
            CheckResult(
                API_KEY,
                Status.WARN,
                f"{kind} key loads, but its name is not of the form "
                "organizations/{org_id}/apiKeys/{key_id}",
                "use the key name exactly as the portal gives it (the 'name' in the key file)",
            ),
            signer,
        )
    return CheckResult(API_KEY, Status.OK, f"{kind} key loads"), signer


# --------------------------------------------------------------------------- REST and clock


async def check_rest_and_clock(
    client: CoinbaseRestClient, timeout_s: float
) -> tuple[CheckResult, CheckResult]:
    """One ``GET /time``: does REST answer, and how far is our clock from the exchange's."""
    try:
        async with asyncio.timeout(timeout_s):
            offset = await client.measure_clock_offset()
    except (CoinbaseError, TimeoutError) as error:
        reason = str(error) or f"no answer within {timeout_s:.0f} s"
        return (
            CheckResult(
                REST,
                Status.FAIL,
                f"GET /time failed: {reason}",
                "check exchange.rest_url, the network and any proxy or firewall",
            ),
            CheckResult(CLOCK, Status.SKIP, "needs the exchange's time"),
        )
    rest = CheckResult(REST, Status.OK, "GET /time answered")
    return rest, clock_result(offset)


def clock_result(offset_s: float) -> CheckResult:
    """Judge ``offset_s`` = exchange clock minus local clock."""
    size = abs(offset_s)
    direction = "behind" if offset_s > 0 else "ahead of"
    summary = f"local clock is {size:.1f} s {direction} the exchange's"
    fix = "turn on time synchronisation (e.g. timedatectl set-ntp true) and check the time zone"
    if size > CLOCK_FAIL_S:
        return CheckResult(CLOCK, Status.FAIL, f"{summary}; tokens will be refused (401)", fix)
    if size > CLOCK_WARN_S:
        return CheckResult(CLOCK, Status.WARN, summary, fix)
    return CheckResult(CLOCK, Status.OK, summary)


# --------------------------------------------------------------------------- WebSockets


class _FirstHeartbeat:
    """A ``FrameSink`` that waits for the first heartbeat (or an error message)."""

    def __init__(self) -> None:
        self.heartbeat = False
        self.error: str | None = None
        self.answered = asyncio.Event()

    def on_connected(self, control: ConnectionControl) -> None:
        """Nothing to do: the subscriptions were sent by the connection."""

    def on_disconnected(self, reason: str) -> None:
        """The connection's own status says why; the check reads it from there."""

    def on_frame(self, frame: str | bytes) -> None:
        message = decode_market_message(frame)
        if isinstance(message, HeartbeatMessage):
            self.heartbeat = True
            self.answered.set()
        elif isinstance(message, ErrorMessage):
            self.error = message.message or "error message without text"
            self.answered.set()

    async def wait(self, socket: CoinbaseWebSocket) -> None:
        """Until a heartbeat or an error arrives, or the first connection attempt fails (the
        socket would retry forever; one failed attempt is the doctor's answer)."""
        while socket.status.attempt == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), _POLL_S)
                return


async def check_websocket(
    name: str,
    url: str,
    *,
    signer: JwtSigner | None,
    clock: Clock,
    ssl_context: ssl.SSLContext | None,
    timeout_s: float,
    max_message_bytes: int = 64 * 1024 * 1024,
) -> CheckResult:
    """Connect to ``url``, subscribe to heartbeats, wait for one (one attempt, no retries)."""
    sink = _FirstHeartbeat()
    try:
        socket = CoinbaseWebSocket(
            name,
            url,
            [],  # the connection always adds heartbeats
            sink,
            clock=clock,
            token_factory=signer.ws_token if signer is not None else None,
            ssl_context=ssl_context,
            max_message_bytes=max_message_bytes,
            open_timeout_s=timeout_s,
        )
    except (ValueError, InvalidURI) as error:
        return CheckResult(name, Status.FAIL, str(error), "fix the WebSocket URL in [exchange]")
    runner = asyncio.create_task(socket.run(), name=f"doctor-{name}")
    try:
        async with asyncio.timeout(timeout_s):
            await sink.wait(socket)
    except TimeoutError:
        pass
    finally:
        await socket.stop()
        await runner
    fix = "check the exchange.ws_*_url settings, the network and any proxy or firewall"
    if sink.error is not None:
        return CheckResult(name, Status.FAIL, f"{url} answered: {sink.error}", fix)
    if sink.heartbeat:
        return CheckResult(name, Status.OK, f"{url}: subscribed, heartbeat received")
    why = socket.status.last_error or f"no heartbeat within {timeout_s:.0f} s"
    return CheckResult(name, Status.FAIL, f"{url}: {why}", fix)


async def _check_websockets(
    settings: Settings,
    signer: JwtSigner | None,
    clock: Clock,
    ssl_context: ssl.SSLContext | None,
    timeout_s: float,
) -> list[CheckResult]:
    exchange = settings.exchange
    results = await asyncio.gather(
        *(
            check_websocket(
                name,
                url,
                signer=signer,
                clock=clock,
                ssl_context=ssl_context,
                timeout_s=timeout_s,
                max_message_bytes=exchange.ws_max_message_bytes,
            )
            for name, url in ((WS_MARKET, exchange.ws_market_url), (WS_USER, exchange.ws_user_url))
        )
    )
    return list(results)


# --------------------------------------------------------------------------- permissions


async def check_permissions(client: CoinbaseRestClient, timeout_s: float) -> CheckResult:
    """``GET /key_permissions``: the key is accepted, can view and can trade."""
    try:
        async with asyncio.timeout(timeout_s):
            permissions = await client.get_key_permissions()
    except AuthenticationError as error:
        return CheckResult(
            PERMISSIONS,
            Status.FAIL,
            f"the key is not accepted: {error}",
            "check that the key name and the private key belong to the same key, that the key "
            "was not deleted, and the clock check above; " + _NEW_KEY_FIX,
        )
    except PermissionDeniedError as error:
        return CheckResult(
            PERMISSIONS,
            Status.FAIL,
            f"the key may not read its permissions: {error}",
            "give the key the View and Trade permissions in the portal",
        )
    except (CoinbaseError, TimeoutError) as error:
        reason = str(error) or f"no answer within {timeout_s:.0f} s"
        return CheckResult(
            PERMISSIONS, Status.FAIL, f"GET /key_permissions failed: {reason}", "try again later"
        )
    missing = [
        name
        for name, allowed in (("view", permissions.can_view), ("trade", permissions.can_trade))
        if not allowed
    ]
    if missing:
        return CheckResult(
            PERMISSIONS,
            Status.FAIL,
            f"the key cannot {' or '.join(missing)}",
            "create a key with the View and Trade permissions in the portal",
        )
    if permissions.can_transfer:
        return CheckResult(
            PERMISSIONS,
            Status.WARN,
            "the key can view and trade, and can also transfer funds",
            "CryptoJ never transfers: use a key without the Transfer permission",
        )
    return CheckResult(PERMISSIONS, Status.OK, "the key is accepted and can view and trade")


# --------------------------------------------------------------------------- helpers

_ORDER: Final = (CONFIG, API_KEY, REST, CLOCK, WS_MARKET, WS_USER, PERMISSIONS)


def _skipped(why: str, names: Sequence[str] = _ORDER[1:]) -> list[CheckResult]:
    return [CheckResult(name, Status.SKIP, why) for name in names]


__all__ = [
    "CLOCK_FAIL_S",
    "CLOCK_WARN_S",
    "CheckResult",
    "DoctorReport",
    "Status",
    "check_api_key",
    "check_config_file",
    "check_permissions",
    "check_rest_and_clock",
    "check_websocket",
    "clock_result",
    "diagnose",
    "run_doctor",
]
