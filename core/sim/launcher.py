"""Run the simulated exchange in a child process and get its endpoints back.

``start_sim_process`` starts ``python -m core.sim`` on a free loopback port, waits for the
child's one-line JSON handshake on its stdout and returns a ``SimProcess`` with the
``endpoints`` (URLs, demo credentials, TLS certificate). The child's logs go to a file
(``SimProcess.log_path``, deleted after a clean exit), never to the parent's terminal, which
may be a full-screen UI.

No orphans: the child exits when its stdin reaches EOF, and the parent holds the only write
end of that pipe, so the child follows the parent down even if the parent is killed with
SIGKILL. ``stop()`` (also on context-manager exit and at interpreter exit) closes the pipe,
waits, then escalates to SIGTERM and SIGKILL.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from types import TracebackType
from typing import Final

import orjson

from core.config import SimSettings
from core.sim.faults import FaultPlan
from core.sim.jwt_verify import KeyAlgorithm
from core.sim.server import SimEndpoints

DEFAULT_START_TIMEOUT_S: Final = 30.0
_LIVE: weakref.WeakSet[SimProcess] = weakref.WeakSet()


class SimLaunchError(RuntimeError):
    """The child did not come up; the message ends with the tail of its log."""


class SimProcess:
    """A running simulated exchange in a child process."""

    def __init__(self, process: subprocess.Popen[bytes], endpoints: SimEndpoints, log_path: Path):
        self.process = process
        self.endpoints = endpoints
        self.log_path = log_path
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 5.0) -> int:
        """Stop the child (EOF on stdin, then SIGTERM, then SIGKILL); return its exit code."""
        process = self.process
        if process.stdin is not None and not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()
        for escalate in (None, process.terminate, process.kill):
            if escalate is not None and process.poll() is None:
                escalate()
            try:
                code = process.wait(timeout_s)
                break
            except subprocess.TimeoutExpired:
                continue
        else:  # pragma: no cover - SIGKILL always ends a process
            code = process.wait()
        if process.stdout is not None:
            process.stdout.close()
        _LIVE.discard(self)
        if code == 0:  # a clean run's log is of no further use; a failed one's is kept
            self.log_path.unlink(missing_ok=True)
        return code

    async def astop(self, timeout_s: float = 5.0) -> int:
        return await asyncio.to_thread(self.stop, timeout_s)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SimProcess:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.astop()


def sim_command(
    settings: SimSettings,
    *,
    faults: FaultPlan | str | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
    python: str = sys.executable,
) -> list[str]:
    """The child's command line for ``settings``."""
    plan = faults.describe() if isinstance(faults, FaultPlan) else (faults or "")
    command = [
        python,
        "-m",
        "core.sim",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--seed",
        str(settings.seed),
        "--rate",
        repr(settings.rate),
        "--key-algorithm",
        key_algorithm,
    ]
    if settings.tls:
        command.append("--tls")
    if plan and plan != "none":
        command += ["--faults", plan]
    return command


def start_sim_process(
    settings: SimSettings,
    *,
    faults: FaultPlan | str | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
    python: str = sys.executable,
) -> SimProcess:
    """Start the sim in a child process and wait for its endpoints (``SimLaunchError`` if not)."""
    if isinstance(faults, str):
        FaultPlan.parse(faults)  # a bad plan fails here, in the caller, with a clear message
    log_fd, log_name = tempfile.mkstemp(prefix="cryptoj-sim-", suffix=".log")
    log_path = Path(log_name)
    command = sim_command(settings, faults=faults, key_algorithm=key_algorithm, python=python)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_fd,
            close_fds=True,
            # Its own session: a Ctrl-C in the terminal goes to the console, which then stops
            # the child in order (after cancelling orders at it), not to both at once.
            start_new_session=True,
        )
    finally:
        os.close(log_fd)
    line = _read_handshake(process, timeout_s)
    try:
        data = orjson.loads(line) if line else None
        if isinstance(data, dict) and data.get("event") == "error":
            _kill(process)
            raise SimLaunchError(f"simulated exchange did not start: {data.get('message')}")
        if not isinstance(data, dict) or data.get("event") != "ready":
            raise ValueError("no handshake")
        endpoints = SimEndpoints.from_handshake(data)
    except (ValueError, KeyError) as error:
        _kill(process)
        raise SimLaunchError(
            f"simulated exchange did not start ({error}); log {log_path}:\n{_tail(log_path)}"
        ) from None
    return SimProcess(process, endpoints, log_path)


async def astart_sim_process(
    settings: SimSettings,
    *,
    faults: FaultPlan | str | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> SimProcess:
    """``start_sim_process`` without blocking the event loop."""
    return await asyncio.to_thread(
        start_sim_process, settings, faults=faults, key_algorithm=key_algorithm, timeout_s=timeout_s
    )


def _read_handshake(process: subprocess.Popen[bytes], timeout_s: float) -> bytes:
    """The child's first stdout line, or b"" if it exits or stays silent too long."""
    lines: list[bytes] = []
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        lines.append(stdout.readline())

    reader = threading.Thread(target=read, name="sim-handshake", daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        _kill(process)
        reader.join(1.0)
        return b""
    return lines[0] if lines else b""


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _stop_all() -> None:
    for sim in list(_LIVE):
        sim.stop(timeout_s=2.0)
