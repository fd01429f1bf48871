"""The ``cryptoj`` command line: version, help, and configuration errors (exit 2, no traceback)."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from core import __version__


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryptoj_tui", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cryptoj {__version__}"


def test_help_lists_the_subcommands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--config" in result.stdout
    for command in ("sim", "record", "bench-book"):
        assert command in result.stdout


def test_bad_config_value_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[exchange]\nrequest_timeout_s = "later"\n')
    result = run_cli("--config", str(config), "--version-check-only")
    # An unknown flag is argparse's usage error (exit 2) and is checked before the config.
    assert result.returncode == 2
    result = run_cli("--config", str(config), "bench-book", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line]
    assert lines == [
        f"cryptoj: config key 'exchange.request_timeout_s' = 'later': Input should be a valid "
        f"number, unable to parse string as a number (in {config} or a CRYPTOJ_* variable)"
    ]


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "absent.toml"), "bench-book", "x")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_headless_demo_runs_then_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    """`cryptoj --headless`: the demo sim child, JSON lines on stdout, a clean stop on SIGINT."""
    import json
    import os
    import signal
    import threading

    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cryptoj_tui", "--headless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[dict[str, object]] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(json.loads(line))
            if "trading allowed" in str(lines[-1].get("text", "")):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), f"never reconciled: {lines[-5:]}"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert {"stopping", "exit_cancel", "connection", "book"} <= set(kinds)
    assert all("ts" in line for line in lines)


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRYPTOJ_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **extra)
    return env


def test_a_subcommand_typo_gets_that_commands_usage(tmp_path: Path) -> None:
    """``doctor --jsn`` must show doctor's flags (--json), not the top-level usage."""
    result = run_cli("doctor", "--jsn", env=_clean_env(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("usage: cryptoj doctor "), lines
    assert "--json" in lines[0]
    assert lines[-1] == "cryptoj doctor: error: unrecognized arguments: --jsn"


def test_a_top_level_typo_before_a_command_gets_the_top_level_usage(tmp_path: Path) -> None:
    result = run_cli("--bogus", "doctor", env=_clean_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "cryptoj: error: unrecognized arguments: --bogus"


def test_no_flag_may_be_abbreviated() -> None:
    """``--liv`` must not mean ``--live``: every parser, subcommands included."""
    from cryptoj_tui.cli import build_parser

    parser = build_parser()
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    assert len(parsers) > 4
    assert all(not each.allow_abbrev for each in parsers), [p.prog for p in parsers]


def test_record_offline_says_how_many_tries_failed(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: every try is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _clean_env(
        tmp_path,
        CRYPTOJ_EXCHANGE__RECONNECT_INITIAL_S="0.01",
        CRYPTOJ_EXCHANGE__RECONNECT_MAX_S="0.02",
    )
    result = run_cli(
        "record",
        "--url",
        f"ws://127.0.0.1:{port}",
        "--duration",
        "1",
        "--out",
        str(tmp_path / "feed.jsonl"),
        env=env,
    )
    assert result.returncode == 1, result
    summary = result.stdout.strip().splitlines()[-1]
    match = re.search(r"never connected \((\d+) connection tr(?:y|ies) failed\)", summary)
    assert match is not None, summary
    assert int(match.group(1)) >= 1
    assert "reconnects: 0" not in summary
