"""Exact nearest rows by cosine: low-precision scores find a few candidates, float64 ranks them.

The reference ranks every row of the (unit-row) GloVe matrix by its float64 dot product with the
query row and keeps the best ``k``, the query's own row left out. :class:`NeighbourSearch` gives
that same set (ties go to the lower row) without computing 100,000 float64 products per query:

1. Scores in low precision (on a CPU bfloat16 where it multiplies that fast, else float32; on a
   GPU float32) for a chunk of queries, one tile of matrix rows at a time; while a tile's scores
   are in cache, each block of ``BLOCK`` consecutive rows is reduced to its maximum.
2. Every low-precision score is within ``slack`` of the float64 one (below). Let τ be the
   (k+1)-th highest block maximum of a query: k+1 distinct rows score at least τ, so at least k
   rows other than the query's own have exact scores of at least τ - slack, and every row of the
   exact top k scores at least τ - 2·slack in low precision.
3. Candidates: the rows scoring at least τ - 2·slack (they lie in blocks whose maximum does),
   about 40 per query on GloVe 6B 50d; their float64 products decide.

The bound: rows of norm 1 (to 1e-4); rounding both factors to bfloat16 (unit roundoff u = 2^-8)
and the result once more, with float32 accumulation, errs by at most 3u + u^2 < 2^-6; float32 or
TF32 factors (u ≤ 2^-11) by less than 2^-8. A sample of rows checks the backend against float64
once per matrix; a precision whose error exceeds half its slack is not used.

Measured on one core of the 2-core VM, GloVe 6B 50d (100,000 rows): about 100 us per query,
against 230 us for float32 scores of every row and ``torch.topk``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

BLOCK = 64  # rows per block maximum
CPU_TILE = 4096  # matrix rows per product on a CPU: a chunk's scores for one tile stay in cache
CPU_CHUNK = 128  # queries per product on a CPU
DEVICE_CHUNK = 4096  # on a GPU: 4096 x 100k float32 scores = 1.6 GB, one product
SLACK = {torch.bfloat16: 2.0**-6, torch.float32: 2.0**-8, torch.float64: 2.0**-30}
_CHECK_ROWS = 64  # sample queries, against the first _CHECK_TARGETS rows
_CHECK_TARGETS = 8192


class NeighbourSearch:
    """The exact ``k`` nearest rows of ``matrix`` (a float32 tensor with unit or zero rows, on any
    device, used as given) for query rows of the same matrix.

    Holds a low-precision copy of the matrix (10 MB in bfloat16 for GloVe 6B 50d's first 100,000
    rows) and reuses one score buffer (26 MB on a CPU): one searching thread per object.
    """

    def __init__(self, matrix: torch.Tensor, tile: int | None = None, precisions=None):
        self.matrix = matrix
        self.n = len(matrix)
        cpu = matrix.device.type == "cpu"
        self.chunk = CPU_CHUNK if cpu else DEVICE_CHUNK
        width = tile or (CPU_TILE if cpu else self.n)
        self.tile = max(BLOCK, -(-width // BLOCK) * BLOCK)
        self.tiles_count = max(1, -(-self.n // self.tile))
        self.blocks = -(-self.n // BLOCK)
        # On a GPU float32 (fast enough there, and cuBLAS may reduce bfloat16 products in bfloat16)
        errors = self._errors(precisions or ((torch.bfloat16, torch.float32) if cpu else (torch.float32,)))
        accurate = [d for d, error in errors.items() if error <= SLACK[d] / 2] or [torch.float64]
        self.dtype = accurate[0] if len(accurate) == 1 or not cpu else self._fastest(accurate)
        self.slack = SLACK[self.dtype]
        low = matrix.to(self.dtype)
        last = self.tile * (self.tiles_count - 1)
        padded = torch.zeros(self.tile, matrix.shape[1], dtype=self.dtype, device=matrix.device)
        padded[: self.n - last] = low[last:]
        self._tiles = [low[c : c + self.tile] for c in range(0, last, self.tile)] + [padded]
        self._buffer: torch.Tensor | None = None

    def top(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Row ids of the ``k`` highest exact cosines of each of ``rows``, itself excluded, each row
        of the result in increasing order. Needs ``k < len(matrix)``."""
        out = np.empty((len(rows), k), dtype=np.int64)
        for start in range(0, len(rows), self.chunk):
            part = rows[start : start + self.chunk]
            out[start : start + len(part)] = self._exact_top(part, k) if self.blocks <= k else self._top(part, k)
        out.sort(axis=1)
        return out

    # -- the search of one chunk of queries ---------------------------------------------------

    def _top(self, rows: np.ndarray, k: int) -> np.ndarray:
        c = len(rows)
        queries = torch.from_numpy(rows).to(self.matrix.device)
        scores, maxima = self._scores(queries, c)  # (tiles, c, tile) low precision; (c, blocks) float32
        per_tile = self.tile // BLOCK
        tau = torch.topk(maxima, k + 1, dim=1, sorted=False).values.amin(1)
        threshold = tau - 2 * self.slack
        query, block = (maxima >= threshold[:, None]).nonzero(as_tuple=True)
        values = scores.view(self.tiles_count, c, per_tile, BLOCK)[block // per_tile, query, block % per_tile]
        pick, offset = (values.float() >= threshold[query][:, None]).nonzero(as_tuple=True)
        query, row = query[pick], block[pick] * BLOCK + offset
        keep = (row < self.n) & (row != queries[query])
        return self._rank(queries, query[keep], row[keep], k)

    def _scores(self, queries: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-precision scores of ``queries`` against every tile (padding rows score -inf) and the
        maximum of each block, taken tile by tile while the tile's scores are in cache."""
        device = self.matrix.device
        if self._buffer is not None and self._buffer.shape[1] == c:
            buffer = self._buffer
        else:
            buffer = torch.empty(self.tiles_count, c, self.tile, dtype=self.dtype, device=device)
            if c == self.chunk:
                self._buffer = buffer
        per_tile = self.tile // BLOCK
        maxima = torch.empty(c, self.tiles_count * per_tile, device=device)
        q = self.matrix[queries].to(self.dtype)
        for i, tile in enumerate(self._tiles):
            torch.mm(q, tile.T, out=buffer[i])
            if i == self.tiles_count - 1:
                buffer[i, :, self.n - self.tile * i :] = -torch.inf
            maxima[:, i * per_tile : (i + 1) * per_tile] = buffer[i].view(c, per_tile, BLOCK).float().amax(-1)
        return buffer, maxima

    def _rank(self, queries: torch.Tensor, query: torch.Tensor, row: torch.Tensor, k: int) -> np.ndarray:
        """The best ``k`` candidates (``row`` for ``query``) of each query by float64 dot product,
        ties to the lower row."""
        exact = (self.matrix[queries[query]].double() * self.matrix[row].double()).sum(1)
        query_np, row_np, exact_np = query.cpu().numpy(), row.cpu().numpy(), exact.cpu().numpy()
        order = np.lexsort((row_np, -exact_np, query_np))
        counts = np.bincount(query_np, minlength=len(queries))
        if counts.min() < k:
            raise AssertionError("neighbour search: fewer candidates than k (the score bound does not hold)")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return row_np[order][starts[:, None] + np.arange(k)]

    def _exact_top(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Every row scored in float64 (matrices of fewer than k + 1 blocks)."""
        matrix = self.matrix.double()
        queries = torch.from_numpy(rows).to(self.matrix.device)
        scores = (matrix[queries] @ matrix.T).cpu().numpy()
        scores[np.arange(len(rows)), rows] = -np.inf
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    # -- choosing the precision ---------------------------------------------------------------

    def _errors(self, dtypes) -> dict[torch.dtype, float]:
        """The largest error of scores in each of ``dtypes`` on a sample of rows (float64 as truth);
        a precision is used where it errs by at most half its slack."""
        sample = torch.linspace(0, self.n - 1, min(self.n, _CHECK_ROWS), device=self.matrix.device).long()
        q, rows = self.matrix[sample], self.matrix[:_CHECK_TARGETS]
        truth = q.double() @ rows.double().T
        return {d: float(((q.to(d) @ rows.to(d).T).double() - truth).abs().max()) for d in dtypes}

    def _fastest(self, dtypes: list[torch.dtype]) -> torch.dtype:
        """The precision whose product of one chunk with one tile runs fastest here (CPUs without
        bfloat16 instructions multiply it slowly); the result does not depend on the choice."""

        def seconds(dtype):
            q = self.matrix[: min(self.n, self.chunk)].to(dtype)
            tile = self.matrix[: self.tile].to(dtype)
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                torch.mm(q, tile.T)
                best = min(best, time.perf_counter() - started)
            return best

        return min(dtypes, key=seconds)
