"""Stream a teacher cache for training: row groups in a seeded order through a shuffle buffer.

Memory is bounded by the shuffle buffer plus one row group: the cache is never read whole. Rows
come out as Arrow tables of ``batch_size`` rows; the model-specific collate turns them into
tensors. Opening validates the manifest and every shard (:func:`pipeline.cache.open_cache`),
so a corrupt or truncated shard stops training before the first step, naming the shard.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..cache import CacheError, TeacherCache, open_cache


def open_training_cache(
    path: str,
    *,
    layers: Sequence[int] | None = None,
    attentions: Sequence[int] | None = None,
    teacher_hash: str | None = None,
) -> TeacherCache:
    return open_cache(path, layers=layers, attentions=attentions, teacher_hash=teacher_hash)


def keep_mask(rows: np.ndarray, fraction: float) -> np.ndarray:
    """Rows kept by a ``fraction`` subset: a fixed 64-bit mix (splitmix64) of the row number below a
    threshold, so the subset is spread evenly over the cache and the same in every epoch and seed."""
    z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


class ShuffleReader:
    """Seeded streaming shuffle over a cache's row groups.

    Each epoch visits the row groups in a permuted order; rows enter a buffer of ``buffer_rows``;
    once the buffer is full it is permuted and all but half of it is emitted as batches, so every
    row can move anywhere within a window of about ``buffer_rows``. The same (seed, epoch) gives
    the same batches.
    """

    def __init__(
        self,
        cache: TeacherCache,
        columns: Sequence[str],
        batch_size: int,
        *,
        buffer_rows: int = 20_000,
        seed: int = 0,
        max_rows: int | None = None,
        fraction: float = 1.0,
    ):
        if batch_size <= 0 or buffer_rows <= 0:
            raise ValueError("batch_size and buffer_rows must be positive")
        self.cache, self.columns, self.batch_size = cache, list(dict.fromkeys(["row", *columns])), batch_size
        self.buffer_rows, self.seed, self.max_rows = max(buffer_rows, batch_size), seed, max_rows
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction
        self._kept_rows: int | None = None
        self.units = [
            (i, g) for i, s in enumerate(cache.manifest["shards"]) for g in range(cache._row_groups(s["file"]))
        ]

    @property
    def num_rows(self) -> int:
        rows = min(self.cache.num_rows, self.max_rows) if self.max_rows else self.cache.num_rows
        if self.fraction < 1.0:
            if self._kept_rows is None:
                self._kept_rows = int(keep_mask(np.arange(rows, dtype=np.int64), self.fraction).sum())
            return self._kept_rows
        return rows

    def steps_per_epoch(self) -> int:
        return -(-self.num_rows // self.batch_size)

    def _read(self, unit) -> pa.Table:
        i, g = unit
        name = self.cache.manifest["shards"][i]["file"]
        try:
            return self.cache._parquet(name).read_row_group(g, columns=self.columns)
        except Exception as exc:
            raise CacheError(self.cache.path, f"unreadable ({type(exc).__name__}: {exc})", name) from None

    def epoch(self, epoch: int) -> Iterator[pa.Table]:
        rng = np.random.default_rng([self.seed, epoch])
        order = [self.units[k] for k in rng.permutation(len(self.units))]
        pending: list[pa.Table] = []
        held = 0
        for unit in order:
            table = self._read(unit)
            if self.max_rows:
                table = table.filter(pc.less(table.column("row"), self.max_rows))
            if self.fraction < 1.0:
                table = table.filter(pa.array(keep_mask(table.column("row").to_numpy(), self.fraction)))
            pending.append(table)
            held += table.num_rows
            if held >= self.buffer_rows:
                merged = pa.concat_tables(pending)
                merged = merged.take(pa.array(rng.permutation(merged.num_rows)))
                emit = (merged.num_rows - self.buffer_rows // 2) // self.batch_size * self.batch_size
                for start in range(0, emit, self.batch_size):
                    yield merged.slice(start, self.batch_size)
                rest = merged.slice(emit)
                pending, held = [rest], rest.num_rows
        if held:
            merged = pa.concat_tables(pending)
            merged = merged.take(pa.array(rng.permutation(merged.num_rows)))
            for start in range(0, merged.num_rows, self.batch_size):
                yield merged.slice(start, self.batch_size)
