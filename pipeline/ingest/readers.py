"""Split an input file into independent chunks and read one chunk: the unit of work of a Ray task.

Text files (TSV / CSV / JSONL) are cut at line boundaries about every ``chunk_bytes`` (the
driver reads only the bytes around each cut); tasks count each chunk's lines, so that every
validation task knows the absolute line numbers of its rows. Compressed text files are one chunk, decompressed while streaming. Parquet files are one
chunk per row group. No process ever holds a whole corpus.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pyarrow.parquet as pq

from ..errors import PipelineError
from ..storage import resolve

_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


class InputError(PipelineError, ValueError):
    """An input file that cannot be read at all (not a row problem): names the file and the reason."""


@dataclass(frozen=True)
class Chunk:
    path: str
    fmt: str
    first_line: int  # 1-based line (or row) number of the chunk's first row
    start: int = 0  # byte offset (text) — or row group index (parquet)
    end: int = -1  # byte offset past the chunk (text); -1 = to the end
    max_rows: int = -1  # rows to read at most; -1 = all
    compressed: bool = False
    skip_lines: int = 0  # compressed text: header lines to skip first

    def as_item(self) -> dict:
        return asdict(self)


def unreadable(path: str, where: str, exc: BaseException) -> InputError:
    """The error of a file that cannot be read at all (a truncated or corrupt compressed stream, a
    damaged Parquet page): the file, where, and the reader's reason, cut to a line."""
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    return InputError(f"{path}: cannot be read{where}: {reason}")


def read_header(path: str) -> bytes:
    """The first line of a text file, without its line ending."""
    filesystem, p = resolve(path)
    compression = "detect" if is_compressed(path) else None
    try:
        with filesystem.open_input_stream(p, compression=compression) as raw:
            line = io.BufferedReader(raw).readline()
    except (OSError, EOFError) as exc:
        raise unreadable(path, " (its first line)", exc) from None
    if not line:
        raise InputError(f"{path}: the file is empty, expected a header line")
    return line.rstrip(b"\n")


def text_ranges(path: str, chunk_bytes: int, header: bool) -> list[tuple[int, int]]:
    """Pure of the file's bytes: line-aligned byte ranges of about ``chunk_bytes`` each, after the
    header line. The driver reads only the few bytes around each cut (to find the next line
    start), never the file: counting lines is the tasks' work (:func:`count_lines`)."""
    filesystem, p = resolve(path)
    size = filesystem.get_file_info(p).size
    first = len(read_header(path)) + 1 if header else 0
    first = min(first, size)
    bounds = [first]
    with filesystem.open_input_file(p) as fh:
        cut = first + chunk_bytes
        while cut < size:
            start = _next_line_start(fh, cut, size)
            if start >= size:
                break
            if start > bounds[-1]:
                bounds.append(start)
            cut = max(start, cut) + chunk_bytes
    bounds.append(size)
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a] or [(first, first)]


def _next_line_start(fh, offset: int, size: int) -> int:
    """The first line start at or after ``offset`` (the byte after a newline at ``offset - 1`` or later)."""
    pos = offset - 1
    fh.seek(pos)
    while pos < size:
        block = fh.read(1 << 16)
        if not block:
            break
        i = block.find(b"\n")
        if i >= 0:
            return pos + i + 1
        pos += len(block)
    return size


def count_lines(path: str, start: int, end: int) -> int:
    """Lines in bytes [start, end) of a text file (a last line without a newline counts)."""
    try:
        filesystem, p = resolve(path)
        with filesystem.open_input_file(p) as fh:
            fh.seek(start)
            data = fh.read(end - start)
    except OSError as exc:  # on a worker node that does not see the driver's file, among others
        raise unreadable(path, f" (bytes {start:,}-{end:,})", exc) from None
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def plan_text_chunks(
    path: str, fmt: str, ranges: list[tuple[int, int]], lines: list[int], header: bool, limit: int | None
) -> list[Chunk]:
    """Pure: chunks of the byte ``ranges`` with their line counts; ``limit`` data rows at most."""
    first = 2 if header else 1
    chunks, line, rows = [], first, 0
    for (start, end), n in zip(ranges, lines):
        if limit is not None and rows >= limit:
            break
        take = n if limit is None else min(n, limit - rows)
        if n:
            chunks.append(Chunk(path, fmt, line, start, end, max_rows=take if take < n else -1))
        line, rows = line + n, rows + take
    return chunks


def plan_compressed_chunk(path: str, fmt: str, header: bool, limit: int | None) -> list[Chunk]:
    """A compressed text file is one chunk, decompressed while streaming."""
    first = 2 if header else 1
    return [Chunk(path, fmt, first, compressed=True, max_rows=limit or -1, skip_lines=first - 1)]


def is_compressed(path: str) -> bool:
    return path.lower().endswith(_COMPRESSED)


def plan_parquet_chunks(path: str, columns: list[str], limit: int | None) -> list[Chunk]:
    filesystem, p = resolve(path)
    try:
        meta = pq.ParquetFile(filesystem.open_input_file(p)).metadata
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from None
    names = meta.schema.to_arrow_schema().names
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(f"{path}: column(s) {missing} not found; the file has {names}")
    chunks, row = [], 1
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        take = n if limit is None else min(n, limit - (row - 1))
        if take <= 0:
            break
        chunks.append(Chunk(path, "parquet", row, start=g, max_rows=take))
        row += n
    return chunks


def iter_chunk_lines(chunk: Chunk) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes without the LF) for every line of a text chunk."""
    filesystem, p = resolve(chunk.path)
    line_no = chunk.first_line
    if chunk.compressed:
        with filesystem.open_input_stream(p, compression="detect") as raw:
            reader = io.BufferedReader(raw, buffer_size=1 << 20)
            for _ in range(chunk.skip_lines):
                reader.readline()
            for n, line in enumerate(reader):
                if 0 <= chunk.max_rows <= n:
                    return
                yield line_no, line.removesuffix(b"\n")
                line_no += 1
        return
    with filesystem.open_input_file(p) as fh:
        fh.seek(chunk.start)
        data = fh.read(chunk.end - chunk.start)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if chunk.max_rows >= 0:
        lines = lines[: chunk.max_rows]
    for line in lines:
        yield line_no, line
        line_no += 1


def read_parquet_chunk(chunk: Chunk, columns: list[str]):
    filesystem, p = resolve(chunk.path)
    table = pq.ParquetFile(filesystem.open_input_file(p)).read_row_group(chunk.start, columns=columns)
    return table.slice(0, chunk.max_rows) if chunk.max_rows >= 0 else table
