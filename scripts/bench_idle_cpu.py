"""Idle CPU benchmark: the console in the default demo while nobody types.

``cryptoj`` (the demo: the sim child streams 400 level2 updates/s) runs in a detached tmux
session (160x48 by default). Once a price is on screen the script waits ``--settle`` seconds
(longer than the console's idle delay, ``IDLE_AFTER_S`` in ``cryptoj_tui/app.py``, after which
it redraws at the idle rate) and then reads the CPU time the console process and the sim
child used over ``--seconds``, from ``/proc/<pid>/stat`` (Linux). It prints each as a share of
one core, and the same for a bare Textual app (a header, a footer and one Static) left open
in the same terminal, as the floor any Textual app pays. Issue 11's target: the console
<= 5% of a core (a console left open all day must not drain a laptop). The sim child stands in
for the exchange and is reported apart, not counted.

Usage: python scripts/bench_idle_cpu.py [--seconds 30] [--settle 20] [--size 160x48]
Needs tmux and /proc. The demo runs with HOME in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The same bare app and price pattern as the start-up benchmark (run from scripts/).
from bench_startup import BARE_APP, PRICE

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (its own threads, not children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's ")": state ppid ... utime is field 14 of stat, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class TmuxRun:
    """One command in a detached tmux session, its screen readable, closed with ``q``."""

    def __init__(self, command: list[str], *, size: tuple[int, int], env: dict[str, str]):
        self.session = f"bench-idle-{os.getpid()}"
        exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        shell = " ".join(shlex.quote(part) for part in command)
        width, height = (str(cells) for cells in size)
        command_line = f"exec env {exports} {shell}"
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                width,
                "-y",
                height,
                command_line,
            ],
            check=True,
        )
        pane_pid = subprocess.run(
            ["tmux", "display-message", "-p", "-t", self.session, "#{pane_pid}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.pid = int(pane_pid)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.session],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def wait_for_price(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not PRICE.search(self.screen()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no price on screen after {timeout_s:g} s")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, "q"], check=False)
        time.sleep(1.0)
        subprocess.run(
            ["tmux", "kill-session", "-t", self.session], check=False, stderr=subprocess.DEVNULL
        )


def measure(run: TmuxRun, *, settle_s: float, seconds: float) -> dict[int, float]:
    """Share of a core used by the run's process and each child over ``seconds``."""
    run.wait_for_price(timeout_s=30)
    time.sleep(settle_s)
    pids = [run.pid, *children_of(run.pid)]
    before = {pid: cpu_seconds(pid) for pid in pids}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {pid: (cpu_seconds(pid) - before[pid]) / elapsed * 100 for pid in pids}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--size", default="160x48")
    args = parser.parse_args()
    if shutil.which("tmux") is None or not Path("/proc/self/stat").exists():
        print("bench_idle_cpu: needs tmux and /proc (Linux)", file=sys.stderr)
        return 2
    width, height = (int(part) for part in args.size.split("x"))
    size = (width, height)
    script = Path(sys.executable).with_name("cryptoj")
    cryptoj = [str(script)] if script.exists() else [sys.executable, "-m", "cryptoj_tui"]
    with tempfile.TemporaryDirectory(prefix="cryptoj-idle-") as home:
        env = {"HOME": home, "TERM": os.environ.get("TERM", "xterm-256color")}
        bare_file = Path(home) / "bare_app.py"
        bare_file.write_text(BARE_APP)
        bare = TmuxRun([sys.executable, str(bare_file)], size=size, env=env)
        try:
            bare_cpu = measure(bare, settle_s=args.settle, seconds=args.seconds)[bare.pid]
        finally:
            bare.close()
        console = TmuxRun(cryptoj, size=size, env=env)
        try:
            shares = measure(console, settle_s=args.settle, seconds=args.seconds)
        finally:
            console.close()
    console_cpu = shares.pop(console.pid)
    sim_cpu = sum(shares.values())
    print(f"idle over {args.seconds:g} s after {args.settle:g} s, {args.size}:")
    print(f"  bare Textual app          {bare_cpu:5.1f}% of a core")
    print(f"  cryptoj console (demo)    {console_cpu:5.1f}% of a core (target <= 5%)")
    print(f"  its sim child (exchange)  {sim_cpu:5.1f}% of a core (not the console's)")
    print(f"verdict: {'OK' if console_cpu <= 5 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
