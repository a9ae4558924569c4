"""What every augmentation method offers the stage driver, and what its tasks share.

A method (``tinybert_tasks.TinyBert``, ``tang_tasks.Tang``) says what decides its output and
prepares the :class:`~pipeline.runtime.runner.Work` that runs its tasks. Each task reads a fixed
range of a split's examples (``read_examples``), augments it, and writes one file
(``write_variants``): ``augmented/<split>/<method>/part-i.parquet``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import row_ranges, storage
from ..errors import PipelineError
from ..runtime.runner import Task, Work
from ..seeding import stable_hexes

AUGMENTED_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("parent_id", pa.string()),
        ("method", pa.string()),
        ("variant", pa.int32()),  # 0 = the original
        ("text_a", pa.string()),
        ("text_b", pa.string()),
        ("label", pa.string()),
        ("label_id", pa.int32()),
        ("score", pa.float32()),  # regression: a variant keeps its original's score
        ("seed", pa.int64()),
    ]
)
# Columns Parquet dictionary-encodes: not the ids and the first texts, nearly all distinct (the
# dictionary is tried and dropped; measured on 10,233 sentences' output: with every column encoded
# so, the files took 15-20% longer to write and were 7-9% larger)
_DICTIONARY_COLUMNS = [n for n in AUGMENTED_SCHEMA.names if n not in ("example_id", "text_a")]


class AugmentError(PipelineError, RuntimeError):
    """The augment stage cannot run (no ingested examples, ...)."""


class AugmentMethod(Protocol):
    name: str

    def tries(self) -> int:
        """Tries per example (the summary's tries_per_example)."""

    def settings(self) -> dict:
        """What decides the output besides the split's examples and the seed (the stage key)."""

    def extra_inputs(self, split: str) -> dict:
        """Fingerprints of other inputs that decide the output (Tang: the train split's examples)."""

    def work(self, split: str, todo: list[Task], out_dir: str) -> Work:
        """How the split's remaining tasks run; shared things (GloVe, models, tables) are made here."""

    def summary(self) -> dict:
        """Extra summary entries."""


def read_examples(task: Task) -> pa.Table:
    """The examples of a task's range (``spec["pieces"]``: pieces of the split's Parquet files)."""
    return row_ranges.read_row_pieces([tuple(p) for p in task.spec["pieces"]])


def write_variants(out_dir: str, task: Task, table: pa.Table) -> dict:
    """A task's rows written as its one file; the result the driver gathers."""
    record = storage.write_parquet(
        storage.join(out_dir, f"{task.name}.parquet"), table.cast(AUGMENTED_SCHEMA), use_dictionary=_DICTIONARY_COLUMNS
    )
    parents = int(pc.sum(pc.equal(table.column("variant"), 0)).as_py() or 0)
    return {"files": [record], "rows_in": parents, "rows_out": table.num_rows}


def variants_table(batch: pa.Table, results: list[list[tuple[str, str | None]]], method: str, seed: int) -> pa.Table:
    """Pure: per-example augmenter output → rows of the augmented corpus (original first).

    A variant's ``example_id`` is ``stable_hex(parent, method, variant)``; the parent's columns
    are repeated with one Arrow ``take`` each (this runs for every output row: building the
    columns as Python lists, one hash from scratch per row, cost about as much as augmenting)."""
    counts = np.fromiter((len(rows) for rows in results), dtype=np.int64, count=len(results))
    if len(counts) != batch.num_rows:
        raise ValueError(f"{len(counts)} results for {batch.num_rows} examples")
    total = int(counts.sum())
    parent_index = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    variant = np.arange(total, dtype=np.int32) - starts[parent_index].astype(np.int32)
    ids: list[str] = []
    for parent, n in zip(batch.column("example_id").to_pylist(), counts.tolist()):
        if n:
            ids.append(parent)
            ids += stable_hexes((parent, method), range(1, n))
    take = pa.array(parent_index)
    return pa.table(
        {
            "example_id": pa.array(ids, pa.string()),
            "parent_id": batch.column("example_id").take(take),
            "method": pa.array([method] * total, pa.string()),
            "variant": pa.array(variant, pa.int32()),
            "text_a": pa.array([a for rows in results for a, _ in rows], pa.string()),
            "text_b": pa.array([b for rows in results for _, b in rows], pa.string()),
            "label": batch.column("label").take(take),
            "label_id": batch.column("label_id").take(take),
            "score": batch.column("score").take(take),
            "seed": pa.array(np.full(total, seed, dtype=np.int64)),
        },
        schema=AUGMENTED_SCHEMA,
    )
