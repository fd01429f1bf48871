"""Fixtures for the console's App tests and SVG snapshots.

Snapshots are stored in the repository's top-level ``snapshots/`` directory (one folder per
test module) rather than next to the tests, where pytest-textual-snapshot's ``snap_compare``
would put them: ``snap_compare`` asks syrupy for its own SVG extension, so the ``snapshot``
fixture below hands out an assertion that swaps that extension for one with our directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension  # type: ignore[import-untyped]
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.base import AbstractSyrupyExtension
from syrupy.location import PyTestLocation
from textual.pilot import Pilot

from core.clock import ManualClock
from cryptoj_tui.app import CryptoJApp
from cryptoj_tui.fake_engine import FakeEngine

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS_DIR = REPO_ROOT / "snapshots"


class RepoSVGExtension(SVGImageExtension):  # type: ignore[misc]
    """pytest-textual-snapshot's SVG extension, storing files under <repo>/snapshots/<module>/."""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAPSHOTS_DIR / test_location.basename)


class RepoSnapshotAssertion(SnapshotAssertion):
    """A syrupy assertion whose SVG extension is always :class:`RepoSVGExtension`."""

    def use_extension(
        self, extension_class: type[AbstractSyrupyExtension] | None = None
    ) -> SnapshotAssertion:
        if extension_class is SVGImageExtension:
            extension_class = RepoSVGExtension
        return super().use_extension(extension_class)


@pytest.fixture
def snapshot(request: pytest.FixtureRequest) -> SnapshotAssertion:
    """syrupy's ``snapshot`` fixture, but SVG snapshots go to the top-level snapshots/ dir."""
    return RepoSnapshotAssertion(
        update_snapshots=request.config.option.update_snapshots,
        extension_class=RepoSVGExtension,
        test_location=PyTestLocation(request.node),
        session=request.session.config._syrupy,  # type: ignore[attr-defined]
    )


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at 2026-01-01T00:00:00Z that moves only when a test advances it."""
    return ManualClock()


@pytest.fixture
def engine(clock: ManualClock) -> FakeEngine:
    """The deterministic fake engine (seed 7, BTC-USD / ETH-USD / SOL-USD) on ``clock``."""
    return FakeEngine(clock=clock, seed=7)


AppFactory = Callable[..., CryptoJApp]


@pytest.fixture
def make_app(engine: FakeEngine, clock: ManualClock) -> AppFactory:
    """Builds a CryptoJApp on the fake engine (mode and other options overridable), no
    animations and no cursor blink."""

    def build(**options: Any) -> CryptoJApp:
        app_engine = options.pop("engine", engine)
        settings: dict[str, Any] = {
            "mode": engine.mode,
            "products": engine.products,
            "clock": clock,
            "cursor_blink": False,
        }
        settings.update(options)
        app = CryptoJApp(app_engine, **settings)
        app.animation_level = "none"
        return app

    return build


async def wait_until(pilot: Pilot[Any], condition: Callable[[], bool], *, ticks: int = 100) -> None:
    """Let the app process messages until ``condition`` holds (fails after ``ticks`` pauses)."""
    for _ in range(ticks):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")
