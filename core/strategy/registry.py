"""Build the configured strategy from ``StrategySettings`` by name."""

from __future__ import annotations

from core.config import ConfigError, StrategySettings
from core.strategy.base import Strategy
from core.strategy.market_maker import MarketMaker, MarketMakerParams
from core.strategy.trend import TrendFollower, TrendParams

STRATEGY_NAMES = ("none", "market_maker", "trend")


def build_strategy(settings: StrategySettings) -> Strategy | None:
    """The strategy ``settings.name`` names, or None for "none".

    Raises ``ConfigError`` (one line naming the keys) when the values are valid one by one but
    not together, e.g. a fast window that is not shorter than the slow one.
    """
    if settings.name == "none":
        return None
    try:
        if settings.name == "market_maker":
            return MarketMaker(MarketMakerParams.from_settings(settings))
        if settings.name == "trend":
            return TrendFollower(TrendParams.from_settings(settings))
    except ValueError as exc:
        keys = "strategy.mm_*" if settings.name == "market_maker" else "strategy.trend_*"
        raise ConfigError(f"config keys {keys} (strategy {settings.name!r}): {exc}") from None
    raise ConfigError(  # unreachable through pydantic, which checks the name; kept for callers
        f"config key 'strategy.name' = {settings.name!r}: expected one of {', '.join(STRATEGY_NAMES)}"
    )
