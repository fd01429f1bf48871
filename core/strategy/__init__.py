"""Automated strategies: the ``Strategy`` protocol, its context, and the built-in strategies.

A strategy emits intents through its ``StrategyContext``; the engine sends every one through the
risk gate. ``build_strategy(settings.strategy)`` makes the configured one (or None);
``STRATEGIES`` (``core/strategy/registry.py``) is the one list of strategies and their
``[strategy.NAME]`` settings tables.
"""

from core.strategy.base import (
    BookTop,
    FillEventView,
    OwnOrderView,
    PositionView,
    Strategy,
    StrategyBase,
    StrategyContext,
)
from core.strategy.market_maker import MarketMaker, MarketMakerParams
from core.strategy.registry import STRATEGIES, StrategyEntry, build_strategy
from core.strategy.trend import TrendFollower, TrendParams

__all__ = [
    "STRATEGIES",
    "BookTop",
    "FillEventView",
    "MarketMaker",
    "MarketMakerParams",
    "OwnOrderView",
    "PositionView",
    "Strategy",
    "StrategyBase",
    "StrategyContext",
    "StrategyEntry",
    "TrendFollower",
    "TrendParams",
    "build_strategy",
]
