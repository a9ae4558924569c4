"""How a split's examples are cut into Ray blocks.

The driver reads only the Parquet footers (``storage.parquet_row_counts``) and plans contiguous
row ranges; each task reads its own range straight from the files, row group by row group
(``storage.read_row_pieces``). No Ray read or
repartition step runs: on a small split those cost about a second per pass.
"""

from __future__ import annotations

from .. import storage

Piece = storage.RowPiece  # (Parquet file, first row, end row) within that file


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
    return [p for p in (storage.row_pieces(files, lo, hi) for lo, hi in zip(bounds, bounds[1:])) if p]
