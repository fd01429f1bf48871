"""The trading banner: hidden while ACTIVE; HALTED with its cause and the kill's progress."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.snapshot import TradingView
from tests.widgets.helpers import HostApp
from widgets.trading_banner import TradingBanner, banner_text, kill_progress_text


def trading(state: str = "HALTED", **changes: object) -> TradingView:
    values: dict[str, object] = {
        "state": state,
        "cause": "kill switch (keyboard)",
        "source": "user",
        "reconciling": False,
    }
    values.update(changes)
    return TradingView(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (trading(kill_phase="IDLE"), ""),
        (trading(kill_phase="CANCELLING"), "cancelling every open order…"),
        (
            trading(kill_phase="CANCELLING", kill_rounds=2, kill_still_open=3),
            "cancelling: round 2, 3 still open",
        ),
        (trading(kill_phase="DONE", kill_took_ms=1234.4), "no open orders (1,234 ms)"),
        (trading(kill_phase="DONE"), "no open orders"),
        (
            trading(kill_phase="FAILED", kill_rounds=10, kill_still_open=3),
            "3 STILL OPEN after 10 rounds: check the venue",
        ),
        (
            trading(kill_phase="FAILED", kill_rounds=1),
            "? STILL OPEN after 1 rounds: check the venue",
        ),
    ],
)
def test_kill_progress_text(view: TradingView, expected: str) -> None:
    assert kill_progress_text(view) == expected


def test_banner_text_per_state() -> None:
    assert banner_text(None) is None
    assert banner_text(trading("ACTIVE")) is None
    assert banner_text(trading("ACTIVE", reconciling=True)) == (
        "⟳ reconciling orders, fills and balances with the venue: orders wait",
        "reconciling",
    )
    assert banner_text(trading(kill_phase="DONE", kill_took_ms=12.0)) == (
        "⛔ HALTED: kill switch (keyboard) (by user) · no open orders (12 ms) · F flatten · R resume",
        "halted",
    )
    assert banner_text(trading(kill_phase="IDLE", cause="drawdown", source="trigger:drawdown")) == (
        "⛔ HALTED: drawdown (by trigger:drawdown) · F flatten · R resume",
        "halted",
    )
    text, level = banner_text(trading("REDUCING", cause="daily loss 2,010.00")) or ("", "")
    assert level == "reducing"
    assert text.startswith("▼ REDUCING: only orders that shrink a position · daily loss 2,010.00")


async def test_banner_shows_only_when_not_active(host: Callable[..., HostApp]) -> None:
    banner = TradingBanner()
    async with host(banner).run_test(size=(100, 4)) as pilot:
        assert banner.update_trading(trading("ACTIVE")) is False  # empty already
        await pilot.pause()
        # Always one row (so showing it never relayouts the screen), empty while ACTIVE.
        assert banner.region.height == 1 and not str(banner.render()).strip()
        assert not any(banner.has_class(f"-{level}") for level in TradingBanner.LEVELS)
        assert banner.update_trading(trading(kill_phase="CANCELLING"))
        await pilot.pause()
        assert banner.has_class("-halted") and banner.region.height == 1
        assert banner.text is not None and banner.text.startswith("⛔ HALTED")
        assert banner.level == "halted"
        assert banner.update_trading(trading(kill_phase="CANCELLING")) is False  # same text
        assert banner.update_trading(trading("REDUCING"))
        await pilot.pause()
        assert banner.has_class("-reducing") and not banner.has_class("-halted")
        assert banner.update_trading(trading("ACTIVE"))
        await pilot.pause()
        assert banner.text is None and banner.level is None
        assert banner.region.height == 1 and not str(banner.render()).strip()
        assert not any(banner.has_class(f"-{level}") for level in TradingBanner.LEVELS)
