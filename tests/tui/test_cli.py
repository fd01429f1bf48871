"""The ``cryptoj`` command line: version, help, and configuration errors (exit 2, no traceback)."""

from __future__ import annotations

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
