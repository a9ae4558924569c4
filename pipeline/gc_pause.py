"""Pausing Python's cyclic garbage collector around allocation-heavy pure-Python work.

A worker that has imported torch and transformers holds a million or more objects the cyclic
collector tracks. Building many small lists and tuples (TinyBERT's variants, for one) triggers
collections, and each full collection walks all of them (figures: docs/performance.md). The
work inside makes no reference cycles, so reference counting frees everything it drops; the
collector runs again as usual afterwards.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused_gc():
    """Disable the cyclic collector inside the block (re-enabled after it, if it was on).

    Process-wide, like ``gc.disable``: meant for a worker's one thread doing the work.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
