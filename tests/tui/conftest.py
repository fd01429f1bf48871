"""Fixtures for the console's App tests and SVG snapshots.

Snapshots are stored in the repository's top-level ``snapshots/`` directory (one folder per
test module) rather than next to the tests, where pytest-textual-snapshot's ``snap_compare``
would put them: ``snap_compare`` asks syrupy for its own SVG extension, so the ``snapshot``
fixture below hands out an assertion that swaps that extension for one with our directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension  # type: ignore[import-untyped]
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.base import AbstractSyrupyExtension
from syrupy.location import PyTestLocation

from core.clock import ManualClock
from cryptoj_tui.app import CryptoJApp
from tests.doubles.fake_engine import FakeEngine
from tests.tui.helpers import AppFactory

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
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """syrupy's own ``snapshot`` fixture (the parent fixture of the same name), rebuilt from its
    public fields so SVG snapshots go to the top-level snapshots/ dir."""
    return RepoSnapshotAssertion(
        session=snapshot.session,
        extension_class=RepoSVGExtension,
        test_location=snapshot.test_location,
        update_snapshots=snapshot.update_snapshots,
    )


@pytest.fixture
def engine(clock: ManualClock) -> FakeEngine:
    """The deterministic fake engine (seed 7, BTC-USD / ETH-USD / SOL-USD) on ``clock``."""
    return FakeEngine(clock=clock, seed=7)


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
