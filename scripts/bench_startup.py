"""Start-up benchmark: from launching ``cryptoj`` to the first frame that shows a price,
against a bare Textual app (a header, a footer and one Static showing a price) launched the
same way in the same terminal.

Both run in a detached tmux session (160x48 by default) whose screen is read every few
milliseconds with ``tmux capture-pane``; the clock stops at the first capture in which a
price (``68,012.70``-like: grouped digits, two or more decimals) is visible. Each command is
run ``--runs`` times, alternating, and the medians are compared. The figures depend on the
machine and its load: run both in the same session and read the ratio (the target in issue
11 is cryptoj <= 2x the bare app).

Both run with Python's bytecode cache on (in a temporary ``PYTHONPYCACHEPREFIX``) after one
untimed warm-up run each, as an installed program runs: an environment with
``PYTHONDONTWRITEBYTECODE=1`` (as some sandboxes and CI boxes set) otherwise makes every run
compile the project's modules from source again, a cost no user pays (the bare app's Textual
comes compiled from its wheel). ``--no-bytecode-cache`` measures that way anyway.

Usage: python scripts/bench_startup.py [--runs 3] [--size 160x48] [--timeout 20]
       [--compare <another checkout>]
Needs tmux. The demo runs with HOME in a temporary directory (its journal and logs go there).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRICE = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+\.\d{2,}")
POLL_S = 0.01

BARE_APP = """
from textual.app import App
from textual.widgets import Footer, Header, Static

class Bare(App):
    def compose(self):
        yield Header()
        yield Static("BTC-USD 68,012.70")
        yield Footer()

Bare().run()
"""


def cryptoj_command() -> list[str]:
    script = Path(sys.executable).with_name("cryptoj")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cryptoj_tui"]


def time_to_price(
    command: list[str], *, size: tuple[int, int], env: dict[str, str | None], timeout_s: float
) -> float:
    """Seconds from starting ``command`` in tmux to the first screen showing a price
    (``env``: variables to set, or to unset where the value is None)."""
    session = f"bench-startup-{os.getpid()}"
    shell = " ".join(shlex.quote(part) for part in command)
    # env(1) takes its -u options before the assignments.
    unset = [f"-u {key}" for key, value in env.items() if value is None]
    exports = " ".join(
        unset + [f"{key}={shlex.quote(value)}" for key, value in env.items() if value is not None]
    )
    command_line = [
        "tmux",
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        str(size[0]),
        "-y",
        str(size[1]),
        f"env {exports} {shell}",
    ]
    for _attempt in range(3):
        started = time.perf_counter()
        # A tmux server that is exiting (its last session just closed) refuses a session.
        if subprocess.run(command_line, check=False, stderr=subprocess.DEVNULL).returncode == 0:
            break
        time.sleep(0.5)
    else:
        raise RuntimeError("tmux refused to start a session")
    try:
        while True:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if PRICE.search(screen):
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"no price on screen after {timeout_s:g} s:\n{screen}")
            time.sleep(POLL_S)
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=False)
        time.sleep(0.5)
        subprocess.run(
            ["tmux", "kill-session", "-t", session], check=False, stderr=subprocess.DEVNULL
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="160x48")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep the environment's PYTHONDONTWRITEBYTECODE and skip the warm-up runs",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for cryptoj (e.g. PYTHONPATH=<another checkout> to compare)",
    )
    parser.add_argument(
        "--compare",
        metavar="CHECKOUT",
        help="also time cryptoj from another checkout (put first on PYTHONPATH), interleaved "
        "with the other two in every round, so a change of load hits all three alike",
    )
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("bench_startup: needs tmux", file=sys.stderr)
        return 2
    width, height = (int(part) for part in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="cryptoj-startup-") as home:
        env: dict[str, str | None] = {
            "HOME": home,
            "TERM": os.environ.get("TERM", "xterm-256color"),
        }
        if not args.no_bytecode_cache:
            env.update(PYTHONDONTWRITEBYTECODE=None, PYTHONPYCACHEPREFIX=f"{home}/pycache")
        bare_file = Path(home) / "bare_app.py"
        bare_file.write_text(BARE_APP)
        console_env = {**env, **dict(item.split("=", 1) for item in args.env)}
        size = (width, height)

        def bare_run() -> float:
            return time_to_price(
                [sys.executable, str(bare_file)], size=size, env=env, timeout_s=args.timeout
            )

        def console_run(extra: dict[str, str | None] | None = None) -> float:
            return time_to_price(
                cryptoj_command(),
                size=size,
                env={**console_env, **(extra or {})},
                timeout_s=args.timeout,
            )

        other = {"PYTHONPATH": args.compare} if args.compare else None
        if not args.no_bytecode_cache:  # writes the caches; not counted
            bare_run()
            console_run()
            if other:
                console_run(other)
        bare: list[float] = []
        console: list[float] = []
        compared: list[float] = []
        for _ in range(args.runs):
            bare.append(bare_run())
            console.append(console_run())
            if other:
                compared.append(console_run(other))
    bare_s = statistics.median(bare)
    console_s = statistics.median(console)
    print(
        f"bare Textual app to a price on screen: median {bare_s:.2f} s "
        f"({', '.join(f'{value:.2f}' for value in bare)})"
    )
    print(
        f"cryptoj (demo) to a price on screen:   median {console_s:.2f} s "
        f"({', '.join(f'{value:.2f}' for value in console)})"
    )
    if compared:
        compared_s = statistics.median(compared)
        print(
            f"cryptoj from {args.compare}: median {compared_s:.2f} s "
            f"({', '.join(f'{value:.2f}' for value in compared)}), "
            f"ratio {compared_s / bare_s:.2f}x"
        )
    ratio = console_s / bare_s
    print(f"ratio {ratio:.2f}x (target <= 2x): {'OK' if ratio <= 2 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
