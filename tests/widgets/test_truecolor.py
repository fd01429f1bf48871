"""Dropping the ANSI colour mapping keeps every other line filter."""

from __future__ import annotations

from rich.terminal_theme import DEFAULT_TERMINAL_THEME
from textual.filter import ANSIToTruecolor, DimFilter, Monochrome

from widgets.truecolor import without_ansi_mapping


def test_only_the_ansi_mapping_is_dropped() -> None:
    monochrome, dim = Monochrome(), DimFilter()
    filters = [ANSIToTruecolor(DEFAULT_TERMINAL_THEME), monochrome, dim]
    assert without_ansi_mapping(filters) == [monochrome, dim]
    assert without_ansi_mapping([]) == []
