"""The console's modes on the command line: --paper, --live (refused without a key; typed
confirmation), --replay FILE, and the configured mode."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.coinbase.auth import generate_demo_key
from core.config import Mode, Settings, load_settings
from core.engine import ExchangeEndpoints
from cryptoj_tui import console
from cryptoj_tui.cli import build_parser
from cryptoj_tui.console import ConsoleRefused, confirm_live, console_mode, run_console

# A well-formed key (the sim's demo kind): --live checks the key's format before asking.
DEMO_PRIVATE_KEY = generate_demo_key()[1]


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(None, environ={"HOME": str(tmp_path), **env})


@pytest.mark.parametrize(
    ("argv", "mode"),
    [
        ((), Mode.DEMO),
        (("--paper",), Mode.PAPER),
        (("--live",), Mode.LIVE),
        (("--replay", "session.jsonl"), Mode.REPLAY),
    ],
)
def test_flags_choose_the_mode(tmp_path: Path, argv: tuple[str, ...], mode: Mode) -> None:
    assert console_mode(args(*argv), settings(tmp_path)) is mode


def test_flags_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--paper", "--live"])


def test_configured_mode_is_used_but_live_needs_the_flag(tmp_path: Path) -> None:
    paper = settings(tmp_path, CRYPTOJ_MODE="paper")
    assert console_mode(args(), paper) is Mode.PAPER
    live = settings(tmp_path, CRYPTOJ_MODE="live")
    with pytest.raises(ConsoleRefused, match="needs --live on the command line"):
        console_mode(args(), live)
    assert console_mode(args("--live"), live) is Mode.LIVE
    replay = settings(tmp_path, CRYPTOJ_MODE="replay")
    with pytest.raises(ConsoleRefused, match="--replay FILE"):
        console_mode(args(), replay)


@pytest.mark.parametrize(
    ("typed", "confirmed"), [("LIVE\n", True), (" LIVE \n", True), ("live\n", False), ("", False)]
)
def test_live_needs_the_typed_word(typed: str, confirmed: bool) -> None:
    out = io.StringIO()
    assert confirm_live(io.StringIO(typed).readline, out) is confirmed
    assert "real money" in out.getvalue()


def test_live_prompt_survives_end_of_input() -> None:
    def closed() -> str:
        raise EOFError

    assert confirm_live(closed, io.StringIO()) is False


def test_live_without_a_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_console(args("--live"), settings(tmp_path))
    assert code == 2
    assert "--live needs a Coinbase API key" in capsys.readouterr().err


def test_live_not_confirmed_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keyed = settings(
        tmp_path,
        CRYPTOJ_CREDENTIALS__KEY_NAME="organizations/x/apiKeys/y",
        CRYPTOJ_CREDENTIALS__PRIVATE_KEY=DEMO_PRIVATE_KEY,
    )
    monkeypatch.setattr(console, "confirm_live", lambda: False)
    monkeypatch.setattr(console, "_run_app", lambda *a, **k: pytest.fail("must not start"))
    assert run_console(args("--live"), keyed) == 1
    assert "LIVE was not confirmed; nothing was started" in capsys.readouterr().err


def test_a_malformed_key_is_refused_before_live_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trader must not type LIVE and then learn the key is broken."""
    keyed = settings(
        tmp_path,
        CRYPTOJ_CREDENTIALS__KEY_NAME="organizations/x/apiKeys/y",
        CRYPTOJ_CREDENTIALS__PRIVATE_KEY="-----BEGIN EC PRIVATE KEY-----\ngarbage\n",
    )
    monkeypatch.setattr(console, "confirm_live", lambda: pytest.fail("asked for LIVE"))
    monkeypatch.setattr(console, "_run_app", lambda *a, **k: pytest.fail("must not start"))
    assert run_console(args("--live"), keyed) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cryptoj: credentials: "), lines
    assert "garbage" not in lines[0]  # the key itself is never shown


def test_each_mode_builds_its_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[Mode, ExchangeEndpoints | None, object]] = []

    def fake_run_app(
        settings: Settings, mode: Mode, endpoints: ExchangeEndpoints | None, **options: object
    ) -> int:
        started.append((mode, endpoints, options.get("market_feed")))
        return 0

    monkeypatch.setattr(console, "_run_app", fake_run_app)
    monkeypatch.setattr(console, "confirm_live", lambda: True)
    keyed = settings(
        tmp_path,
        CRYPTOJ_CREDENTIALS__KEY_NAME="organizations/x/apiKeys/y",
        CRYPTOJ_CREDENTIALS__PRIVATE_KEY=DEMO_PRIVATE_KEY,
    )
    recording = tmp_path / "session.jsonl"
    recording.write_text("")
    assert run_console(args("--paper"), keyed) == 0
    assert run_console(args("--live"), keyed) == 0
    assert run_console(args("--replay", str(recording)), keyed) == 0
    (paper, paper_endpoints, _), (live, live_endpoints, _), (replay, replay_endpoints, feed) = (
        started
    )
    assert paper is Mode.PAPER and paper_endpoints is not None
    assert paper_endpoints.credentials is None  # paper never signs anything
    assert live is Mode.LIVE and live_endpoints is not None
    assert live_endpoints.credentials is not None
    assert replay is Mode.REPLAY and replay_endpoints is None and callable(feed)


def test_replay_of_a_missing_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_console(args("--replay", str(tmp_path / "absent.jsonl")), settings(tmp_path))
    assert code == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_live_without_a_key_exits_2_in_one_line(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "cryptoj_tui", "--live"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line] == [
        "cryptoj: --live needs a Coinbase API key: set CRYPTOJ_CREDENTIALS__KEY_NAME and "
        "CRYPTOJ_CREDENTIALS__PRIVATE_KEY, or credentials.key_file in the config"
    ]


def test_headless_is_passed_down_not_kept_in_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []

    def fake_run_app(
        settings: Settings, mode: Mode, endpoints: ExchangeEndpoints | None, **options: object
    ) -> int:
        seen.append(options["headless"])
        return 0

    monkeypatch.setattr(console, "_run_app", fake_run_app)
    assert run_console(args("--paper", "--headless"), settings(tmp_path)) == 0
    assert run_console(args("--paper"), settings(tmp_path)) == 0
    assert seen == [True, False]  # one run's flag does not leak into the next
    assert not hasattr(console, "_headless")
