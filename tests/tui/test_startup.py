"""Start-up (issue 11: from ``cryptoj`` to the first prices in about 2x a bare Textual app).

What makes it fast, held by tests so it cannot quietly regress: the demo's simulated exchange
is started before the console loads anything heavy and gets its settings from the console
once they are loaded; the console never imports the sim's web server; the first frame, before
any data, says what is going on ("connecting", "—") and never shows zeros. The figures are in
``scripts/bench_startup.py``. The child's own boot is held by tests/integration/test_sim_child.py.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.clock import SystemClock
from core.config import Mode, SimSettings, load_settings
from core.engine import Engine, ExchangeEndpoints
from core.sim.jwt_verify import DemoKey
from core.sim.launcher import SimLaunchError, early_sim_command, spawn_sim_process
from cryptoj_tui import console
from cryptoj_tui.app import CryptoJApp
from cryptoj_tui.cli import build_parser
from tests.processes import process_running

REPO_ROOT = Path(__file__).resolve().parents[2]


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRYPTOJ_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **extra)
    return env


def _run_python(
    *arguments: str, home: Path, cwd: Path = REPO_ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python ARGUMENTS`` in a fresh interpreter, with HOME (and the config dir) in
    ``home``, no CRYPTOJ_* variable but ``env``; its output as text."""
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=_clean_env(home, **env),
    )


def _modules_after(code: str) -> set[str]:
    """The modules loaded in a fresh interpreter after running ``code``."""
    script = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO_ROOT,
    )
    return set(done.stdout.split())


def _wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not process_running(pid)


# ------------------------------------------------------------------------ what is imported


def test_the_console_never_imports_the_sims_web_server() -> None:
    """aiohttp (and the sim's server) run in the child only; importing them in the console
    cost ~0.25 s of its start-up."""
    loaded = _modules_after(
        "import cryptoj_tui.cli, cryptoj_tui.console, cryptoj_tui.app, core.engine, "
        "core.sim.launcher, core.sim.endpoints"
    )
    assert not {name for name in loaded if name == "aiohttp" or name.startswith("aiohttp.")}
    assert "core.sim.server" not in loaded
    assert "hypothesis" not in loaded  # a test dependency has no business at start-up


def test_the_launcher_imports_only_the_standard_library() -> None:
    """``cryptoj`` starts the demo's child before anything heavy: the launcher must not pull
    in the settings (pydantic), the sim, or the web framework."""
    loaded = _modules_after("import core.sim.launcher")
    ours = {name for name in loaded if name.startswith("core.")}
    assert ours == {"core.sim.launcher"} | {"core.sim"}, ours
    assert not {name for name in loaded if name.split(".")[0] in {"pydantic", "aiohttp", "orjson"}}


def test_the_console_leaves_httpx_command_line_client_out(tmp_path: Path) -> None:
    """``cryptoj`` runs with httpx's CLI (click, pygments, rich's syntax highlighter) kept out
    of its start-up, and httpx's HTTP client still works."""
    script = textwrap.dedent(
        """
        import sys
        from cryptoj_tui import cli, console

        def run_console(args, settings):
            args.demo_sim.cancel()
            import core.engine, cryptoj_tui.app, httpx
            client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(204)))
            print(client.get("http://x/").status_code)
            print(" ".join(n for n in ("click", "pygments", "rich.syntax") if n in sys.modules))
            return 0

        console.run_console = run_console
        sys.exit(cli.main([]))
        """
    )
    done = _run_python("-c", script, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["204", ""], done.stdout


def test_only_a_plain_http_exchange_skips_loading_the_system_certificates() -> None:
    """The demo's REST client (plain http to the sim) is not made to parse the system's CA
    bundle; its TLS context still verifies, and trusts no one (fails closed). https keeps the
    system's certificate authorities."""
    import ssl

    from core.engine import _rest_verify

    assert _rest_verify("https://api.coinbase.com") is True
    assert _rest_verify("https://127.0.0.1:8123") is True
    context = _rest_verify("http://127.0.0.1:8123")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs() == []


# ------------------------------------------------------------------- the child, started early


def test_the_demo_child_starts_before_the_settings_are_loaded(tmp_path: Path) -> None:
    """``cryptoj`` (demo) spawns the child first, with nothing but the launcher imported; a
    configuration refused afterwards still gets its one line and exit 2, and the child is
    gone."""
    data_file = tmp_path / "a-file"
    data_file.write_text("")
    script = textwrap.dedent(
        """
        import sys
        from core.sim import launcher
        spawned = []
        real_spawn = launcher.spawn_sim_process

        def spy(command):
            pending = real_spawn(command)
            spawned.append(pending)
            print("spawned", "core.config" in sys.modules, "textual" in sys.modules,
                  pending.pid, " ".join(command[1:]), flush=True)
            return pending

        launcher.spawn_sim_process = spy
        from cryptoj_tui.cli import main
        code = main(["--headless"])
        print("exit", code, flush=True)
        """
    )
    done = _run_python("-c", script, home=tmp_path, CRYPTOJ_STORAGE__DATA_DIR=str(data_file))
    lines = done.stdout.splitlines()
    assert lines[0].startswith("spawned False False "), lines
    child_pid = int(lines[0].split()[3])
    assert "-m core.sim --settings-on-stdin" in lines[0]
    assert lines[-1] == "exit 2", done
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("cryptoj: config key 'storage.data_dir'")
    assert _wait_gone(child_pid), "the early child outlived a refused start"


def test_the_early_child_runs_with_the_configured_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its port and seed come from the TOML file and the environment, as cryptoj's do: the
    console loads them and hands them to the child it started before that."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "config.toml"
    config.write_text(f"[sim]\nport = {port}\nrate = 20.0\n")
    settings = load_settings(
        config,
        environ={
            "HOME": str(tmp_path),
            "CRYPTOJ_SIM__SEED": "3",
            "CRYPTOJ_STORAGE__DATA_DIR": str(tmp_path / "data"),
        },
    )
    seen: list[ExchangeEndpoints | None] = []

    def fake_run_app(
        settings: object, mode: Mode, endpoints: ExchangeEndpoints | None, **options: object
    ) -> int:
        seen.append(endpoints)
        return 0

    monkeypatch.setattr(console, "_run_app", fake_run_app)
    arguments = build_parser().parse_args([])
    arguments.demo_sim = spawn_sim_process(early_sim_command())
    try:
        assert console.run_console(arguments, settings) == 0
    finally:
        arguments.demo_sim.cancel()
    [endpoints] = seen
    assert endpoints is not None
    assert endpoints.rest_url == f"http://127.0.0.1:{port}"
    # The demo key is the seed's: the child got CRYPTOJ_SIM__SEED.
    assert endpoints.credentials is not None
    assert endpoints.credentials.private_key == DemoKey.derive(3).private_key
    assert _wait_gone(arguments.demo_sim.pid)  # the demo stopped it on the way out


def test_the_console_refuses_a_taken_sim_port_in_one_line(tmp_path: Path) -> None:
    """The early child no longer reads the configuration, so the console checks the sim's
    address itself: one line, exit 2, and the child it started is gone."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_python(
            "-m",
            "cryptoj_tui",
            "--headless",
            home=tmp_path,
            CRYPTOJ_SIM__PORT=str(port),
            CRYPTOJ_STORAGE__DATA_DIR=str(tmp_path / "data"),
            CRYPTOJ_LOG__FILE=str(tmp_path / "cryptoj.log"),
        )
    assert done.returncode == 2, done
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"cryptoj: cannot listen on 127.0.0.1:{port} (Address already")
    assert "sim.port" in errors[0]


def test_an_early_child_that_loses_the_port_says_so_in_one_line(tmp_path: Path) -> None:
    """The console's check passed, then another program took the port before the child
    listened: the child's one line, exit code 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pending = spawn_sim_process(early_sim_command())
        pending.send_settings(SimSettings(port=port))
        with pytest.raises(SimLaunchError) as raised:
            pending.ready(timeout_s=30)
    pending.cancel()  # as the console does once it is over: the failure's log stays
    assert pending.log_path.exists()
    pending.log_path.unlink()
    assert raised.value.exit_code == 2
    message = str(raised.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port} (")
    assert "address already in use" in message.lower()
    assert "pick another sim.port" in message and "\n" not in message
    assert _wait_gone(pending.pid)


def test_the_child_is_the_installed_sim_whatever_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cryptoj started in a directory holding another ``core`` package (an older checkout):
    the child must still be this cryptoj's sim, not that one."""
    impostor = tmp_path / "core" / "sim"
    impostor.mkdir(parents=True)
    (tmp_path / "core" / "__init__.py").write_text("")
    (impostor / "__init__.py").write_text("")
    (impostor / "__main__.py").write_text(
        'print(\'{"event": "error", "message": "the impostor ran"}\', flush=True)\n'
    )
    monkeypatch.chdir(tmp_path)
    pending = spawn_sim_process(early_sim_command())
    pending.send_settings(SimSettings())
    with pending.ready(timeout_s=30) as sim:
        assert sim.endpoints.credentials.private_key == DemoKey.derive(7).private_key


def test_the_child_runs_the_consoles_code_whichever_copy_that_is(tmp_path: Path) -> None:
    """A console importing another copy of the sources (a checkout on its path, not the
    installed one): its child must run that copy too, not the installed cryptoj."""
    import shutil

    checkout = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "core", checkout / "core")
    endpoints_copy = checkout / "core" / "sim" / "endpoints.py"
    endpoints_copy.write_text(
        endpoints_copy.read_text().replace(
            'DEMO_USER_ID: Final = "demo-user"', 'DEMO_USER_ID: Final = "the-copy"'
        )
    )
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(checkout)!r})
        from core.sim.launcher import early_sim_command, spawn_sim_process
        from core.sim.options import SimOptions
        pending = spawn_sim_process(early_sim_command())
        pending.send_settings(SimOptions(seed=7, rate=20.0, host="127.0.0.1", port=0, tls=False))
        with pending.ready(timeout_s=30) as sim:
            print(sim.endpoints.user_id)
        """
    )
    done = _run_python("-P", "-c", script, home=tmp_path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["the-copy"]


def test_an_installed_cryptoj_puts_no_site_directory_ahead_of_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.sim import launcher

    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setattr(launcher, "_site_directories", lambda: {launcher._PROJECT_ROOT})
    assert launcher._child_env()["PYTHONPATH"] == "/somewhere"
    monkeypatch.setattr(launcher, "_site_directories", lambda: set())
    assert launcher._child_env()["PYTHONPATH"].split(os.pathsep) == [
        launcher._PROJECT_ROOT,
        "/somewhere",
    ]


_PARENT_OF_A_BOOTING_CHILD = """
import sys, time
from core.sim.launcher import early_sim_command, spawn_sim_process
pending = spawn_sim_process(early_sim_command())
print(pending.pid, pending.log_path, flush=True)
time.sleep(60)
"""


def test_a_child_still_booting_dies_with_its_parent(tmp_path: Path) -> None:
    """SIGKILL the parent before it sent the child its settings, so before the child ever
    said it is ready: no orphan."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT_OF_A_BOOTING_CHILD],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=_clean_env(tmp_path),
    )
    assert parent.stdout is not None
    pid_text, log_path = parent.stdout.readline().split()
    child_pid = int(pid_text)
    assert process_running(child_pid)
    parent.kill()
    parent.wait()
    assert _wait_gone(child_pid)
    Path(log_path).unlink(missing_ok=True)


def test_cancel_stops_a_child_not_handed_over_only(tmp_path: Path) -> None:
    pending = spawn_sim_process(early_sim_command())
    pending.cancel()
    assert _wait_gone(pending.pid, timeout_s=5)
    assert not pending.log_path.exists()  # not wanted is not a failure: no log left behind
    with pytest.raises(SimLaunchError):
        pending.ready(timeout_s=5)
    pending.send_settings(SimSettings())  # to a child that is gone: nothing happens
    handed = spawn_sim_process(early_sim_command())
    handed.send_settings(SimSettings())
    with handed.ready(timeout_s=30) as sim:
        handed.cancel()  # after the hand-over: not ours to stop any more
        assert sim.alive


class _PendingSpy:
    def __init__(self) -> None:
        self.cancelled = 0

    def cancel(self) -> None:
        self.cancelled += 1


def test_a_configured_mode_other_than_demo_stops_the_early_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Mode] = []

    def fake_run_app(settings: object, mode: Mode, endpoints: object, **options: object) -> int:
        started.append(mode)
        return 0

    monkeypatch.setattr(console, "_run_app", fake_run_app)
    spy = _PendingSpy()
    arguments = build_parser().parse_args([])
    arguments.demo_sim = spy
    paper = load_settings(None, environ={"HOME": str(tmp_path), "CRYPTOJ_MODE": "paper"})
    assert console.run_console(arguments, paper) == 0
    assert started == [Mode.PAPER] and spy.cancelled == 1


# ------------------------------------------------------------------ the first frame, no data


@pytest.fixture
def silent_exchange() -> Iterator[int]:
    """A port that accepts connections and never answers: the engine stays "connecting"."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _screen_rows(svg: str) -> list[str]:
    """The text of an exported screenshot, row by row."""
    rows: dict[float, list[str]] = {}
    for y, text in re.findall(r'<text[^>]*y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(y), []).append(html.unescape(re.sub("<[^>]+>", "", text)))
    return ["".join(parts).replace("\xa0", " ") for _, parts in sorted(rows.items())]


async def test_the_first_frame_before_any_data_says_connecting_not_zero(
    tmp_path: Path, silent_exchange: int
) -> None:
    url = f"127.0.0.1:{silent_exchange}"
    settings = load_settings(
        None, environ={"HOME": str(tmp_path), "CRYPTOJ_STORAGE__DATA_DIR": str(tmp_path)}
    )
    endpoints = ExchangeEndpoints(
        rest_url=f"http://{url}",
        ws_market_url=f"ws://{url}/ws",
        ws_user_url=f"ws://{url}/ws/user",
        credentials=DemoKey.derive(7).credentials,
    )
    clock = SystemClock()
    engine = Engine(
        settings, endpoints, clock=clock, mode=Mode.DEMO, journal_file=tmp_path / "j.sqlite3"
    )
    app = CryptoJApp(engine, mode=Mode.DEMO, products=engine.products, clock=clock)
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        rows = _screen_rows(app.export_screenshot())
        await app.action_quit()
    screen = "\n".join(rows)
    assert "connecting" in app.main_screen.status_bar.text
    assert "waiting for a connection" in screen  # the book says why it is empty
    assert "positions — (account not loaded yet)" in screen
    assert "balances — (not loaded yet)" in screen
    assert "equity — · day —" in screen
    # No number stands in for an unknown: no price, size, P&L or headroom of 0.
    for row in rows:
        if "order rate" in row or "open orders" in row or " lag " in row:
            continue  # counted or measured locally: known, not unknown
        assert not re.search(r"(?<![\d:])0(?:[.,]0+)?(?![\d:])", row), row
    assert not re.search(r"\d{1,3}(?:,\d{3})+\.\d{2}", screen)  # no price either


def test_parse_of_no_arguments_is_the_demo() -> None:
    """The early start keys off the command line alone: no flag, no subcommand."""
    from cryptoj_tui.cli import start_demo_sim_early

    for argv in (["--paper"], ["--live"], ["--replay", "x.jsonl"], ["doctor"]):
        assert start_demo_sim_early(build_parser().parse_args(argv)) is None
    assert isinstance(build_parser().parse_args([]), argparse.Namespace)


def test_the_collector_is_off_for_the_start_up_and_on_when_the_console_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cli.main`` turns the cyclic collector off while the console starts (imports, the
    engine) and it must be on again, the start-up heap frozen, once the console runs: off
    for good, every reference cycle made in a day's session would be kept."""
    import gc

    from cryptoj_tui.app import CryptoJApp
    from cryptoj_tui.cli import main

    seen: list[tuple[bool, int]] = []

    def run(app: CryptoJApp) -> None:
        seen.append((gc.isenabled(), gc.get_freeze_count()))

    for key in [key for key in os.environ if key.startswith("CRYPTOJ_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("CRYPTOJ_STORAGE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRYPTOJ_LOG__FILE", str(tmp_path / "cryptoj.log"))
    monkeypatch.setattr(CryptoJApp, "run", run)
    disabled_at_start: list[bool] = []
    real_run_console = console.run_console

    def spy_run_console(args: argparse.Namespace, settings: object) -> int:
        disabled_at_start.append(not gc.isenabled())
        return real_run_console(args, settings)  # type: ignore[arg-type]

    monkeypatch.setattr(console, "run_console", spy_run_console)
    gc.unfreeze()
    try:
        assert main(["--paper"]) == 0
        assert disabled_at_start == [True]
        [(enabled, frozen)] = seen
        assert enabled and frozen > 0
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


async def test_the_first_live_book_is_shown_without_waiting_for_a_frame() -> None:
    """Frames come every 10 s here: the first live book must still be shown at once (the
    start-up poll), and the book going live later is shown, not left for the next frame."""
    from core.clock import ManualClock
    from core.snapshot import BookStatus
    from tests.doubles.fake_engine import FakeEngine
    from tests.tui.helpers import wait_until

    clock = ManualClock()
    engine = FakeEngine(clock=clock, seed=7)
    engine.set_book_status("BTC-USD", BookStatus.SYNCING, "waiting for the snapshot")
    app = CryptoJApp(
        engine,
        mode=engine.mode,
        products=engine.products,
        clock=clock,
        refresh_hz=0.1,
        idle_refresh_hz=0.1,
        cursor_blink=False,
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.last_snapshot is not None
        assert app.last_snapshot.book.status is BookStatus.SYNCING
        engine.set_book_status("BTC-USD", BookStatus.LIVE)
        await wait_until(
            pilot,
            lambda: (
                app.last_snapshot is not None and app.last_snapshot.book.status is BookStatus.LIVE
            ),
        )
        book = app.main_screen.ladder.book
        assert book is not None and book.status is BookStatus.LIVE
