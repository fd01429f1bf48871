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
any moment (inside a frame as often as not, adding to it). Its middle-generation collections
(2-3 ms) landed inside frames the same way.

Most of those lines need no collector at all: the cycle is Textual caching a line cut into
one piece (itself) in the line, and the console cuts it without caching that answer
(:func:`free_lines_without_the_collector`); such lines are freed as soon as they are dropped.

So the console takes both over (:func:`take_over_collections`): CPython runs only the young
collections (a fraction of a millisecond), and :func:`collect_if_due`, on the App's timer
(between frames, never inside one), runs the middle generation's every
:data:`CHECK_EVERY_S` and a full one once :data:`MIDDLE_BEFORE_FULL` middle collections have
promoted into the oldest generation. Each is then small: the full one scans the lines on
screen and a second's garbage, a few milliseconds; while nothing moves (an idle console)
nothing is allocated and nothing runs.

What the console builds in its first seconds of data, after that first freeze (positions,
balances and the footer arriving, Textual's style and strip caches filling, the engine's
per-product state), also lives as long as it does, and every full collection scanned it
again: 5-9 ms each. So the heap is frozen once more when the console has settled
(:func:`freeze_settled_heap`, :data:`SETTLE_S` after the first book is shown), after a full
collection so no garbage of the moment is frozen with it. Only once: what is on screen at that
moment (a screen of painted lines, some in small cycles) stays out of the collector's reach
when it is replaced, a fixed amount; freezing again and again would leak that much each time.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence

from textual.strip import Strip

# How often the App runs the middle generation's collection, if a young one ran since.
CHECK_EVERY_S = 0.25
# Middle-generation collections (each moves its survivors into the oldest) after which a
# full collection is due: about one a second while the book streams.
MIDDLE_BEFORE_FULL = 4
# Seconds after the first book is shown at which the settled heap is frozen (positions,
# balances and the footer have arrived by then, the caches have filled).
SETTLE_S = 5.0
# A threshold CPython never reaches: its own middle and full collections are off.
_NEVER = 1_000_000_000


def freeze_startup_heap() -> None:
    """Move everything alive after start-up out of the garbage collector's sight.

    Objects alive once the first book is shown mostly live as long as the console does;
    frozen, they are never scanned again.
    """
    gc.freeze()


def freeze_settled_heap() -> None:
    """Free the garbage of the moment, then move everything still alive out of the
    collector's sight (once, when the console has settled: see the module's docstring)."""
    gc.collect()
    gc.freeze()


_textual_divide = Strip.divide


def _divide_without_self_cycle(strip: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    """``Strip.divide``, the same pieces, but a strip cut into one piece (itself) is not put
    in its own cache: that made every painted line a reference cycle."""
    cuts = list(cuts)
    if len(cuts) == 1 and cuts[0] == strip.cell_length:
        return [strip]
    return _textual_divide(strip, cuts)


def free_lines_without_the_collector() -> None:
    """Have painted lines freed as soon as they are dropped, not by the collector.

    Textual's compositor cuts each line a widget painted at the edges of the widgets over it
    (``Strip.divide``); a line that nothing covers is cut into one piece, itself, and Textual
    caches that answer in the line: the line refers to itself, and only a collection frees it
    (with the pieces cached in it). Every frame replaced hundreds of such lines; they made the
    bulk of what the middle and full collections scan and free. Idempotent.
    """
    Strip.divide = _divide_without_self_cycle  # type: ignore[method-assign,assignment]


def take_over_collections() -> tuple[int, int, int]:
    """Stop CPython's own middle and full collections (the young ones go on as before);
    returns the thresholds there were, for :func:`restore_thresholds`."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], _NEVER, _NEVER)
    return thresholds


def restore_thresholds(thresholds: tuple[int, int, int]) -> None:
    """Give the collections back to CPython (when the console closes)."""
    gc.set_threshold(*thresholds)


def collect_if_due() -> int | None:
    """Run the collection that is due; returns its generation (None: nothing was due).

    ``gc.get_count()`` counts, per generation, the collections of the one below since its
    own last collection: young ones since the last middle one, middle ones since the last
    full one.
    """
    _, young_since, middle_since = gc.get_count()
    if middle_since >= MIDDLE_BEFORE_FULL:
        gc.collect(2)
        return 2
    if young_since:
        gc.collect(1)
        return 1
    return None
