"""How the console keeps the garbage collector's pauses short on the loop it shares with the
engine (docs/design.md §5).

Two things make the collector's pauses long there. First, everything alive at start-up (the
modules, the widget tree, the books): scanned in every full collection, it stalled the loop
for 100-400 ms. It is frozen once the first book is shown (:func:`freeze_startup_heap`), out
of the collector's sight for good.

Second, what each frame leaves behind. Textual's strips cache the pieces they are cut into,
and a strip cut into one piece caches itself: every painted line becomes a small reference
cycle, freed only by the collector. The lines on screen live long enough to reach the oldest
generation, so it grows by thousands of objects a second, and CPython's own full collection,
every few seconds, scanned tens of thousands of objects at once: 20-45 ms in one piece, at
any moment (inside a frame as often as not). The console takes that collection over: CPython
no longer starts one (:func:`take_over_full_collections`), and :func:`collect_if_due`, on the
App's timer (between frames, never inside one), runs it as soon as the young collections
have moved :data:`PROMOTIONS_BEFORE_FULL` batches into the oldest generation. It is then
small (the lines on screen and a second's garbage), a few milliseconds; while nothing moves
(an idle console) nothing is promoted and nothing runs.
"""

from __future__ import annotations

import gc

# How often the App asks whether a full collection is due (seconds).
CHECK_EVERY_S = 0.5
# Collections of the middle generation (each one moves its survivors into the oldest) after
# which a full collection is due. CPython's own rule waits for 10 (and more garbage).
PROMOTIONS_BEFORE_FULL = 2
# A full-collection threshold CPython never reaches: its own full collections are off.
_NEVER = 1_000_000_000


def freeze_startup_heap() -> None:
    """Move everything alive after start-up out of the garbage collector's sight.

    Objects alive once the first book is shown mostly live as long as the console does;
    frozen, they are never scanned again.
    """
    gc.freeze()


def take_over_full_collections() -> tuple[int, int, int]:
    """Stop CPython's own full collections (the young ones go on as before); returns the
    thresholds there were, for :func:`restore_thresholds`."""
    thresholds = gc.get_threshold()
    young, middle, _ = thresholds
    gc.set_threshold(young, middle, _NEVER)
    return thresholds


def restore_thresholds(thresholds: tuple[int, int, int]) -> None:
    """Give the full collections back to CPython (when the console closes)."""
    gc.set_threshold(*thresholds)


def collect_if_due() -> bool:
    """Run a full collection if enough has been promoted since the last one; whether it ran.

    ``gc.get_count()[2]`` counts the middle generation's collections since the last full one.
    """
    if gc.get_count()[2] < PROMOTIONS_BEFORE_FULL:
        return False
    gc.collect(2)
    return True
