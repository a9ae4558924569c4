"""Stable hashing and per-example random streams.

Every random choice the pipeline makes for one example comes from a generator seeded by
(job seed, example_id, method), so the output never depends on how rows are split into
blocks, batches or workers.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _absorb(h, parts):
    """``h`` updated with each part's UTF-8 text and a separator; ``h`` itself is returned."""
    for part in parts:
        h.update(str(part).encode("utf-8"))
        h.update(b"\x1f")
    return h


def stable_hash64(*parts: object) -> int:
    """A 64-bit hash of the parts that is the same in every process and on every machine."""
    return int.from_bytes(_absorb(hashlib.blake2b(digest_size=8), parts).digest(), "little")


def stable_hex(*parts: object, length: int = 16) -> str:
    """A hex digest of the parts (``length`` hex characters, at most 32)."""
    return _absorb(hashlib.blake2b(digest_size=16), parts).hexdigest()[:length]


def stable_hexes(prefix: tuple, lasts, length: int = 16) -> list[str]:
    """``[stable_hex(*prefix, last, length=length) for last in lasts]``, the prefix hashed once."""
    head = _absorb(hashlib.blake2b(digest_size=16), prefix)
    return [_absorb(head.copy(), (last,)).hexdigest()[:length] for last in lasts]


def example_rng(seed: int, example_id: str, method: str) -> np.random.Generator:
    """The random stream of one example for one method."""
    h = stable_hash64(example_id, method)
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, h >> 32, h & 0xFFFFFFFF])
