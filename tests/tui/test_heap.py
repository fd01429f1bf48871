"""The console's garbage-collection policy: CPython's own middle and full collections off while
the console runs, the App's timer runs them (a full one once enough was promoted), the
thresholds come back when it closes, and the settled heap is frozen once, without the garbage
of the moment."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

import cryptoj_tui.app
from cryptoj_tui.heap import (
    MIDDLE_BEFORE_FULL,
    collect_if_due,
    free_lines_without_the_collector,
    freeze_settled_heap,
    restore_thresholds,
    take_over_collections,
)
from tests.tui.helpers import AppFactory

TEXTUAL_DIVIDE = Strip.divide


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


class Node:
    """Something that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.itself = self


def test_taking_over_keeps_the_young_collections_and_gives_everything_back(
    thresholds: tuple[int, int, int],
) -> None:
    returned = take_over_collections()
    assert returned == thresholds
    young, middle, full = gc.get_threshold()
    assert young == thresholds[0]
    assert middle > 1_000_000 and full > 1_000_000  # CPython never starts these itself
    restore_thresholds(returned)
    assert gc.get_threshold() == thresholds


def test_nothing_runs_while_nothing_was_allocated(thresholds: tuple[int, int, int]) -> None:
    take_over_collections()
    gc.collect()  # every count back to 0
    assert collect_if_due() is None


def test_a_young_collection_since_makes_a_middle_one_due(
    thresholds: tuple[int, int, int],
) -> None:
    take_over_collections()
    gc.collect()
    # A cycle promoted out of the young generation while alive, then dropped: the young
    # collections no longer look at it, the middle one frees it.
    node = Node()
    watched = weakref.ref(node)
    gc.collect(0)
    del node
    assert gc.get_count()[1] == 1
    gc.collect(0)
    assert watched() is not None
    assert collect_if_due() == 1
    assert watched() is None
    assert gc.get_count()[1:] == (0, 1)


def test_a_full_collection_runs_once_enough_was_promoted(
    thresholds: tuple[int, int, int],
) -> None:
    take_over_collections()
    gc.collect()
    # A cycle promoted to the oldest generation while alive, then dropped: garbage only a
    # full collection frees.
    node = Node()
    watched = weakref.ref(node)
    gc.collect(0)
    gc.collect(1)
    del node
    for _ in range(MIDDLE_BEFORE_FULL - 2):
        gc.collect(0)
        assert collect_if_due() == 1
    gc.collect(0)
    assert collect_if_due() == 1
    assert gc.get_count()[2] == MIDDLE_BEFORE_FULL
    assert watched() is not None  # the middle collections never free it
    assert collect_if_due() == 2
    assert watched() is None
    assert gc.get_count()[1:] == (0, 0)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Whatever a test freezes goes back under the collector afterwards."""
    yield
    gc.unfreeze()


def test_the_settled_heap_is_frozen_without_the_garbage_of_the_moment(unfrozen: None) -> None:
    gc.collect()
    gc.unfreeze()
    # Garbage only a full collection frees (a cycle in the oldest generation, dropped):
    # frozen with the rest, it would never be freed.
    dropped = Node()
    watched_dropped = weakref.ref(dropped)
    gc.collect()
    del dropped
    kept = Node()  # alive when the heap is frozen: out of the collector's sight from then on
    freeze_settled_heap()
    assert watched_dropped() is None
    assert gc.get_freeze_count() > 0
    assert not any(thing is kept for thing in gc.get_objects())


async def test_the_app_freezes_the_settled_heap_once_after_the_first_book(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    freezes: list[str] = []
    monkeypatch.setattr(cryptoj_tui.app, "SETTLE_S", 0.05)
    monkeypatch.setattr(cryptoj_tui.app, "freeze_settled_heap", lambda: freezes.append("settled"))
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        for _ in range(200):  # bounded wait for the settle timer (0.05 s after the first book)
            if freezes:
                break
            await asyncio.sleep(0.02)
        assert freezes == ["settled"]
        for _ in range(10):  # more frames and more books: no second freeze
            app.pull_snapshot()
            await pilot.pause(0.02)
        assert freezes == ["settled"]


@pytest.fixture
def textual_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Textual's own ``Strip.divide`` back after the test, whatever it installed."""
    monkeypatch.setattr(Strip, "divide", TEXTUAL_DIVIDE)


def a_line(width: int) -> Strip:
    half = width // 2
    return Strip([Segment("x" * half, Style(bold=True)), Segment("y" * (width - half))], width)


def test_a_line_cut_into_one_piece_does_not_refer_to_itself(textual_strips: None) -> None:
    free_lines_without_the_collector()
    line = a_line(40)
    assert list(line.divide([40])) == [line]
    assert line not in gc.get_referents(*gc.get_referents(*gc.get_referents(line)))
    assert len(line._divide_cache) == 0  # nothing cached: no line -> cache -> line cycle


@given(
    width=st.integers(min_value=0, max_value=30),
    cuts=st.lists(st.integers(min_value=0, max_value=40), min_size=0, max_size=4),
)
def test_lines_are_cut_into_the_same_pieces_as_textual_cuts_them(
    width: int, cuts: list[int]
) -> None:
    cuts = sorted(set(cuts))
    Strip.divide = TEXTUAL_DIVIDE  # type: ignore[method-assign]
    try:
        expected = [list(piece) for piece in a_line(width).divide(cuts)]
        free_lines_without_the_collector()
        pieces = [list(piece) for piece in a_line(width).divide(cuts)]
    finally:
        Strip.divide = TEXTUAL_DIVIDE  # type: ignore[method-assign]
    assert pieces == expected


async def test_the_app_has_painted_lines_freed_without_the_collector(
    make_app: AppFactory, textual_strips: None, unfrozen: None
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        for _ in range(100):  # bounded wait for the first book (the heap is managed then)
            if app._gc_thresholds is not None:
                break
            await pilot.pause(0.02)
        line = a_line(20)
        line.divide([20])
        assert len(line._divide_cache) == 0
