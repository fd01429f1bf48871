"""Helpers for the console's App tests (the fixtures are in this package's conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from cryptoj_tui.app import CryptoJApp

AppFactory = Callable[..., CryptoJApp]
"""What the ``make_app`` fixture returns: builds a CryptoJApp on the fake engine."""


async def wait_until(pilot: Pilot[Any], condition: Callable[[], bool], *, ticks: int = 100) -> None:
    """Let the app process messages until ``condition`` holds (fails after ``ticks`` pauses)."""
    for _ in range(ticks):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")
