"""How a split's examples are cut into Ray blocks, and how a task reads its block.

The driver reads only the Parquet footers (row counts) and plans contiguous row ranges; each
task reads its own range straight from the files, row group by row group. No Ray read or
repartition step runs: on a small split those cost about a second per pass.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .. import storage

Piece = tuple[str, int, int]  # (Parquet file, first row, end row) within that file


def plan_blocks(rows: int, slots: int, block_rows: int) -> int:
    """Pure: how many Ray blocks a split of ``rows`` examples is cut into for ``slots`` workers.

    At least two blocks per worker (so every worker has work and the last blocks even out), at
    most ``block_rows`` examples per block, never more blocks than examples. Fewer, larger
    blocks keep the per-task scheduling cost low; the output does not depend on the choice.
    """
    return max(1, min(rows, max(2 * slots, -(-rows // block_rows))))


def plan_reads(files: list[tuple[str, int]], blocks: int) -> list[list[Piece]]:
    """Pure: the rows of ``files`` ((path, rows), in order) cut into ``blocks`` contiguous ranges
    of near-equal size; each range is the list of its pieces of files. With no rows at all, one
    block reads the empty first file (so that it still has the schema)."""
    total = sum(n for _, n in files)
    if total == 0:
        return [[(files[0][0], 0, 0)]] if files else [[]]
    bounds = [total * k // blocks for k in range(blocks + 1)]
    plan: list[list[Piece]] = []
    for lo, hi in zip(bounds, bounds[1:]):
        pieces, offset = [], 0
        for path, n in files:
            start, stop = max(lo, offset), min(hi, offset + n)
            if start < stop:
                pieces.append((path, start - offset, stop - offset))
            offset += n
        plan.append(pieces)
    return [p for p in plan if p]


def list_files(directory: str) -> list[tuple[str, int]]:
    """The Parquet files of ``directory`` in name order, with their row counts (from the footers)."""
    filesystem, p = storage.resolve(directory)
    infos = sorted((i for i in filesystem.get_file_info(pafs.FileSelector(p))
                    if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")), key=lambda i: i.base_name)
    out = []
    for info in infos:
        path = storage.join(directory, info.base_name)
        with filesystem.open_input_file(info.path) as fh:
            out.append((path, pq.ParquetFile(fh).metadata.num_rows))
    return out


def read_pieces(pieces: list[Piece]) -> pa.Table:
    """The rows of ``pieces``, in order, reading only the row groups that hold them."""
    tables = []
    for path, start, stop in pieces:
        filesystem, p = storage.resolve(path)
        with filesystem.open_input_file(p) as fh:
            pf = pq.ParquetFile(fh)
            groups, first, offset = [], None, 0
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                if offset < stop and offset + n > start or (start == stop == 0 and g == 0):
                    groups.append(g)
                    first = offset if first is None else first
                offset += n
            table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
        tables.append(table.slice(start - (first or 0), stop - start))
    return pa.concat_tables(tables) if len(tables) != 1 else tables[0]
