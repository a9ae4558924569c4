"""Shards of a cache: a fixed plan, one file per shard, written whole or not at all.

Shard i holds the input rows [i·shard_rows, (i+1)·shard_rows) in input order: a pure function of
the input files and ``shard_rows``. A shard is written to a temporary name and renamed when
complete (``storage.atomic_output``), so a crash or a retried Ray task leaves either no file or a
whole one, never a partial file or duplicate rows. Each shard carries the cache key (teacher,
settings, input fingerprint) and its row range in the Parquet key-value metadata, so a re-run
keeps exactly the finished shards that belong to the same cache and recomputes the rest.

Within a shard, rows go to row groups of about ``row_group_bytes`` (uncompressed, counted from the
token lengths before inference), which also bounds a worker's memory to about one row group.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from .. import storage
from ..storage import file_sha256

SHARD_RE = re.compile(r"^shard-(\d{5,})\.parquet$")
KEY_CACHE = b"kd_teacher.cache_key"
KEY_FIRST_ROW = b"kd_teacher.first_row"
KEY_ROWS = b"kd_teacher.rows"
KEY_TOKENS = b"kd_teacher.tokens"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


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
        return shard_name(self.index)

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
    for path, rows in storage.parquet_row_counts(directory):
        f = recorded.get(path)
        files.append(InputFile(path, rows, f["sha256"] if f and f.get("rows") == rows else file_sha256(path)))
    return files


def plan_shards(files: list[InputFile], shard_rows: int, out_dir: str) -> list[ShardTask]:
    """Fixed contiguous row ranges over the concatenated input files."""
    ranges = storage.fixed_ranges([(f.path, f.rows) for f in files], shard_rows)
    return [
        ShardTask(index, lo, hi - lo, tuple(pieces), storage.join(out_dir, shard_name(index)))
        for index, (lo, hi, pieces) in enumerate(ranges)
    ]


def read_rows(sources, columns: list[str] | None = None) -> pa.Table:
    """The rows of a shard from its input files, reading only the row groups that hold them."""
    return storage.read_row_pieces(list(sources), columns)


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


def parquet_options(schema: pa.Schema, float_paths: list[str], float16_encoding: str) -> dict:
    """zstd; byte-stream-split and no dictionary or statistics for float columns; page checksums."""
    half = {
        f"{f.name}.list.element"
        for f in schema
        if (pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)) and f.type.value_type == pa.float16()
    }
    bss = [p for p in float_paths if float16_encoding == "byte_stream_split" or p not in half]
    float_names = {p.split(".")[0] for p in float_paths}
    other = [f.name for f in schema if f.name not in float_names]
    return dict(
        compression="zstd",
        use_byte_stream_split=bss or False,
        use_dictionary=other or False,
        write_statistics=[n for n in other if n not in ("input_ids", "token_type_ids")] or False,
        write_page_checksum=True,
    )


class ShardSink:
    """Where a shard's row groups go; counts rows and tokens."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema):
        self._writer, self.schema, self.rows, self.tokens = writer, schema, 0, 0

    def write(self, table: pa.Table) -> None:
        """One row group."""
        if not table.schema.equals(self.schema, check_metadata=False):
            table = table.cast(self.schema)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows
        self.tokens += int(pc.sum(table.column("num_tokens")).as_py() or 0)


@contextlib.contextmanager
def shard_file(path: str, schema: pa.Schema, options: dict, metadata: dict[bytes, bytes]) -> Iterator[ShardSink]:
    """A shard written row group by row group under a temporary name, renamed when complete."""
    with storage.atomic_output(path) as stream:
        writer = pq.ParquetWriter(stream, schema.with_metadata(metadata), **options)
        sink = ShardSink(writer, schema)
        try:
            yield sink
            writer.add_key_value_metadata({KEY_TOKENS: str(sink.tokens).encode()})
        finally:
            writer.close()


def shard_metadata(cache_key: str, task: ShardTask) -> dict[bytes, bytes]:
    return {
        KEY_CACHE: cache_key.encode(),
        KEY_FIRST_ROW: str(task.first_row).encode(),
        KEY_ROWS: str(task.rows).encode(),
    }


def inspect_shard(
    path: str, expected_rows: int | None = None, cache_key: str | None = None, first_row: int | None = None
) -> tuple[pq.FileMetaData | None, str | None]:
    """(footer, None) for a sound shard, else (footer or None, the reason it is not)."""
    filesystem, p = storage.resolve(path)
    info = filesystem.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        return None, "missing"
    try:
        with filesystem.open_input_file(p) as fh:
            meta = pq.ParquetFile(fh).metadata
    except Exception as exc:  # truncated, overwritten, not Parquet
        return None, f"footer unreadable ({type(exc).__name__}: {exc}); the file is truncated or corrupt"
    kv = meta.metadata or {}
    if expected_rows is not None and meta.num_rows != expected_rows:
        return meta, f"holds {meta.num_rows} rows, expected {expected_rows}"
    if cache_key is not None and kv.get(KEY_CACHE, b"").decode() != cache_key:
        return meta, "written for another teacher, input or settings (cache key differs)"
    if first_row is not None and kv.get(KEY_FIRST_ROW, b"").decode() != str(first_row):
        return meta, f"starts at input row {kv.get(KEY_FIRST_ROW, b'?').decode()}, expected {first_row}"
    return meta, None


def cache_footprint(cache_dir: str, manifest: dict, columns: Sequence[str] = ()) -> tuple[pa.Schema, int, int]:
    """From the shards' footers, in one pass: the columns of the cache (the first shard's schema),
    the uncompressed bytes of all row groups, and the compressed bytes of the list ``columns``."""
    schema, total, compressed = None, 0, 0
    wanted = {f"{c}.list.element" for c in columns}
    for shard in manifest["shards"]:
        filesystem, p = storage.resolve(storage.join(cache_dir, shard["file"]))
        with filesystem.open_input_file(p) as fh:
            meta = pq.ParquetFile(fh).metadata
        schema = schema or meta.schema.to_arrow_schema()
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            total += rg.total_byte_size
            compressed += sum(
                rg.column(c).total_compressed_size
                for c in range(rg.num_columns)
                if rg.column(c).path_in_schema in wanted
            )
    return schema or pa.schema([]), total, compressed
