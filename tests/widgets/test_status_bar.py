"""The status bar: the mode badge (LIVE unmistakable), connection states, clock, loop lag."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.snapshot import ConnectionState, ConnectionView, StrategyView, TradingView
from tests.widgets.helpers import HostApp
from widgets.status_bar import (
    StatusBar,
    connection_part,
    mode_badge,
    strategy_part,
    trading_part,
)

WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("mode", "text", "style"),
    [
        ("demo", " DEMO ", "demo"),
        ("paper", " PAPER ", "paper"),
        ("live", " LIVE ", "live"),
        ("replay", " REPLAY ", "replay"),
        ("LIVE", " LIVE ", "live"),
        ("backtest", " BACKTEST ", "unknown"),
    ],
)
def test_mode_badge(mode: str, text: str, style: str) -> None:
    assert mode_badge(mode) == (text, style)


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        (
            ConnectionView("market", ConnectionState.CONNECTED, last_message_age_s=0.24),
            ("market ● 0.2s", "ok"),
        ),
        (
            ConnectionView("market", ConnectionState.CONNECTED, last_message_age_s=7.0),
            ("market ● 7.0s", "warn"),
        ),
        (ConnectionView("market", ConnectionState.CONNECTED), ("market ● —", "ok")),
        (
            ConnectionView("user", ConnectionState.RECONNECTING, attempt=3),
            ("user ⟳ reconnecting #3", "warn"),
        ),
        (ConnectionView("user", ConnectionState.CONNECTING), ("user … connecting", "warn")),
        (ConnectionView("user", ConnectionState.SUBSCRIBING), ("user … subscribing", "warn")),
        (ConnectionView("rest", ConnectionState.STOPPED), ("rest ✕ stopped", "error")),
        (ConnectionView("rest", ConnectionState.IDLE), ("rest ○ idle", "dim")),
    ],
)
def test_connection_part(connection: ConnectionView, expected: tuple[str, str]) -> None:
    assert connection_part(connection) == expected


CONNECTIONS = (
    ConnectionView("market", ConnectionState.CONNECTED, last_message_age_s=0.2),
    ConnectionView("user", ConnectionState.RECONNECTING, attempt=3),
)


async def test_status_bar_text(host: Callable[..., HostApp]) -> None:
    bar = StatusBar()
    async with host(bar).run_test(size=(120, 3)) as pilot:
        assert bar.update_status(
            mode="paper",
            product_id="ETH-USD",
            connections=CONNECTIONS,
            wall_time=WALL,
            loop_lag_ms=0.42,
        )
        await pilot.pause()
        assert bar.left_text == " PAPER  market ● 0.2s  user ⟳ reconnecting #3  ETH-USD"
        assert bar.right_text == "2026-01-01 00:00:00 UTC  lag 0.4 ms "
        rendered = bar.render_line(0).text
        assert rendered.startswith(bar.left_text)
        assert rendered.endswith(bar.right_text)
        assert len(rendered) == 120


async def test_unchanged_status_is_not_repainted(host: Callable[..., HostApp]) -> None:
    bar = StatusBar()
    values = dict(
        mode="demo", product_id="BTC-USD", connections=CONNECTIONS, wall_time=WALL, loop_lag_ms=None
    )
    async with host(bar).run_test(size=(120, 3)):
        assert bar.update_status(**values)  # type: ignore[arg-type]
        assert not bar.update_status(**values)  # type: ignore[arg-type]
        assert "lag —" in bar.text


async def test_live_is_white_on_red_and_bold(host: Callable[..., HostApp]) -> None:
    bar = StatusBar()
    async with host(bar).run_test(size=(120, 3)) as pilot:
        bar.update_status(
            mode="live", product_id="BTC-USD", connections=(), wall_time=WALL, loop_lag_ms=1.0
        )
        await pilot.pause()
        assert bar.style_of("LIVE") == "live"
        style = bar.get_component_rich_style("status-bar--live")
        assert style.bold
        assert style.color is not None and style.bgcolor is not None
        assert tuple(style.color.get_truecolor()) == (255, 255, 255)
        assert tuple(style.bgcolor.get_truecolor()) == (255, 0, 0)
        # The badge is drawn with that style.
        first = next(iter(bar.render_line(0)))
        assert first.text == " LIVE "
        assert first.style is not None and first.style.bold
        assert first.style.color == style.color and first.style.bgcolor == style.bgcolor


async def test_engine_error_and_narrow_width(host: Callable[..., HostApp]) -> None:
    bar = StatusBar()
    async with host(bar).run_test(size=(40, 3)) as pilot:
        bar.update_status(
            mode="demo",
            product_id="BTC-USD",
            connections=CONNECTIONS,
            wall_time=WALL,
            loop_lag_ms=2.0,
            engine_error="RuntimeError: boom",
        )
        await pilot.pause()
        assert bar.style_of("engine ✕ RuntimeError: boom") == "error"
        assert bar.style_of("no such text") is None
        # Too narrow for anything but the left side (mode, health): that is what stays.
        assert bar.render_line(0).text.startswith(" DEMO ")
        assert "UTC" not in bar.render_line(0).text
        assert "lag" not in bar.render_line(0).text


async def test_narrow_bar_drops_the_clock_before_the_lag(host: Callable[..., HostApp]) -> None:
    bar = StatusBar()
    async with host(bar).run_test(size=(72, 3)) as pilot:
        bar.update_status(
            mode="live",
            product_id="BTC-USD",
            connections=CONNECTIONS,
            wall_time=WALL,
            loop_lag_ms=3.0,
        )
        await pilot.pause()
        rendered = bar.render_line(0).text
        assert rendered.endswith("lag 3.0 ms ")
        assert "UTC" not in rendered


def _trading(state: str, cause: str = "kill switch", reconciling: bool = False) -> TradingView:
    return TradingView(state=state, cause=cause, source="user", reconciling=reconciling)


@pytest.mark.parametrize(
    ("trading", "expected"),
    [
        (_trading("ACTIVE"), ("ACTIVE", "ok")),
        (_trading("ACTIVE", reconciling=True), ("RECONCILING", "warn")),
        (
            _trading("REDUCING", "daily loss 2,010.00 >= limit 2,000.00"),
            (
                "REDUCING: daily loss 2,010.00 >= limit 2,000.00",
                "warn",
            ),
        ),
        (_trading("HALTED"), ("HALTED: kill switch", "error")),
        (_trading("HALTED", "x" * 60), ("HALTED: " + "x" * 39 + "…", "error")),
    ],
)
def test_trading_part(trading: TradingView, expected: tuple[str, str]) -> None:
    assert trading_part(trading) == expected


def test_strategy_part() -> None:
    assert strategy_part(StrategyView("market_maker", paused=False)) == (
        "strategy market_maker ▶",
        "ok",
    )
    assert strategy_part(StrategyView("trend", paused=True)) == ("strategy trend ⏸ paused", "warn")


async def test_status_bar_shows_trading_state_first_and_strategy_last(
    host: Callable[..., HostApp],
) -> None:
    bar = StatusBar()
    async with host(bar).run_test(size=(140, 3)) as pilot:
        bar.update_status(
            mode="live",
            product_id="BTC-USD",
            connections=CONNECTIONS[:1],
            wall_time=WALL,
            loop_lag_ms=None,
            trading=_trading("HALTED"),
            strategy=StrategyView("trend", paused=True),
        )
        await pilot.pause()
        assert bar.left_text == (
            " LIVE  HALTED: kill switch  market ● 0.2s  BTC-USD  strategy trend ⏸ paused"
        )
        assert bar.style_of("HALTED") == "error"
