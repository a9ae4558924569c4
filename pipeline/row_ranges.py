"""Row ranges over a folder of Parquet files: a corpus read in pieces by many tasks.

A stage plans its tasks as fixed ranges of rows of its input folder (:func:`fixed_ranges`), a plan
that depends only on the files and the range size; each task reads its range's pieces of files
(:func:`read_row_pieces`), only the row groups that hold them. Files are opened through
``storage.resolve`` looked up at each call, as every other read is (the fault tests route it).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import storage

RowPiece = tuple[str, int, int]  # (Parquet file, first row, end row) within that file


def data_files(directory: str, suffix: str = ".parquet") -> list[pafs.FileInfo]:
    """The files of ``directory`` ending in ``suffix``, in name order, temporary dot-files left
    out; none when the folder does not exist."""
    filesystem, p = storage.resolve(directory)
    infos = [
        i
        for i in filesystem.get_file_info(pafs.FileSelector(p, allow_not_found=True))
        if i.type == pafs.FileType.File and i.base_name.endswith(suffix) and not i.base_name.startswith(".")
    ]
    return sorted(infos, key=lambda i: i.base_name)


def parquet_row_counts(directory: str) -> list[tuple[str, int]]:
    """The Parquet files of ``directory`` (:func:`data_files`) with their row counts from the footers."""
    filesystem, _ = storage.resolve(directory)
    out = []
    for info in data_files(directory):
        with filesystem.open_input_file(info.path) as fh:
            out.append((storage.join(directory, info.base_name), pq.ParquetFile(fh).metadata.num_rows))
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
        filesystem, p = storage.resolve(path)
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
