"""Model arithmetic that gives the same bits whatever the actor and thread layout.

MKL splits a matrix product's sums differently with the number of threads, so a resumed teacher
run on another layout (1 actor x 2 threads instead of 2 x 1) changed the last bits of a few logits.
MKL's strict conditional numerical reproducibility keeps the order of every sum fixed whatever the
thread count (bundled MiniLM, 1,000 sentences: 2 of 2,000 logits differed between 1 and 2 threads
without it, none with it; same speed within 3%; docs in README "Determinism"). MKL reads it at its
first call, so it is set before any model runs: in the CLI, in every model-loading constructor, and in the environment
of every Ray worker that runs a model.
"""

from __future__ import annotations

import os

PINNED_ENV = {"MKL_CBWR": "AUTO,STRICT"}


def pin_numerics() -> None:
    """Set the pinned environment in this process (a value the user set is kept)."""
    for key, value in PINNED_ENV.items():
        os.environ.setdefault(key, value)
