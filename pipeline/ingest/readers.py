"""Split an input file into independent chunks and read one chunk: the unit of work of a Ray task.

Text files (TSV / CSV / JSONL) are cut at line boundaries about every ``chunk_bytes`` (the
driver reads only the bytes around each cut); tasks count each chunk's lines, so that every
validation task knows the absolute line numbers of its rows. Compressed text files are one chunk, decompressed while streaming. Parquet files are one
chunk per row group. No process ever holds a whole corpus.

A CSV record may span lines (a quoted field holding line breaks, RFC 4180). The tasks that count
a range's lines also read it from both quote states its first line can start in (at a record
start, or inside a quoted field); the driver chains those results from the top of the file and
moves each cut to the first record start at or after it (:func:`csv_spans`), so a chunk always
starts and ends at record boundaries and its rows keep the line number of their first line.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import NamedTuple

import pyarrow.parquet as pq

from ..errors import PipelineError
from ..storage import resolve

_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
_BOM = b"\xef\xbb\xbf"
# The bytes a CSV record read across lines may hold: a quote left open near the top of a large
# file would otherwise pull the rest of the file into one task's memory.
MAX_RECORD_BYTES = 16 << 20


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
    path: str,
    fmt: str,
    ranges: list[tuple[int, int]],
    lines: list[int],
    header: bool,
    limit: int | None,
    records: list[int] | None = None,
) -> list[Chunk]:
    """Pure: chunks of the byte ``ranges`` with their line counts and record counts (one record a
    line unless given); ``limit`` data rows at most."""
    first = 2 if header else 1
    chunks, line, rows = [], first, 0
    for (start, end), n_lines, n in zip(ranges, lines, lines if records is None else records):
        if limit is not None and rows >= limit:
            break
        take = n if limit is None else min(n, limit - rows)
        if n:
            chunks.append(Chunk(path, fmt, line, start, end, max_rows=take if take < n else -1))
        line, rows = line + n_lines, rows + take
    return chunks


def quote_open_after(line: bytes, in_quote: bool) -> bool:
    """Whether a quoted CSV field is still open at the end of ``line`` (one physical line, without
    its LF), given whether one was open at its start. The csv module's rules (what pandas, Excel
    and pyarrow read): a quote opens a field only as its first character, ``""`` inside it is a
    quote, and a quote anywhere else is a literal character, so a stray inch mark (``27" screen``)
    does not swallow the lines after it."""
    if b'"' not in line:
        return in_quote
    pos = 0
    if not in_quote and line.startswith(b'"'):
        in_quote, pos = True, 1
    while True:
        if in_quote:
            q = line.find(b'"', pos)
            if q < 0:
                return True
            if line.startswith(b'"', q + 1):  # "" is a quote inside the field
                pos = q + 2
                continue
            in_quote, pos = False, q + 1
        # Outside quotes up to the next delimiter; only a field's first character can open one.
        d = line.find(b",", pos)
        if d < 0 or line.find(b'"', d) < 0:
            return False
        pos = d + 1
        if line.startswith(b'"', pos):
            in_quote, pos = True, pos + 1


@dataclass(frozen=True)
class CsvScan:
    """A CSV byte range read from each quote state its first line may start in: index 0 = at a
    record start, index 1 = inside a quoted field opened before the range."""

    lines: int  # physical lines in the range (a last line without a newline counts)
    first: tuple[int, int]  # byte offset of the first record start in the range; -1 = none
    before: tuple[int, int]  # physical lines before that record start
    records: tuple[int, int]  # records that start in the range
    open_at_end: tuple[bool, bool]  # a quoted field still open at the range's end


def scan_csv(path: str, start: int, end: int) -> CsvScan:
    """Bytes [start, end) of a CSV file, scanned from both quote states (a counting task's work)."""
    try:
        filesystem, p = resolve(path)
        with filesystem.open_input_file(p) as fh:
            fh.seek(start)
            data = fh.read(end - start)
    except OSError as exc:
        raise unreadable(path, f" (bytes {start:,}-{end:,})", exc) from None
    return scan_csv_bytes(data, start)


def scan_csv_bytes(data: bytes, base: int) -> CsvScan:
    """Pure: :class:`CsvScan` of ``data`` found at byte ``base`` of its file. Only lines that hold a
    quote are looked at one by one; the others are counted in bulk."""
    n = len(data)
    first, before = [base if data else -1, -1], [0, 0]
    records, inq = [0, 0], [False, True]
    line_idx, pos = 0, 0
    while pos < n:
        q = data.find(b'"', pos)
        if q < 0:
            start = n
        else:
            nl = data.rfind(b"\n", pos, q)
            start = pos if nl < 0 else nl + 1
        # Lines [pos, start) hold no quote: each starts a record outside quotes, continues one inside.
        k = data.count(b"\n", pos, start) + (1 if start == n and not data.endswith(b"\n") else 0)
        for s in (0, 1):
            if not inq[s]:
                records[s] += k
        line_idx += k
        if q < 0:
            break
        end = data.find(b"\n", q)
        end = n if end < 0 else end
        line = data[start:end]
        if base == 0 and start == 0:
            line = line.removeprefix(_BOM)  # as the validator strips it from line 1
        for s in (0, 1):
            was = inq[s]
            records[s] += not was
            inq[s] = quote_open_after(line, was)
            if was and not inq[s] and first[s] < 0 and end + 1 < n:  # a record starts after this line
                first[s], before[s] = base + end + 1, line_idx + 1
        line_idx += 1
        pos = end + 1
    return CsvScan(line_idx, (first[0], first[1]), (before[0], before[1]), (records[0], records[1]), (inq[0], inq[1]))


def csv_spans(
    ranges: list[tuple[int, int]], scans: list[CsvScan]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pure: the ranges with each cut moved to the first record start at or after it, from the quote
    state at the top of the file chained through the ranges; with their lines and records. A range
    that lies inside one record joins the one before; without multi-line fields nothing moves."""
    spans: list[list[int]] = []  # [start, end, lines, records]
    state = 0  # the first range starts a record: after the header, or at the top of the file
    for (_, b), sc in zip(ranges, scans):
        first = sc.first[state]
        if first < 0:  # no record starts in the range: it ends the record begun before it
            if spans:
                spans[-1][1] = b
                spans[-1][2] += sc.lines
        else:
            skipped = sc.before[state]
            if spans:  # the lines before the first record start end the previous span's record
                spans[-1][1] = first
                spans[-1][2] += skipped
            spans.append([first, b, sc.lines - skipped, sc.records[state]])
        state = int(sc.open_at_end[state])
    return [(a, b) for a, b, _, _ in spans], [n for _, _, n, _ in spans], [r for _, _, _, r in spans]


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


class Record(NamedTuple):
    """One CSV record: its first line's number and its bytes (lines joined by LF, without the last)."""

    line: int
    raw: bytes
    last_line: int
    unclosed: bool = False  # the file ended inside a quoted field
    size: int = -1  # bytes of a record over MAX_RECORD_BYTES (``raw`` holds its head); -1 = whole


def iter_chunk_records(chunk: Chunk) -> Iterator[Record]:
    """The records of a text chunk: one a line (TSV, JSONL), or CSV records that may span lines."""
    if chunk.fmt != "csv":
        for line_no, raw in iter_chunk_lines(chunk):
            yield Record(line_no, raw, line_no)
        return
    filesystem, p = resolve(chunk.path)
    if chunk.compressed:
        with filesystem.open_input_stream(p, compression="detect") as raw:
            reader = io.BufferedReader(raw, buffer_size=1 << 20)
            for _ in range(chunk.skip_lines):
                reader.readline()
            lines = (line.removesuffix(b"\n") for line in reader)
            yield from csv_records(lines, chunk.first_line, chunk.max_rows)
        return
    with filesystem.open_input_file(p) as fh:
        yield from csv_records(_range_lines(fh, chunk.start, chunk.end), chunk.first_line, chunk.max_rows)


def _range_lines(fh, start: int, end: int, block: int = 1 << 20) -> Iterator[bytes]:
    """The lines (without their LF) of bytes [start, end) of an open file, read a block at a time:
    a chunk grown by a long multi-line record is never read whole."""
    fh.seek(start)
    pos, tail = start, [b""]
    while pos < end:
        data = fh.read(min(block, end - pos))
        if not data:
            break
        pos += len(data)
        i = data.find(b"\n")
        if i < 0:  # a line longer than a block: its pieces are joined once, at its end
            tail.append(data)
            continue
        tail.append(data[:i])
        yield b"".join(tail)
        parts = data[i + 1 :].split(b"\n")
        tail = [parts.pop()]
        yield from parts
    last = b"".join(tail)
    if last:
        yield last


def csv_records(lines: Iterable[bytes], first_line: int, max_rows: int = -1) -> Iterator[Record]:
    """Pure: physical lines (from a record start) → CSV records, ``max_rows`` at most (-1 = all).
    The same quote rules as :func:`scan_csv_bytes`, so records end where the plan expects."""
    line_no, n = first_line, 0
    parts: list[bytes] = []
    size, start, in_quote = 0, first_line, False
    for line in lines:
        if not in_quote:
            if 0 <= max_rows <= n:
                return
            start = line_no
            in_quote = quote_open_after(line.removeprefix(_BOM) if line_no == 1 else line, False)
            if not in_quote:  # the usual case: a record of one line
                yield Record(line_no, line, line_no)
                line_no, n = line_no + 1, n + 1
                continue
            parts, size = [line], len(line)
        else:
            size += 1 + len(line)
            if size <= MAX_RECORD_BYTES:
                parts.append(line)
            in_quote = quote_open_after(line, True)
            if not in_quote:
                raw = b"\n".join(parts)
                yield Record(start, raw, line_no, size=size if size > len(raw) else -1)
                n += 1
        line_no += 1
    if in_quote:  # the file ended inside a quoted field: the record is kept whole, to be rejected
        raw = b"\n".join(parts)
        yield Record(start, raw, line_no - 1, unclosed=True, size=size if size > len(raw) else -1)


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
