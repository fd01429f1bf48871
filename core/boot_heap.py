"""The garbage collector during a process's boot (the console and the simulated exchange's
child): off while the boot builds what lives as long as the process, then frozen and back on
(docs/design.md §5).

A boot makes ~100k objects that live as long as the process (modules, classes, the engine or
the sim's books); the cyclic collector scanned them over and over while they were made (~12 %
of the import time), and every full collection afterwards would scan them again.
"""

from __future__ import annotations

import gc


def collector_off_for_boot() -> None:
    """The boot begins: no cyclic collection until :func:`boot_done`."""
    gc.disable()


def boot_done() -> None:
    """The boot is over: what it made lives on (frozen, never scanned again) and the collector
    is on again for what comes next. Idempotent."""
    gc.freeze()
    gc.enable()
