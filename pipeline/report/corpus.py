"""An augmented corpus read for the report in bounded memory.

The report reads a corpus in two passes over its Parquet files, batch by batch and column by
column, so that the driver holds a few counters and a bounded sample, never the corpus (read
whole into Python lists, a 16.7 M-row corpus took the driver to 8.4 GB):

1. ``example_id``, ``parent_id``, ``variant`` and whether ``text_b`` is set: the exact counts
   (rows, originals, variants, second texts), the exact distribution of variants per example, and
   a seeded sample of at most ``max_examples`` originals: those whose seeded hash of the id is
   smallest, so the same originals whatever the files' layout, and every original when there are
   fewer;
2. the texts of the sampled originals and of their variants, and nothing else.

The distribution is counted in one streaming pass because the augment stage writes every
original followed by its variants (a group may run on from one part file into the next). A
corpus laid out otherwise (rows re-sorted by another tool) is still counted exactly, by a
second pass that keeps one counter per original: memory then grows with the originals, not the rows.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import storage
from . import stats

BATCH_ROWS = 65_536  # rows per Parquet batch read: a few MB of ids, whatever the corpus size
COLUMNS = ["example_id", "parent_id", "variant", "text_a", "text_b"]


@dataclass(frozen=True)
class VariantCounts:
    """Exactly how many originals have 0, 1, 2, ... variants: ``{variants: originals}``."""

    counts: dict[int, int]

    @property
    def examples(self) -> int:
        return sum(self.counts.values())

    @property
    def mean(self) -> float | None:
        n = self.examples
        return sum(k * v for k, v in self.counts.items()) / n if n else None

    @property
    def min(self) -> int | None:
        return min(self.counts) if self.counts else None

    @property
    def max(self) -> int | None:
        return max(self.counts) if self.counts else None


def sample_key(seed: int, example_id: str) -> int:
    """The seeded rank of an original in the sample (the smallest keys are sampled)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{example_id}".encode(), digest_size=8).digest(), "big")


@dataclass
class _Sampler:
    """The ``size`` originals of smallest :func:`sample_key` seen so far (a max-heap by key)."""

    size: int
    seed: int
    heap: list[tuple[int, str]] = field(default_factory=list)

    def add(self, ids: list[str]) -> None:
        for e in ids:
            item = (-sample_key(self.seed, e), e)
            if len(self.heap) < self.size:
                heapq.heappush(self.heap, item)
            elif item > self.heap[0]:
                heapq.heapreplace(self.heap, item)

    def ids(self) -> list[str]:
        return sorted(e for _, e in self.heap)


@dataclass
class CorpusScan:
    """What the first pass counts (exact) and samples (bounded)."""

    rows: int = 0
    originals: int = 0
    second_texts: int = 0  # originals with a second text
    per_example: VariantCounts = VariantCounts({})
    sample: list[str] = field(default_factory=list)  # sampled original ids, sorted


class _Groups:
    """Variants per original over rows that come as original, its variants, next original, ..."""

    def __init__(self) -> None:
        self.closed: Counter[int] = Counter()
        self.open_id: str | None = None  # the last original seen; its variants may go on
        self.open_variants = 0
        self.grouped = True  # False once a variant does not follow its own original

    def add(self, ids: pa.Array, parents: pa.Array, variant: np.ndarray) -> None:
        n = len(variant)
        starts = np.flatnonzero(variant == 0)
        # each row's original: the last original at or before it in this batch (-1: an earlier batch)
        last = np.maximum.accumulate(np.where(variant == 0, np.arange(n), -1)) if n else np.zeros(0, np.int64)
        inside = np.flatnonzero((variant != 0) & (last >= 0))
        if len(inside) and not pc.all(pc.equal(parents.take(inside), ids.take(last[inside]))).as_py():
            self.grouped = False
        head = int(starts[0]) if len(starts) else n
        if head:
            if self.open_id is None or not pc.all(pc.equal(parents.slice(0, head), self.open_id)).as_py():
                self.grouped = False
            self.open_variants += head
        if not len(starts):
            return
        if self.open_id is not None:
            self.closed[self.open_variants] += 1
        sizes = np.diff(np.append(starts, n)) - 1  # variants after each original in this batch
        for k, c in zip(*np.unique(sizes[:-1], return_counts=True)):
            self.closed[int(k)] += int(c)
        self.open_id, self.open_variants = ids[int(starts[-1])].as_py(), int(sizes[-1])

    def counts(self) -> dict[int, int]:
        out = Counter(self.closed)
        if self.open_id is not None:
            out[self.open_variants] += 1
        return dict(sorted(out.items()))


def _batches(path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    filesystem, p = storage.resolve(path)
    with storage.remote_errors(path), filesystem.open_input_file(p) as fh:
        yield from pq.ParquetFile(fh).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def each_batch(files: list[str], columns: list[str], visit: Callable[[pa.RecordBatch], None]) -> None:
    """``visit`` each batch of each file once, in order; a read that fails on a transient remote
    error is tried again and goes on after the last batch visited (batches are the same each time)."""
    for f in files:
        done = 0

        def rest(f: str = f) -> None:
            nonlocal done
            for k, batch in enumerate(_batches(f, columns)):
                if k >= done:
                    visit(batch)
                    done += 1

        storage.retrying(f, rest)


def scan(files: list[str], max_examples: int, seed: int) -> CorpusScan:
    """Pass 1 over the Parquet files ``files`` (paths or URIs, in corpus order)."""
    out = CorpusScan()
    groups, sampler = _Groups(), _Sampler(max_examples, seed)

    def visit(batch: pa.RecordBatch) -> None:
        variant = batch.column("variant").to_numpy(zero_copy_only=False)
        is_orig = variant == 0
        ids = batch.column("example_id")
        out.rows += batch.num_rows
        out.originals += int(is_orig.sum())
        out.second_texts += int(
            np.count_nonzero(is_orig & pc.is_valid(batch.column("text_b")).to_numpy(zero_copy_only=False))
        )
        sampler.add(ids.filter(pa.array(is_orig)).to_pylist())
        groups.add(ids, batch.column("parent_id"), variant)

    each_batch(files, ["example_id", "parent_id", "variant", "text_b"], visit)
    counts = groups.counts() if groups.grouped else _ungrouped_counts(files)
    out.per_example, out.sample = VariantCounts(counts), sampler.ids()
    return out


def _ungrouped_counts(files: list[str]) -> dict[int, int]:
    """Variants per original of a corpus not written original-first: one counter per original."""
    per_parent: Counter[str] = Counter()
    originals: set[str] = set()

    def visit(batch: pa.RecordBatch) -> None:
        variant = batch.column("variant").to_numpy(zero_copy_only=False)
        originals.update(batch.column("example_id").filter(pa.array(variant == 0)).to_pylist())
        per_parent.update(batch.column("parent_id").filter(pa.array(variant != 0)).to_pylist())

    each_batch(files, ["example_id", "parent_id", "variant"], visit)
    return dict(sorted(Counter(per_parent.get(e, 0) for e in originals).items()))


@dataclass
class SampledCorpus:
    """The sampled originals and their variants (pass 2), as Python lists in corpus order."""

    ids: list[str]
    parents: list[str]
    variant: list[int]
    text_a: list[str]
    text_b: list[str | None]

    @classmethod
    def read(cls, files: list[str], sample: list[str]) -> SampledCorpus:
        chosen = pa.array(sample, pa.string())
        tables: list[pa.Table] = []

        def visit(batch: pa.RecordBatch) -> None:
            keep = pc.or_(
                pc.is_in(batch.column("parent_id"), value_set=chosen),
                pc.and_(pc.equal(batch.column("variant"), 0), pc.is_in(batch.column("example_id"), value_set=chosen)),
            )
            if pc.any(keep).as_py():
                tables.append(pa.Table.from_batches([batch.filter(keep)]))

        each_batch(files, COLUMNS, visit)
        if not tables:
            return cls([], [], [], [], [])
        table = pa.concat_tables(tables)
        return cls(*(table.column(c).to_pylist() for c in COLUMNS))

    @cached_property
    def originals(self) -> dict[str, int]:
        """Row of each original (variant 0) by example id."""
        return {e: i for i, (e, v) in enumerate(zip(self.ids, self.variant)) if v == 0}

    def words(self, row: int, mask_token: str) -> int:
        return len(stats.split_words(self.text_a[row], mask_token)) + len(
            stats.split_words(self.text_b[row], mask_token)
        )

    def edits(self, row: int, mask_token: str) -> stats.EditCounts:
        """A variant's edits against its original (both texts of a pair)."""
        o = self.originals[self.parents[row]]
        counts = stats.edit_counts(self.text_a[o], self.text_a[row], mask_token)
        if self.text_b[o] is not None or self.text_b[row] is not None:
            counts = counts + stats.edit_counts(self.text_b[o], self.text_b[row], mask_token)
        return counts

    def diff(self, row: int, mask_token: str) -> dict:
        o = self.originals[self.parents[row]]
        out = {"a": stats.word_diff(self.text_a[o], self.text_a[row], mask_token)}
        if self.text_b[o] is not None:
            out["b"] = stats.word_diff(self.text_b[o], self.text_b[row], mask_token)
        return out
