"""Model arithmetic that gives the same bits whatever the actor and thread layout.

MKL may sum a matrix product in a different order with another number of threads, so a teacher
shard resumed on another layout could differ in the last bits. MKL's strict reproducible mode
fixes the order (measured in docs/performance.md). MKL reads it at its first call: it is set
before any model runs (the CLI, every model-loading constructor, every model-running Ray worker).
"""

from __future__ import annotations

import os

PINNED_ENV = {"MKL_CBWR": "AUTO,STRICT"}


def pin_numerics() -> None:
    """Set the pinned environment in this process (a value the user set is kept)."""
    for key, value in PINNED_ENV.items():
        os.environ.setdefault(key, value)
