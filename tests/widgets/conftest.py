"""Fixtures for widget tests (the helpers they build on are in ``tests/widgets/helpers.py``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widget import Widget

from tests.widgets.helpers import HostApp


@pytest.fixture
def host() -> Callable[[Widget], HostApp]:
    """Builds a HostApp around a widget; run it with ``async with app.run_test(size=...)``."""
    return HostApp
