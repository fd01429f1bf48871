"""The one registry of strategies: each ``[strategy.NAME]`` settings table and its builder.

The names a trader may put in ``strategy.name`` are the ``StrategySection`` fields of
``core.config.StrategySettings`` (the settings must know them to read their tables); this
module maps each name to the function that builds it and checks, on import, that it covers
exactly those names, so a strategy cannot be half added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.config import (
    ConfigError,
    MarketMakerSettings,
    StrategySection,
    StrategySettings,
    TrendSettings,
    strategy_names,
)
from core.strategy.base import Strategy
from core.strategy.market_maker import MarketMaker, MarketMakerParams
from core.strategy.trend import TrendFollower, TrendParams


@dataclass(frozen=True, slots=True)
class StrategyEntry:
    """One strategy: its name (``strategy.name`` and the ``[strategy.NAME]`` table), what it
    does in a few words, and how to build it from its product and table."""

    name: str
    summary: str
    settings_type: type[StrategySection]
    build: Callable[[str, StrategySection], Strategy]


def _market_maker(product_id: str, section: StrategySection) -> Strategy:
    assert isinstance(section, MarketMakerSettings)
    return MarketMaker(MarketMakerParams.from_settings(product_id, section))


def _trend(product_id: str, section: StrategySection) -> Strategy:
    assert isinstance(section, TrendSettings)
    return TrendFollower(TrendParams.from_settings(product_id, section))


STRATEGIES: Mapping[str, StrategyEntry] = {
    entry.name: entry
    for entry in (
        StrategyEntry(
            "market_maker", "quotes both sides around mid", MarketMakerSettings, _market_maker
        ),
        StrategyEntry("trend", "follows a moving-average cross", TrendSettings, _trend),
    )
}

if set(STRATEGIES) != set(strategy_names()):  # pragma: no cover - a programming error
    raise RuntimeError(
        f"strategy registry {sorted(STRATEGIES)} does not match the settings' "
        f"[strategy.*] tables {sorted(strategy_names())}"
    )

STRATEGY_NAMES = ("none", *STRATEGIES)


def build_strategy(settings: StrategySettings) -> Strategy | None:
    """The strategy ``settings.name`` names, or None for "none".

    Raises ``ConfigError`` (one line naming the table) when the values are valid one by one but
    not together, e.g. a fast window that is not shorter than the slow one.
    """
    if settings.name == "none":
        return None
    entry = STRATEGIES.get(settings.name)
    if entry is None:  # pydantic checks the name; kept for callers that build settings raw
        raise ConfigError(
            f"config key 'strategy.name' = {settings.name!r}: expected one of "
            f"{', '.join(STRATEGY_NAMES)}"
        )
    try:
        return entry.build(settings.product_id, settings.section(entry.name))
    except ValueError as exc:
        raise ConfigError(
            f"config keys [strategy.{entry.name}] (strategy {entry.name!r}): {exc}"
        ) from None
