"""Where ``cryptoj``'s start-up goes: one demo run, from launch to the first book painted, as
a timeline of both processes (the console and the simulated exchange's child) with wall and
CPU milliseconds at each step, and what the console spent on dataclass creation and garbage
collection on the way.

``scripts/bench_startup.py`` says how long the start-up takes; this says where. It runs
``cryptoj`` as the benchmark does (in tmux, a temporary HOME, the bytecode cache on, after one
untimed warm-up run) with a tracer loaded through ``sitecustomize`` (a temporary directory put
on PYTHONPATH, nothing in the project changes): it marks the first import of a few big
modules and the calls of a few functions by name (the child's spawn and handshake, the settings,
the engine, the App's load and mount, the WebSocket, the first book), and stops the console
right after the first book is painted. The import hook costs some time of its own (~5-10 %),
so read the steps relative to each other; the benchmark has the absolute figures.

Wall ms count from just before the command starts; CPU ms are the process's own (both
threads). Where a process's wall time grows faster than its CPU time it waited: for the other
process, for the network, or for a core (the machine is shared).

Usage: python scripts/startup_timeline.py [--size 160x48] [--runs 1] [--timeout 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_startup import cryptoj_command

# (module, attribute path, label, whether only the call is marked, not its end)
_MARKS = [
    ("core.sim.launcher", "spawn_sim_process", "console: spawn the sim child", True),
    ("core.sim.launcher", "PendingSim.send_settings", "console: settings sent to the child", True),
    ("core.sim.launcher", "PendingSim._read", "console: handshake line", False),
    ("core.sim.launcher", "PendingSim.ready", "console: wait for the handshake", False),
    ("core.config", "load_settings", "console: load_settings", False),
    ("cryptoj_tui.console", "_import_console", "console: import engine + UI", False),
    ("core.engine", "Engine.__init__", "console: Engine()", False),
    ("cryptoj_tui.app", "CryptoJApp.__init__", "console: CryptoJApp()", False),
    ("cryptoj_tui.app", "CryptoJApp.on_load", "console: App.on_load", True),
    ("cryptoj_tui.app", "CryptoJApp.on_mount", "console: App.on_mount", False),
    ("core.coinbase.ws", "CoinbaseWebSocket._open", "console: WebSocket open", False),
    ("core.coinbase.ws", "CoinbaseWebSocket._subscribe_all", "console: WebSocket subscribe", False),
    ("core.coinbase.rest", "CoinbaseRestClient._send_once", "console: REST call", False),
    ("core.market", "MarketDataService._apply_snapshot", "console: level2 snapshot applied", True),
    ("textual.app", "App._display", "console: Textual writes a frame", True),
    ("core.sim.runner", "run_sim", "child: run_sim", True),
    ("core.sim.server", "SimServer.start", "child: listen", False),
    ("core.sim.__main__", "_announce", "child: handshake written (ready)", True),
    ("core.sim.agents", "MarketAgents.bootstrap", "child: build the market", False),
    ("core.sim.ws_hub", "WebSocketHub._send_snapshots", "child: send snapshots", True),
    ("core.sim.rest_api", "RestHandlers._authenticate", "child: REST request (JWT check)", True),
]
_IMPORTS = [
    "asyncio",
    "core.config",
    "cryptoj_tui.console",
    "core.engine",
    "jwt",
    "httpx",
    "textual.app",
    "cryptoj_tui.app",
    "aiohttp",
    "core.sim.runner",
]

_TRACER = '''
"""The start-up tracer of scripts/startup_timeline.py (loaded as sitecustomize)."""
import builtins, dataclasses, functools, gc, inspect, os, sys, threading, time

_T0 = float(os.environ["STARTUP_TRACE_T0"])
_WHO = "child" if os.environ.get("STARTUP_TRACE_CHILD") else "console"
os.environ["STARTUP_TRACE_CHILD"] = "1"  # what this process starts is the child
_OUT = open(os.environ["STARTUP_TRACE_OUT"] + "." + _WHO, "a")
_LOCK = threading.Lock()


def mark(what):
    with _LOCK:
        wall = (time.time() - _T0) * 1000
        _OUT.write(f"{wall:.1f}\\t{time.process_time() * 1000:.0f}\\t{_WHO}\\t{what}\\n")
        _OUT.flush()


mark("python started")
_GC = {"n": 0, "t": 0.0, "at": 0.0}


def _on_gc(phase, info):
    if phase == "start":
        _GC["at"] = time.perf_counter()
    else:
        _GC["n"] += 1
        _GC["t"] += time.perf_counter() - _GC["at"]


gc.callbacks.append(_on_gc)
_DC = {"n": 0, "t": 0.0}
_process_class = dataclasses._process_class


def _timed_process_class(*args, **kwargs):
    started = time.perf_counter()
    try:
        return _process_class(*args, **kwargs)
    finally:
        _DC["n"] += 1
        _DC["t"] += time.perf_counter() - started


dataclasses._process_class = _timed_process_class
MARKS = %(marks)r
IMPORTS = set(%(imports)r)
_patched = set()


def _wrap(owner, attribute, label, call_only):
    function = getattr(owner, attribute)
    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def wrapper(*args, **kwargs):
            mark(label if call_only else label + " >")
            try:
                return await function(*args, **kwargs)
            finally:
                if not call_only:
                    mark(label + " <")
    else:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            mark(label if call_only else label + " >")
            try:
                return function(*args, **kwargs)
            finally:
                if not call_only:
                    mark(label + " <")
    setattr(owner, attribute, wrapper)


def _first_book(original):
    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        mark("console: FIRST BOOK PAINTED")
        mark(f"console: so far {_DC['n']} dataclasses made in {_DC['t'] * 1000:.0f} ms, "
             f"{_GC['n']} collections in {_GC['t'] * 1000:.0f} ms")
        original(self, *args, **kwargs)
        self.exit()
    return wrapper


def _patch_loaded():
    for module_name, path, label, call_only in MARKS + [
        ("cryptoj_tui.app", "CryptoJApp._manage_heap", None, None)
    ]:
        key = (module_name, path)
        module = sys.modules.get(module_name)
        if key in _patched or module is None:
            continue
        if getattr(getattr(module, "__spec__", None), "_initializing", False):
            continue
        _patched.add(key)
        owner = module
        *parents, attribute = path.split(".")
        try:
            for parent in parents:
                owner = getattr(owner, parent)
            getattr(owner, attribute)
        except AttributeError:
            continue
        if label is None:
            setattr(owner, attribute, _first_book(getattr(owner, attribute)))
        else:
            _wrap(owner, attribute, label, call_only)


_import = builtins.__import__


def _traced_import(name, globals=None, locals=None, fromlist=(), level=0):
    first = level == 0 and name in IMPORTS and name not in sys.modules
    if first:
        mark(f"{_WHO}: import {name} >")
    module = _import(name, globals, locals, fromlist, level)
    if first:
        mark(f"{_WHO}: import {name} <")
    _patch_loaded()
    return module


builtins.__import__ = _traced_import
'''


def run_once(size: tuple[int, int], timeout_s: float, home: str, tracer_dir: str) -> str:
    out = Path(home) / "trace"
    for suffix in (".console", ".child"):
        out.with_name(out.name + suffix).unlink(missing_ok=True)
    session = f"startup-timeline-{os.getpid()}"
    env = {
        "HOME": home,
        "TERM": os.environ.get("TERM", "xterm-256color"),
        "PYTHONPYCACHEPREFIX": f"{home}/pycache",
        "PYTHONPATH": tracer_dir,
        "STARTUP_TRACE_OUT": str(out),
    }
    exports = " ".join(f"{key}={value}" for key, value in env.items())
    command = " ".join(cryptoj_command())
    line = f"env -u PYTHONDONTWRITEBYTECODE {exports} STARTUP_TRACE_T0=$(date +%s.%N) {command}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), line],
        check=True,
    )
    console_log = out.with_name(out.name + ".console")
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if console_log.exists() and "FIRST BOOK" in console_log.read_text():
                time.sleep(0.2)  # the child's last lines
                break
            time.sleep(0.05)
        else:
            raise TimeoutError(f"no first book after {timeout_s:g} s")
    finally:
        subprocess.run(
            ["tmux", "kill-session", "-t", session], check=False, stderr=subprocess.DEVNULL
        )
    rows = []
    for suffix in (".console", ".child"):
        path = out.with_name(out.name + suffix)
        if path.exists():
            for raw in path.read_text().splitlines():
                wall, cpu, who, what = raw.split("\t", 3)
                rows.append((float(wall), int(cpu), who, what))
    rows.sort()
    return "\n".join(
        f"{wall:8.1f} ms  cpu {cpu:5d} ms  {who:7s} {what.split(': ', 1)[-1]}"
        for wall, cpu, who, what in rows
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="160x48")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("startup_timeline: needs tmux", file=sys.stderr)
        return 2
    width, height = (int(part) for part in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="cryptoj-timeline-") as home:
        tracer_dir = Path(home) / "tracer"
        tracer_dir.mkdir()
        (tracer_dir / "sitecustomize.py").write_text(
            _TRACER % {"marks": _MARKS, "imports": _IMPORTS}
        )
        run_once((width, height), args.timeout, home, str(tracer_dir))  # warm-up: the caches
        for run in range(args.runs):
            print(f"--- run {run + 1}")
            print(run_once((width, height), args.timeout, home, str(tracer_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
