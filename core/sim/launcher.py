"""Run the simulated exchange in a child process and get its endpoints back.

``start_sim_process`` starts ``python -m core.sim`` on a free loopback port, waits for the
child's one-line JSON handshake on its stdout and returns a ``SimProcess`` with the
``endpoints`` (URLs, demo credentials, TLS certificate). ``spawn_sim_process`` is its first
half: it starts the child and returns at once (a ``PendingSim``) so the caller can do its own
work while the child boots, then ``PendingSim.ready()`` waits for the handshake. The demo
starts its child even before it has its settings (``early_sim_command``) and hands them over
with ``PendingSim.send_settings`` once loaded (core/sim/options.py). The child's
logs go to a file (``SimProcess.log_path``, deleted after a clean exit), never to the
parent's terminal, which may be a full-screen UI.

The console starts its demo child before it imports anything heavy (docs/design.md,
start-up), so this module imports only the standard library at the top: the handshake's
types (``SimEndpoints``, settings, fault plans) are imported when they are needed, and never
the server (aiohttp), which only the child runs.

No orphans: the child exits when its stdin reaches EOF, and the parent holds the only write
end of that pipe, so the child follows the parent down even if the parent is killed with
SIGKILL. ``stop()`` (also on context-manager exit and at interpreter exit) closes the pipe,
waits, then escalates to SIGTERM and SIGKILL. A child that never became ready is killed at
interpreter exit too.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from core.config import SimSettings
    from core.sim.endpoints import SimEndpoints
    from core.sim.faults import FaultPlan
    from core.sim.jwt_verify import KeyAlgorithm
    from core.sim.options import SimStartSettings

DEFAULT_START_TIMEOUT_S: Final = 30.0
_LIVE: weakref.WeakSet[SimProcess] = weakref.WeakSet()
_PENDING: weakref.WeakSet[PendingSim] = weakref.WeakSet()


class SimLaunchError(RuntimeError):
    """The child did not come up; the message ends with the tail of its log, or is the
    child's own one-line reason. ``exit_code`` is 2 when that reason is the configuration
    (the address cannot be listened on, a setting is bad), 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
        import asyncio

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


# The directory holding this cryptoj's ``core`` package (installed, editable or a checkout).
_PROJECT_ROOT: Final = str(Path(__file__).resolve().parents[2])


def _child_python(python: str) -> list[str]:
    """``python -P -m``: the child imports the same cryptoj as the console (``_child_env``),
    never a ``core`` package that happens to sit in the current directory (``-m`` puts the
    current directory first on the path; ``-P`` leaves it out), e.g. an older checkout the
    trader started cryptoj in."""
    return [python, "-P", "-m"]


def _child_env() -> dict[str, str]:
    """The console's environment, with this cryptoj's root first on PYTHONPATH when it is a
    source tree (an editable install, a checkout): the child runs the code the console runs.
    An installed cryptoj (in a site-packages directory) is found by the child as it is, and
    a site directory ahead of the standard library could shadow it, so then nothing changes."""
    env = dict(os.environ)
    if _PROJECT_ROOT in _site_directories():
        return env
    paths = [_PROJECT_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _site_directories() -> set[str]:
    import site

    found = {*site.getsitepackages(), site.getusersitepackages()}
    return {str(Path(directory).resolve()) for directory in found}


def sim_command(
    settings: SimSettings,
    *,
    faults: FaultPlan | str | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
    python: str = sys.executable,
) -> list[str]:
    """The child's command line for ``settings``."""
    plan = faults or "" if faults is None or isinstance(faults, str) else faults.describe()
    command = [
        *_child_python(python),
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


def early_sim_command(*, python: str = sys.executable) -> list[str]:
    """The child's command line when the console starts it before loading its settings: it
    imports its server, then waits for ``PendingSim.send_settings`` (core/sim/options.py)."""
    return [*_child_python(python), "core.sim", "--settings-on-stdin"]


class PendingSim:
    """A started child that has not handed over its endpoints yet (``ready`` waits for it)."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self._lines: list[bytes] = []
        self._taken = False
        self._ended = False  # killed (not wanted, or it failed to start)
        # The handshake is read by a thread from the start, so the child never blocks on a
        # full pipe and ``ready`` can wait with a timeout.
        self._reader = threading.Thread(target=self._read, name="sim-handshake", daemon=True)
        self._reader.start()
        _PENDING.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send_settings(self, settings: SimStartSettings) -> None:
        """Hand a child started by ``early_sim_command`` its settings (validated by the
        caller's ``SimSettings``). A child that died meanwhile is reported by ``ready``."""
        from core.sim.options import SimOptions

        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(OSError):  # BrokenPipeError: it died; ready() says why
            stdin.write(SimOptions.of(settings).to_line())
            stdin.flush()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        self._lines.append(stdout.readline())

    def ready(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> SimProcess:
        """Wait for the handshake; the running child, or ``SimLaunchError`` (child killed)."""
        if self._taken:
            raise RuntimeError("this child was already handed over")
        self._reader.join(timeout_s)
        if self._reader.is_alive():
            self._end(keep_log=True)
            self._reader.join(1.0)
        line = self._lines[0] if self._lines else b""
        try:
            data = json.loads(line) if line else None
            if isinstance(data, dict) and data.get("event") == "error":
                self._end(keep_log=True)
                if data.get("kind") == "config":  # one line naming the setting, as is
                    raise SimLaunchError(str(data.get("message")), exit_code=2)
                raise SimLaunchError(f"simulated exchange did not start: {data.get('message')}")
            if not isinstance(data, dict) or data.get("event") != "ready":
                raise ValueError("no handshake")
            from core.sim.endpoints import SimEndpoints

            endpoints = SimEndpoints.from_handshake(data)
        except (ValueError, KeyError) as error:
            self._end(keep_log=True)  # the message points at it
            raise SimLaunchError(
                f"simulated exchange did not start ({error}); log {self.log_path}:\n"
                f"{_tail(self.log_path)}"
            ) from None
        self._taken = True
        _PENDING.discard(self)
        return SimProcess(self.process, endpoints, self.log_path)

    def cancel(self) -> None:
        """Kill the child unless it was handed over (a child still booting holds no state),
        and delete its log: it was not wanted, it did not fail."""
        if not self._taken and not self._ended:
            self._end(keep_log=False)

    def _end(self, *, keep_log: bool) -> None:
        self._ended = True
        _PENDING.discard(self)
        _kill(self.process)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if not keep_log:
            self.log_path.unlink(missing_ok=True)


def spawn_sim_process(command: list[str]) -> PendingSim:
    """Start the child ``command`` (see ``sim_command``) and return without waiting for it."""
    log_fd, log_name = tempfile.mkstemp(prefix="cryptoj-sim-", suffix=".log")
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_fd,
            close_fds=True,
            env=_child_env(),
            # Its own session: a Ctrl-C in the terminal goes to the console, which then stops
            # the child in order (after cancelling orders at it), not to both at once.
            start_new_session=True,
        )
    finally:
        os.close(log_fd)
    return PendingSim(process, Path(log_name))


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
        from core.sim.faults import FaultPlan

        FaultPlan.parse(faults)  # a bad plan fails here, in the caller, with a clear message
    command = sim_command(settings, faults=faults, key_algorithm=key_algorithm, python=python)
    return spawn_sim_process(command).ready(timeout_s)


async def astart_sim_process(
    settings: SimSettings,
    *,
    faults: FaultPlan | str | None = None,
    key_algorithm: KeyAlgorithm = "ES256",
    timeout_s: float = DEFAULT_START_TIMEOUT_S,
) -> SimProcess:
    """``start_sim_process`` without blocking the event loop."""
    import asyncio

    return await asyncio.to_thread(
        start_sim_process, settings, faults=faults, key_algorithm=key_algorithm, timeout_s=timeout_s
    )


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
    for pending in list(_PENDING):
        pending.cancel()
    for sim in list(_LIVE):
        sim.stop(timeout_s=2.0)
