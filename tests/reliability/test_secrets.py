"""Secrets: the API key's private key never shows up where it could leak, and TLS stays on.

A demo session runs the real engine inside the real console (``App.run_test``) against the
simulated exchange, whose demo key is known, with a DEBUG log file: it places, fills, denies
and kills orders. Then every place that could hold the key is searched for the key's bytes:
the log file, the journal (the raw SQLite files and every row of every table), the rendered
screen (SVG export), the engine's events, exception texts (a damaged key, a refused key, a bad
config), ``cryptoj sim``'s output (it prints the key FILE's path by design, never the key) and
the committed UI snapshots.

"The key's bytes" means: the private key text, its base64 body (whole and line by line), the
DER it encodes and the raw private scalar or seed (binary and hex).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from core.clock import ManualClock
from core.coinbase.auth import JwtSigner, KeyFormatError, generate_demo_key, load_signing_key
from core.coinbase.errors import AuthenticationError
from core.coinbase.rest import CoinbaseRestClient
from core.coinbase.ws import CoinbaseWebSocket
from core.config import (
    ConfigError,
    Credentials,
    load_key_file,
    load_settings,
    resolve_credentials,
)
from core.engine import Engine, ExchangeEndpoints
from core.model import IntentSource, OrderIntent, Side
from core.order_state import OrderState
from core.sim.jwt_verify import DemoKey, KeyAlgorithm
from cryptoj_tui.app import CryptoJApp
from tests.integration.engine_harness import (
    build_engine,
    endpoints_of,
    eventually,
    in_process_sim,
    limit_spec,
    proof_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Secret:
    """One private key and every form of it that must never be found."""

    label: str
    needles: tuple[tuple[str, bytes], ...]

    def found_in(self, haystack: bytes | str) -> list[str]:
        data = haystack.encode("utf-8", "surrogatepass") if isinstance(haystack, str) else haystack
        return [name for name, needle in self.needles if needle in data]


def secret_forms(label: str, private_key: str) -> Secret:
    """The key text, its base64 body (joined and per line), the DER and the raw key bytes."""
    text = private_key.strip()
    needles: list[tuple[str, bytes]] = [("key text", text.encode())]
    if text.startswith("-----BEGIN"):
        lines = [line for line in text.splitlines() if line and not line.startswith("-----")]
        body = "".join(lines)
        needles += [(f"base64 line {i}", line.encode()) for i, line in enumerate(lines)]
        needles.append(("DER", base64.b64decode(body)))
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            raw = key.private_numbers().private_value.to_bytes(32, "big")
        else:
            assert isinstance(key, ed25519.Ed25519PrivateKey)
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
    else:  # the portal's Ed25519 form: base64 of seed || public key
        body = "".join(text.split())
        raw = base64.b64decode(body)[:32]
        needles.append(("seed base64", base64.b64encode(raw)))
    needles += [
        ("base64 body", body.encode()),
        ("raw private bytes", raw),
        ("private bytes hex", raw.hex().encode()),
    ]
    return Secret(label, tuple(needles))


def assert_no_key(secret: Secret, haystack: bytes | str, where: str) -> None:
    found = secret.found_in(haystack)
    assert not found, f"{secret.label}: {', '.join(found)} found in {where}"


@contextmanager
def debug_log(path: Path) -> Iterator[None]:
    """Everything at DEBUG, from every library, into ``path`` for the duration."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def journal_texts(path: Path) -> tuple[bytes, str]:
    """The journal's raw bytes (database, WAL and shared memory files) and every row of every
    table as text."""
    raw = b"".join(
        candidate.read_bytes()
        for candidate in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
        )
        if candidate.exists()
    )
    rows: list[str] = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        assert tables, "the journal has no tables"
        for table in tables:
            rows += [repr(row) for row in db.execute(f'SELECT * FROM "{table}"')]
    return raw, "\n".join(rows)


# --------------------------------------------------------------------------- the session


def _state(engine: Engine, client_order_id: str) -> OrderState | None:
    order = engine.orders.get(client_order_id)
    return None if order is None else order.state


async def test_a_demo_session_leaves_no_key_material_anywhere(tmp_path: Path) -> None:
    clock = ManualClock()
    log_file = tmp_path / "debug.log"
    data_dir = tmp_path / "data"
    journal_file = data_dir / "journal-demo.sqlite3"
    with debug_log(log_file):
        async with in_process_sim(clock, seed=42) as sim:
            secret = secret_forms("the sim's demo key", sim.server.demo_key.private_key)
            endpoints = endpoints_of(sim.server.endpoints)  # type: ignore[arg-type]
            assert "hidden" in repr(endpoints)  # Credentials(<hidden>)
            assert_no_key(secret, repr(endpoints), "the engine's endpoints' repr")
            # The sim's endpoints keep the demo key out of their repr altogether.
            assert_no_key(secret, repr(sim.server.endpoints), "the sim's endpoints' repr")
            assert "key_name" not in repr(sim.server.endpoints)
            engine = build_engine(proof_settings(data_dir), endpoints, clock, journal_file)
            app = CryptoJApp(
                engine, mode="demo", products=engine.products, clock=clock, cursor_blink=False
            )
            async with app.run_test(size=(160, 48)) as pilot:
                await asyncio.wait_for(engine.started.wait(), 15)
                await eventually(lambda: engine.prices.mid("BTC-USD") is not None)
                # A resting buy inside the spread, filled when the market maker sells into it.
                bought = await engine.submit(
                    OrderIntent(
                        limit_spec("BTC-USD", Side.BUY, "0.01", "67995.00"), IntentSource.MANUAL
                    )
                )
                assert bought.state is OrderState.ACCEPTED, bought
                sim.maker_takes("BTC-USD", Side.SELL, "0.01")
                await eventually(
                    lambda: _state(engine, bought.client_order_id) is OrderState.FILLED
                )
                resting = await engine.submit(
                    OrderIntent(
                        limit_spec("ETH-USD", Side.BUY, "0.1", "3480.00"), IntentSource.MANUAL
                    )
                )
                assert resting.state is OrderState.ACCEPTED, resting
                progress = await engine.kill("secrets test", "user")
                assert progress.still_open == 0
                denied = await engine.submit(
                    OrderIntent(
                        limit_spec("ETH-USD", Side.BUY, "0.1", "3480.00"), IntentSource.MANUAL
                    )
                )
                assert denied.state is OrderState.DENIED
                await pilot.pause()
                await asyncio.sleep(0.3)  # a few snapshot pulls, so the screen shows it all
                await pilot.pause()
                screen = app.export_screenshot()
                events = repr(engine.snapshot("BTC-USD"))
                await pilot.press("q")
            assert engine.journal is not None

    assert "FILL BUY 0.01" in events, events
    assert "HALTED" in screen  # the screen really shows the session
    assert_no_key(secret, screen, "the rendered screen")
    assert_no_key(secret, events, "the engine snapshot")
    log_text = log_file.read_bytes()
    assert b"core.engine" in log_text and b"DEBUG" in log_text  # the log really is verbose
    assert_no_key(secret, log_text, "the DEBUG log")
    raw, rows = journal_texts(journal_file)
    assert bought.client_order_id in rows
    assert_no_key(secret, raw, "the journal files")
    assert_no_key(secret, rows, "the journal rows")


# --------------------------------------------------------------------------- exception texts


def exception_text(error: BaseException) -> str:
    return "\n".join((str(error), repr(error), *traceback.format_exception(error)))


def _ed25519_pem() -> str:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


KEYS = {
    "ES256": DemoKey.derive(42, "ES256").private_key,
    "EdDSA": DemoKey.derive(42, "EdDSA").private_key,
    "Ed25519 PEM": _ed25519_pem(),
}


def damaged_versions(private_key: str) -> dict[str, str]:
    """Realistic ways a key gets broken: cut short, a character changed, a line lost, the
    wrong PEM header, newlines turned into spaces, quotes pasted around it."""
    text = private_key.strip()
    middle = len(text) // 2
    swapped = "A" if text[middle] != "A" else "B"
    lines = text.splitlines()
    return {
        "truncated": text[: len(text) * 2 // 3],
        "one character changed": text[:middle] + swapped + text[middle + 1 :],
        "a line missing": "\n".join(lines[:1] + lines[2:]) if len(lines) > 2 else text[1:],
        "RSA header": text.replace("EC PRIVATE KEY", "RSA PRIVATE KEY").replace(
            "BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY"
        ),
        "spaces for newlines": text.replace("\n", " "),
        "quoted": f'"{text}"',
        "doubled": text + text,
    }


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_a_damaged_key_error_does_not_show_the_key(kind: str) -> None:
    original = KEYS[kind]
    secret = secret_forms(kind, original)
    load_signing_key(original)  # the original is good
    refused = 0
    for how, damaged in damaged_versions(original).items():
        try:
            load_signing_key(damaged)
            JwtSigner(Credentials("organizations/o/apiKeys/k", damaged), ManualClock(), "h")
        except KeyFormatError as error:
            refused += 1
            # No chained parser exception: a traceback shows only our own message.
            assert error.__cause__ is None
            assert error.__context__ is None or error.__suppress_context__
            assert_no_key(secret, exception_text(error), f"the error for a {how} key")
    assert refused >= 3, "most damage must be detected (a changed seed byte is still a key)"


async def test_a_refused_key_401_does_not_show_the_key(tmp_path: Path) -> None:
    clock = ManualClock()
    async with in_process_sim(clock, seed=42) as sim:
        assert sim.server.endpoints is not None
        key_name, private_key, _ = generate_demo_key("ES256")
        secret = secret_forms("a key the exchange does not know", private_key)
        signer = JwtSigner(
            Credentials(key_name, private_key), clock, sim.server.endpoints.rest_host
        )
        assert private_key not in repr(signer)
        async with CoinbaseRestClient(sim.server.endpoints.rest_url, signer, clock=clock) as client:
            with pytest.raises(AuthenticationError) as raised:
                await client.list_accounts()
    assert raised.value.status == 401
    assert_no_key(secret, exception_text(raised.value), "the 401 error")


def test_config_errors_do_not_show_the_key(tmp_path: Path) -> None:
    private_key = KEYS["ES256"]
    secret = secret_forms("a key in a config file", private_key)
    cases = {
        "syntax error after the key": f"[credentials]\nprivate_key = '''{private_key}'''\nkey_name = \n",
        "key inside a table": f"[credentials]\nprivate_key = {{ pem = '''{private_key}''' }}\n",
        "key without a name": f"[credentials]\nprivate_key = '''{private_key}'''\n",
        "key in the wrong section": f"[exchange]\nprivate_key = '''{private_key}'''\n",
    }
    for how, toml in cases.items():
        path = tmp_path / f"{len(how)}.toml"
        path.write_text(toml)
        path.chmod(0o600)
        try:
            resolve_credentials(load_settings(path, environ={}).credentials)
        except ConfigError as error:
            assert_no_key(secret, exception_text(error), f"the config error for {how}")
        else:  # pragma: no cover - the message is the point
            raise AssertionError(f"{how}: no ConfigError")
        assert_no_key(secret, repr(load_settings(None, environ={})), "default settings")
    good = tmp_path / "good.toml"
    good.write_text(f"[credentials]\nkey_name = 'n'\nprivate_key = '''{private_key}'''\n")
    good.chmod(0o600)
    settings = load_settings(good, environ={})
    assert_no_key(secret, repr(settings) + str(settings), "the settings' repr")
    key_file = tmp_path / "key.json"
    key_file.write_text('{"name": 5, "privateKey": ' + repr(private_key).replace("'", '"') + "}")
    with pytest.raises(ConfigError) as raised:
        load_key_file(key_file)
    assert_no_key(secret, exception_text(raised.value), "the key file error")


# --------------------------------------------------------------------------- cryptoj sim


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_cryptoj_sim_prints_the_key_file_path_not_the_key(
    tmp_path: Path, algorithm: KeyAlgorithm
) -> None:
    secret = secret_forms(f"demo key {algorithm}", DemoKey.derive(5, algorithm).private_key)
    env = {**os.environ, "CRYPTOJ_STORAGE__DATA_DIR": str(tmp_path), "CRYPTOJ_LOG__LEVEL": "DEBUG"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cryptoj_tui",
            "sim",
            "--seed",
            "5",
            "--rate",
            "10",
            "--key-algorithm",
            algorithm,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip().startswith(b"key_file ="):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = b"".join(lines) + out + err
    key_file = tmp_path / "sim" / "demo-key-5.json"
    assert str(key_file).encode() in output
    assert_no_key(secret, output, "cryptoj sim's output")
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert load_key_file(key_file).private_key == DemoKey.derive(5, algorithm).private_key


# --------------------------------------------------------------------------- snapshots/


def test_committed_snapshots_hold_no_demo_key() -> None:
    files = [path for path in (REPO_ROOT / "snapshots").rglob("*") if path.is_file()]
    assert files, "no snapshots to scan"
    algorithms: tuple[KeyAlgorithm, ...] = ("ES256", "EdDSA")
    secrets = [
        secret_forms(
            f"demo key seed {seed} {algorithm}", DemoKey.derive(seed, algorithm).private_key
        )
        for seed in (0, 5, 7, 11, 42)
        for algorithm in algorithms
    ]
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert_no_key(secret, content, str(path.relative_to(REPO_ROOT)))
        assert b"PRIVATE KEY-----" not in content, path


# --------------------------------------------------------------------------- readable config


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryptoj_tui", *args],
        env={**os.environ, "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def test_a_readable_config_with_a_key_warns_once(tmp_path: Path) -> None:
    private_key = KEYS["ES256"]
    config = tmp_path / "config.toml"
    config.write_text(
        "[exchange]\n"
        'rest_url = "http://127.0.0.1:9"\n'
        'ws_market_url = "ws://127.0.0.1:9/ws"\n'
        'ws_user_url = "ws://127.0.0.1:9/ws/user"\n'
        "[credentials]\n"
        'key_name = "organizations/o/apiKeys/k"\n'
        f"private_key = '''{private_key}'''\n"
    )
    config.chmod(0o644)

    done = _cli("--config", str(config), "doctor", "--timeout", "2", cwd=tmp_path)

    warning = f"warning: {config} may hold secrets and is readable by other users"
    assert done.stderr.count(warning) == 1, done.stderr
    assert f"chmod 600 {config}" in done.stderr
    assert done.returncode == 1  # nothing listens on port 9: the doctor fails, as it should
    assert_no_key(secret_forms("config key", private_key), done.stdout + done.stderr, "output")

    config.chmod(0o600)
    quiet = _cli("--config", str(config), "doctor", "--timeout", "2", cwd=tmp_path)
    assert "readable by other users" not in quiet.stderr


def test_a_readable_config_without_a_key_does_not_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[market]\nproducts = ["BTC-USD"]\n')
    config.chmod(0o644)
    load_settings(config, environ={})
    assert "readable" not in capsys.readouterr().err

    key_file = tmp_path / "key.json"
    key_file.write_text('{"name": "n", "privateKey": "k"}')
    key_file.chmod(0o644)
    load_key_file(key_file)
    load_key_file(key_file)
    assert capsys.readouterr().err.count(f"{key_file} may hold secrets") == 1


# --------------------------------------------------------------------------- TLS stays on


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _no_hostname_check() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    return context


COINBASE_REST = (
    "https://api.coinbase.com",
    "https://API.Coinbase.com.",
    "https://api-sandbox.coinbase.com",
)
COINBASE_WS = (
    "wss://advanced-trade-ws.coinbase.com",
    "wss://advanced-trade-ws-user.coinbase.com",
    "wss://Advanced-Trade-WS.Coinbase.COM/",
)


@pytest.mark.parametrize("url", COINBASE_REST)
@pytest.mark.parametrize("verify", ["off", "unverified", "no hostname check"])
async def test_rest_tls_verification_cannot_be_disabled_for_coinbase(url: str, verify: str) -> None:
    options: dict[str, ssl.SSLContext | bool] = {
        "off": False,
        "unverified": _unverified(),
        "no hostname check": _no_hostname_check(),
    }
    with pytest.raises(ValueError, match="TLS certificate verification cannot be disabled"):
        CoinbaseRestClient(url, None, clock=ManualClock(), verify=options[verify])


async def test_rest_plain_http_to_coinbase_is_refused() -> None:
    with pytest.raises(ValueError, match="must be reached over https"):
        CoinbaseRestClient("http://api.coinbase.com", None, clock=ManualClock())


class _NullSink:
    """A FrameSink that ignores everything (the constructor is what is tested)."""

    def on_connected(self, control: object) -> None:
        """Ignored."""

    def on_frame(self, frame: str | bytes) -> None:
        """Ignored."""

    def on_disconnected(self, reason: str) -> None:
        """Ignored."""


@pytest.mark.parametrize("url", COINBASE_WS)
@pytest.mark.parametrize("context", ["unverified", "no hostname check"])
async def test_websocket_tls_verification_cannot_be_disabled_for_coinbase(
    url: str, context: str
) -> None:
    ssl_context = _unverified() if context == "unverified" else _no_hostname_check()
    with pytest.raises(ValueError, match="TLS certificate verification cannot be disabled"):
        CoinbaseWebSocket(
            "market", url, [], _NullSink(), clock=ManualClock(), ssl_context=ssl_context
        )


async def test_websocket_plain_ws_to_coinbase_is_refused() -> None:
    with pytest.raises(ValueError, match="must be reached over wss"):
        CoinbaseWebSocket(
            "market", "ws://advanced-trade-ws.coinbase.com", [], _NullSink(), clock=ManualClock()
        )


async def test_verified_contexts_and_other_hosts_are_allowed(tmp_path: Path) -> None:
    """A verifying context (e.g. one trusting an extra CA) is fine for Coinbase; the local sim
    may be reached over plain ws/http or with its self-signed certificate."""
    CoinbaseWebSocket(
        "market",
        COINBASE_WS[0],
        [],
        _NullSink(),
        clock=ManualClock(),
        ssl_context=ssl.create_default_context(),
    )
    CoinbaseWebSocket("market", "ws://127.0.0.1:1/ws", [], _NullSink(), clock=ManualClock())
    CoinbaseWebSocket(
        "market",
        "wss://127.0.0.1:1/ws",
        [],
        _NullSink(),
        clock=ManualClock(),
        ssl_context=_unverified(),
    )
    async with CoinbaseRestClient("http://127.0.0.1:1", None, clock=ManualClock(), verify=False):
        pass
    endpoints = ExchangeEndpoints(
        "https://api.coinbase.com",
        COINBASE_WS[0],
        COINBASE_WS[1],
        None,
    )
    assert endpoints.ssl_context() is None  # no override: the system's verified defaults


def test_no_setting_turns_tls_verification_off() -> None:
    """The settings have no switch for it: the only TLS knob is an extra CA to trust."""
    settings = load_settings(None, environ={})
    names = {name.lower() for name in type(settings.exchange).model_fields}
    assert not {name for name in names if "verify" in name or "insecure" in name or "ssl" in name}
    with pytest.raises(ConfigError, match="is not a setting"):
        load_settings(None, overrides={"exchange": {"verify_tls": False}}, environ={})
