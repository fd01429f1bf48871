"""Helpers for tests that start child processes (the sim child, the console)."""

from __future__ import annotations


def process_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (Linux: reads ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
