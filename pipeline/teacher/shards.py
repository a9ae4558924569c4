"""The teacher stage's shard plan: a fixed plan, one file per shard, written whole or not at all.

Shard i holds the input rows [i·shard_rows, (i+1)·shard_rows) in input order: a pure function of
the input files and ``shard_rows``. Each shard is written whole under a temporary name and
renamed when complete, with the cache key and its row range in its footer (the format's side:
:mod:`pipeline.cache.shards`, whose names are still importable from here for one release, with a
DeprecationWarning), so a crash or a retried Ray task leaves either no file or a whole one, never
a partial file or duplicate rows, and a re-run keeps exactly the finished shards that belong to
the same cache and recomputes the rest.

Within a shard, rows go to row groups of about ``row_group_bytes`` (uncompressed, counted from the
token lengths before inference), which also bounds a worker's memory to about one row group.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .. import row_ranges, storage
from ..cache import shards as _format
from ..storage import file_sha256

# moved to pipeline.cache.shards; referenced through _format here so that the old import path warns
_MOVED = (
    "SHARD_RE",
    "KEY_CACHE",
    "KEY_FIRST_ROW",
    "KEY_ROWS",
    "KEY_TOKENS",
    "shard_name",
    "parquet_options",
    "ShardSink",
    "shard_file",
    "shard_metadata",
    "inspect_shard",
    "cache_footprint",
)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"pipeline.teacher.shards.{name} is deprecated: import it from pipeline.cache.shards "
            "(the old path is removed in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_format, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class InputFile:
    path: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: a contiguous range of input rows and the file it becomes."""

    index: int
    first_row: int
    rows: int
    sources: tuple[tuple[str, int, int], ...]  # (input file, first row in it, stop row in it)
    out_path: str

    @property
    def name(self) -> str:
        return _format.shard_name(self.index)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ShardTask:
        return cls(d["index"], d["first_row"], d["rows"], tuple(tuple(s) for s in d["sources"]), d["out_path"])


@dataclass
class ShardResult:
    name: str
    first_row: int
    rows: int
    tokens: int
    bytes: int
    sha256: str
    computed: bool
    seconds: float = 0.0
    model_seconds: float = 0.0
    padded_tokens: int = 0
    nonfinite: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def list_input_files(directory: str) -> list[InputFile]:
    """The Parquet files of an input corpus in name order, with row counts and checksums: as the
    tasks that wrote them recorded them in the corpus's completion marker, else read here."""
    from ..runtime import markers

    recorded = {f["path"]: f for f in markers.finished_files(directory) or [] if f.get("sha256")}
    files = []
    for path, rows in row_ranges.parquet_row_counts(directory):
        f = recorded.get(path)
        files.append(InputFile(path, rows, f["sha256"] if f and f.get("rows") == rows else file_sha256(path)))
    return files


def plan_shards(files: list[InputFile], shard_rows: int, out_dir: str) -> list[ShardTask]:
    """Fixed contiguous row ranges over the concatenated input files."""
    ranges = row_ranges.fixed_ranges([(f.path, f.rows) for f in files], shard_rows)
    return [
        ShardTask(index, lo, hi - lo, tuple(pieces), storage.join(out_dir, _format.shard_name(index)))
        for index, (lo, hi, pieces) in enumerate(ranges)
    ]


def read_rows(sources, columns: list[str] | None = None) -> pa.Table:
    """The rows of a shard from its input files, reading only the row groups that hold them."""
    return row_ranges.read_row_pieces(list(sources), columns)


def row_group_ranges(row_bytes: np.ndarray, target: int) -> list[tuple[int, int]]:
    """Contiguous row ranges of about ``target`` bytes each (at least one row each)."""
    ranges, start, acc = [], 0, 0
    for i, b in enumerate(row_bytes.tolist()):
        if i > start and acc + b > target:
            ranges.append((start, i))
            start, acc = i, 0
        acc += b
    if start < len(row_bytes):
        ranges.append((start, len(row_bytes)))
    return ranges
