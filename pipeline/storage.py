"""Paths that may be local or ``pyarrow.fs`` URIs, and files that appear only when complete."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from .errors import PipelineError


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it, for a local path or a URI (s3://, gs://, hdfs://, file://)."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    if "://" in base:
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base, *parts)


def makedirs(path: str) -> None:
    """Create a folder and its parents; a path that cannot be a folder (a file, no permission)
    raises :class:`OutputError` naming it."""
    filesystem, p = resolve(path)
    try:
        filesystem.create_dir(p, recursive=True)
    except OSError as exc:
        raise OutputError(path, exc) from exc


def exists(path: str) -> bool:
    filesystem, p = resolve(path)
    return filesystem.get_file_info(p).type != pafs.FileType.NotFound


def delete_if_exists(path: str) -> None:
    filesystem, p = resolve(path)
    if filesystem.get_file_info(p).type != pafs.FileType.NotFound:
        filesystem.delete_file(p)


# ---------------------------------------------------------------------------------------------
# Row ranges over a folder of Parquet files (a corpus read in pieces by many tasks)

RowPiece = tuple[str, int, int]  # (Parquet file, first row, end row) within that file


def data_files(directory: str, suffix: str = ".parquet") -> list[pafs.FileInfo]:
    """The files of ``directory`` ending in ``suffix``, in name order, temporary dot-files left
    out; none when the folder does not exist."""
    filesystem, p = resolve(directory)
    infos = [
        i
        for i in filesystem.get_file_info(pafs.FileSelector(p, allow_not_found=True))
        if i.type == pafs.FileType.File and i.base_name.endswith(suffix) and not i.base_name.startswith(".")
    ]
    return sorted(infos, key=lambda i: i.base_name)


def parquet_row_counts(directory: str) -> list[tuple[str, int]]:
    """The Parquet files of ``directory`` (:func:`data_files`) with their row counts from the footers."""
    filesystem, _ = resolve(directory)
    out = []
    for info in data_files(directory):
        with filesystem.open_input_file(info.path) as fh:
            out.append((join(directory, info.base_name), pq.ParquetFile(fh).metadata.num_rows))
    return out


def row_pieces(files: list[tuple[str, int]], start: int, stop: int) -> list[RowPiece]:
    """Pure: rows [start, stop) of the concatenation of ``files`` ((path, rows), in order), as
    pieces of files."""
    pieces, offset = [], 0
    for path, n in files:
        lo, hi = max(start, offset), min(stop, offset + n)
        if lo < hi:
            pieces.append((path, lo - offset, hi - offset))
        offset += n
    return pieces


def fixed_ranges(files: list[tuple[str, int]], per_range: int) -> list[tuple[int, int, list[RowPiece]]]:
    """Pure: the rows of ``files`` ((path, rows), in order) cut into consecutive ranges of
    ``per_range`` rows (the last one shorter): (first row, end row, pieces of files) each. A plan
    that depends only on the files and ``per_range``, never on the workers."""
    total = sum(n for _, n in files)
    return [
        (lo, min(lo + per_range, total), row_pieces(files, lo, min(lo + per_range, total)))
        for lo in range(0, total, per_range)
    ]


def read_row_pieces(pieces: list[RowPiece], columns: list[str] | None = None) -> pa.Table:
    """The rows of ``pieces``, in order, reading only the row groups that hold them; a piece of
    no rows gives the file's (empty) schema; no pieces give an empty table."""
    tables = []
    for path, start, stop in pieces:
        filesystem, p = resolve(path)
        with filesystem.open_input_file(p) as fh:
            pf = pq.ParquetFile(fh)
            groups: list[int] = []
            first, offset = 0, 0
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                if offset < stop and offset + n > start:
                    first = offset if not groups else first
                    groups.append(g)
                offset += n
            if groups:
                table = pf.read_row_groups(groups, columns=columns)
            else:
                table = pf.schema_arrow.empty_table()
                table = table.select(columns) if columns is not None else table
        tables.append(table.slice(start - first, stop - start))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _tmp_name(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/.{tail}.{uuid.uuid4().hex[:8]}.tmp"


class OutputError(PipelineError, OSError):
    """Writing an output failed (disk full, permission denied, ...).

    The message names the output's final path and the reason. Nothing was left under that name,
    and files written before are untouched.
    """

    def __init__(self, path: str, cause: BaseException):
        code = _errno(cause)
        reason = os.strerror(code) if code else f"{type(cause).__name__}: {cause}"
        super().__init__(code or errno.EIO, f"cannot write {path}: {reason}; nothing was written under this name")
        self.path = path

    def __str__(self) -> str:
        # always set: __init__ passes a message as OSError's second argument
        assert self.strerror is not None
        return self.strerror


def _errno(exc: BaseException) -> int | None:
    """The errno of an OSError, also when pyarrow reports it only in the message ("[errno 28] ...")."""
    code = getattr(exc, "errno", None)
    if code:
        return code
    text = str(exc)
    for code in (
        errno.ENOSPC,
        errno.EACCES,
        errno.EROFS,
        errno.EDQUOT,
        errno.EPERM,
        errno.EIO,
        errno.ENOTDIR,
        errno.EEXIST,
    ):
        if f"[errno {code}]" in text.lower():
            return code
    return None


# Errors that only a write can raise: inside the caller's block they are the stream's.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[pa.NativeFile]:
    """A stream whose content appears under ``path`` only once it is complete (write, then rename).

    On any error the temporary file is removed. An ``OSError`` while opening, closing or renaming,
    or a full disk / read-only filesystem while writing, raises :class:`OutputError` naming
    ``path`` and the reason.
    """
    filesystem, p = resolve(path)
    tmp = _tmp_name(p)
    try:
        stream = filesystem.open_output_stream(tmp)
    except OSError as exc:
        raise OutputError(path, exc) from exc
    try:
        try:
            yield stream
        except OSError as exc:
            if _errno(exc) in _WRITE_ERRNOS and not isinstance(exc, OutputError):
                raise OutputError(path, exc) from exc
            raise
        try:
            stream.close()
            filesystem.move(tmp, p)
        except OSError as exc:
            raise OutputError(path, exc) from exc
    except BaseException:
        with contextlib.suppress(Exception):
            stream.close()
        with contextlib.suppress(Exception):
            filesystem.delete_file(tmp)
        raise


def write_json(path: str, obj: object) -> None:
    with atomic_output(path) as out:
        out.write((json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str) -> object:
    filesystem, p = resolve(path)
    with filesystem.open_input_stream(p) as fh:
        return json.loads(fh.read().decode())


def write_parquet(path: str, table: pa.Table, row_group_rows: int = 16_384, **options) -> dict:
    """One whole Parquet file (zstd), under its final name only once complete; returns its record."""
    with atomic_output(path) as out:
        pq.write_table(table.combine_chunks(), out, row_group_size=row_group_rows, compression="zstd", **options)
    return file_record(path, table.num_rows)


def write_lines(path: str, lines: list[str]) -> dict:
    """A text file of ``lines`` (each ending in a newline), written whole; returns its record."""
    with atomic_output(path) as out:
        out.write("".join(line + "\n" for line in lines).encode())
    return file_record(path, len(lines))


def file_record(path: str, rows: int | None = None) -> dict:
    """What a task reports of a file it wrote: path, rows, bytes, SHA-256."""
    filesystem, p = resolve(path)
    return {"path": path, "rows": rows, "bytes": filesystem.get_file_info(p).size, "sha256": file_sha256(path)}


def file_sha256(path: str) -> str:
    """SHA-256 of a file (local path or pyarrow.fs URI), read in 8 MiB chunks."""
    filesystem, p = resolve(path)
    h = hashlib.sha256()
    with filesystem.open_input_stream(p) as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()
