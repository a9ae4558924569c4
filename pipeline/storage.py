"""Paths that may be local or ``pyarrow.fs`` URIs, and files that appear only when complete."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import uuid
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs


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
    filesystem, p = resolve(path)
    filesystem.create_dir(p, recursive=True)


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
    infos = [i for i in filesystem.get_file_info(pafs.FileSelector(p, allow_not_found=True))
             if i.type == pafs.FileType.File and i.base_name.endswith(suffix) and not i.base_name.startswith(".")]
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


def read_row_pieces(pieces: list[RowPiece], columns: list[str] | None = None) -> pa.Table:
    """The rows of ``pieces``, in order, reading only the row groups that hold them; a piece of
    no rows gives the file's (empty) schema; no pieces give an empty table."""
    tables = []
    for path, start, stop in pieces:
        filesystem, p = resolve(path)
        with filesystem.open_input_file(p) as fh:
            pf = pq.ParquetFile(fh)
            groups, first, offset = [], 0, 0
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


class OutputError(OSError):
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
        return self.strerror


def _errno(exc: BaseException) -> int | None:
    """The errno of an OSError, also when pyarrow reports it only in the message ("[errno 28] ...")."""
    if getattr(exc, "errno", None):
        return exc.errno
    text = str(exc)
    for code in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EPERM, errno.EIO):
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


class ShardWriter:
    """Writes an ordered stream of Arrow tables into Parquet files of ``shard_rows`` rows each.

    Each shard is written to a temporary name and renamed when complete, so a reader never sees
    a half-written file under a final name. Shard names depend only on the row order, so the
    same rows give the same files whatever the number of Ray blocks.

    ``writers`` > 1 encodes up to that many shards at once in background threads (Parquet
    encoding releases the GIL), so the caller goes on receiving rows meanwhile and the shards of
    the last rows are written side by side; the files are the same. A failed write is raised by
    the next ``write`` or by ``close``, after every shard in flight has finished or failed, the
    first failure in shard order first.
    """

    def __init__(self, directory: str, schema: pa.Schema, shard_rows: int, prefix: str = "part",
                 row_group_rows: int = 16_384, writers: int = 1, **parquet_options):
        self.directory, self.schema, self.shard_rows = directory, schema, shard_rows
        self.prefix, self.row_group_rows, self.options = prefix, row_group_rows, parquet_options
        self.shards: list[dict] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writers = max(1, writers)
        self._pool = None
        self._in_flight: list = []  # (name, future) of the shards being written, in shard order
        makedirs(directory)
        self._remove_files(lambda name: name.startswith(f".{self.prefix}-") and name.endswith(".tmp"))

    def _remove_files(self, stale) -> None:
        filesystem, p = resolve(self.directory)
        for info in filesystem.get_file_info(pafs.FileSelector(p)):
            if info.type == pafs.FileType.File and stale(info.base_name):
                filesystem.delete_file(info.path)

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table.select(self.schema.names).cast(self.schema))
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.shard_rows:
            combined = pa.concat_tables(self._pending)
            self._flush(combined.slice(0, self.shard_rows))
            rest = combined.slice(self.shard_rows)
            self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> list[dict]:
        if self._pending_rows or not self.shards:
            table = pa.concat_tables(self._pending) if self._pending else self.schema.empty_table()
            self._flush(table)
        self._pending, self._pending_rows = [], 0
        try:
            self._wait(0)
        finally:
            self._stop_pool()
        # A rewrite replaces the whole set: shards of an earlier, longer run must not linger. They
        # go only now, so a write that fails part-way loses nothing that was complete before.
        written = {s["file"] for s in self.shards}
        self._remove_files(lambda name: name.startswith(self.prefix + "-") and name.endswith(".parquet")
                           and name not in written)
        return self.shards

    def abort(self) -> None:
        """After a failure elsewhere: wait for the shards in flight (so that nothing is written once
        the caller has given up) without raising; the rows not yet in a shard are dropped."""
        from concurrent.futures import wait

        self._pending, self._pending_rows = [], 0
        wait([f for _, f in self._in_flight])
        self._in_flight = []
        self._stop_pool()

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _flush(self, table: pa.Table) -> None:
        name = f"{self.prefix}-{len(self.shards):05d}.parquet"
        if self._writers == 1:
            self._write_file(name, table)
            self.shards.append({"file": name, "rows": table.num_rows})
            return
        self.shards.append({"file": name, "rows": table.num_rows})  # (a failure is raised before close returns them)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._writers, thread_name_prefix="shard-writer")
        self._wait(self._writers - 1)  # at most `writers` shards (and their rows) held at once
        self._in_flight.append((name, self._pool.submit(self._write_file, name, table)))

    def _wait(self, keep: int) -> None:
        """Until at most ``keep`` shards are in flight. On a failure: until none is; the shards
        after the failed one that were finished meanwhile are removed (what stays is the run of
        complete shards from the first, as when writing one at a time); then the failure is raised."""
        from concurrent.futures import wait

        while len(self._in_flight) > keep:
            _, first = self._in_flight.pop(0)
            if first.exception() is None:
                continue
            later, self._in_flight = self._in_flight, []
            wait([f for _, f in later])
            self._stop_pool()  # the writer is done with: no thread is left behind
            for name, f in later:
                if f.exception() is None:
                    filesystem, path = resolve(join(self.directory, name))
                    with contextlib.suppress(OSError):
                        filesystem.delete_file(path)
            raise first.exception()

    def _write_file(self, name: str, table: pa.Table) -> None:
        with atomic_output(join(self.directory, name)) as out:
            pq.write_table(table.combine_chunks(), out, row_group_size=self.row_group_rows,
                           compression="zstd", **self.options)


def file_sha256(path: str) -> str:
    """SHA-256 of a file (local path or pyarrow.fs URI), read in 8 MiB chunks."""
    filesystem, p = resolve(path)
    h = hashlib.sha256()
    with filesystem.open_input_stream(p) as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()
