"""The console's garbage-collection policy: CPython's own middle and full collections off while
the console runs, the App's timer runs them (a full one once enough was promoted), and the
thresholds come back when it closes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cryptoj_tui.heap import (
    MIDDLE_BEFORE_FULL,
    collect_if_due,
    restore_thresholds,
    take_over_collections,
)


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
