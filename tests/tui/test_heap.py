"""The console's garbage-collection policy: CPython's own full collections off while the console
runs, the App's timer runs them once enough has been promoted, and the thresholds come back."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cryptoj_tui.heap import (
    PROMOTIONS_BEFORE_FULL,
    collect_if_due,
    restore_thresholds,
    take_over_full_collections,
)


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_taking_over_keeps_the_young_collections_and_gives_everything_back(
    thresholds: tuple[int, int, int],
) -> None:
    returned = take_over_full_collections()
    assert returned == thresholds
    young, middle, full = gc.get_threshold()
    assert (young, middle) == thresholds[:2]
    assert full > 1_000_000  # CPython never starts a full collection itself
    restore_thresholds(returned)
    assert gc.get_threshold() == thresholds


class Node:
    """Something that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.itself = self


def test_a_full_collection_runs_only_once_enough_was_promoted(
    thresholds: tuple[int, int, int],
) -> None:
    take_over_full_collections()
    gc.collect()  # every count back to 0
    # A cycle promoted to the oldest generation while alive, then dropped: garbage only a
    # full collection frees (the young collections no longer look at it).
    node = Node()
    watched = weakref.ref(node)
    gc.collect(1)
    gc.collect(1)
    del node
    assert gc.get_count()[2] == PROMOTIONS_BEFORE_FULL == 2
    gc.collect(0)
    assert watched() is not None
    assert collect_if_due()
    assert watched() is None
    assert gc.get_count()[2] == 0
    assert not collect_if_due()  # nothing promoted since


def test_nothing_runs_before_enough_was_promoted(thresholds: tuple[int, int, int]) -> None:
    take_over_full_collections()
    gc.collect()
    gc.collect(1)
    assert gc.get_count()[2] == 1 < PROMOTIONS_BEFORE_FULL
    assert not collect_if_due()
    assert gc.get_count()[2] == 1
