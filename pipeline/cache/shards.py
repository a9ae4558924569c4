"""A cache's shard files: names, footer metadata, Parquet options, writing one whole, checking one.

A shard is written to a temporary name and renamed when complete (``storage.atomic_output``), so
a crash or a retried task leaves either no file or a whole one, never a partial file. Each shard
carries the cache key (teacher, settings, input fingerprint) and its row range in the Parquet
key-value metadata, so a re-run keeps exactly the finished shards that belong to the same cache.
Which input rows go to which shard is the teacher stage's plan (``pipeline/teacher/shards.py``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from .. import storage

SHARD_RE = re.compile(r"^shard-(\d{5,})\.parquet$")
KEY_CACHE = b"kd_teacher.cache_key"
KEY_FIRST_ROW = b"kd_teacher.first_row"
KEY_ROWS = b"kd_teacher.rows"
KEY_TOKENS = b"kd_teacher.tokens"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


class RowRange(Protocol):
    """The input rows a shard holds (the teacher stage's ``ShardTask``)."""

    @property
    def first_row(self) -> int: ...

    @property
    def rows(self) -> int: ...


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


def shard_metadata(cache_key: str, task: RowRange) -> dict[bytes, bytes]:
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
