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

    Whole rounds: a multiple of ``slots`` blocks (every worker gets one block per round), as few
    rounds as keep every block at most ``block_rows`` examples, and never fewer than two blocks
    nor more blocks than examples. A second round costs a scheduling gap on every worker, and the
    driver writes the last round's rows after the compute, so a small split takes one round when
    there are two or more workers; one worker gets two blocks, so that the driver writes the first
    block's rows while the second computes. The output does not depend on the choice.
    """
    rounds = max(1, -(-rows // (block_rows * max(1, slots))))
    return max(1, min(rows, max(2, rounds * slots)))


def plan_reads(files: list[tuple[str, int]], blocks: int) -> list[list[Piece]]:
    """Pure: the rows of ``files`` ((path, rows), in order) cut into ``blocks`` contiguous ranges
    of near-equal size; each range is the list of its pieces of files. With no rows at all, one
    block reads the empty first file (so that it still has the schema)."""
    total = sum(n for _, n in files)
    if total == 0:
        return [[(files[0][0], 0, 0)]] if files else [[]]
    bounds = [total * k // blocks for k in range(blocks + 1)]
    return [p for p in (storage.row_pieces(files, lo, hi) for lo, hi in zip(bounds, bounds[1:])) if p]
