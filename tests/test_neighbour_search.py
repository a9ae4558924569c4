"""The exact neighbour search: low-precision candidates, float64 ranking (pipeline/augment/neighbour_search.py)."""

import numpy as np
import pytest
import torch

import pipeline.augment.neighbour_search as search_module
from pipeline.augment.neighbour_search import NeighbourSearch


def unit_rows(rng, n, d):
    m = rng.normal(size=(n, d))
    return torch.from_numpy((m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32))


def float64_ranking(matrix: torch.Tensor, rows: np.ndarray, k: int) -> np.ndarray:
    """The definition, one query at a time: every row's float64 dot product, the query's own row
    left out, the best k (ties to the lower row), in row order."""
    m = matrix.double()
    out = []
    for r in rows:
        scores = (m[r][None, :] * m).sum(1).numpy()
        scores[r] = -np.inf
        out.append(np.sort(np.argsort(-scores, kind="stable")[:k]))
    return np.array(out)


@pytest.fixture(scope="module")
def matrix():
    m = unit_rows(np.random.default_rng(0), 3000, 24)
    m[10] = m[20]  # exact ties: equal rows
    m[11] = m[20]
    m[30] = 0  # a zero row: scores 0 with everything
    return m


@pytest.mark.parametrize("precision", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("tile", [64, 1000, None])  # one block per tile, a ragged last tile, the CPU default
def test_search_is_the_float64_ranking(matrix, precision, tile):
    rows = np.r_[np.arange(0, 3000, 7), [10, 11, 20, 30, 2999]]
    search = NeighbourSearch(matrix, tile=tile, precisions=(precision,))
    assert search.dtype == precision
    for k in (1, 15):
        got = search.top(rows, k)
        assert np.array_equal(got, float64_ranking(matrix, rows, k))
    twins = search.top(np.array([10, 20]), 2)
    assert twins.tolist() == [[11, 20], [10, 11]]  # its equal rows, itself left out


def test_one_tile_as_on_a_gpu_and_chunks_of_any_size(matrix, monkeypatch):
    """The GPU layout (one tile of the whole matrix, big chunks), run here on the CPU tensor."""
    monkeypatch.setattr(search_module, "CPU_CHUNK", 50)
    rows = np.arange(0, 3000, 5)
    expected = float64_ranking(matrix, rows, 15)
    assert np.array_equal(NeighbourSearch(matrix, tile=len(matrix)).top(rows, 15), expected)
    assert np.array_equal(NeighbourSearch(matrix).top(rows, 15), expected)


def near_ties(seed: int, near: int = 40, blocks: int = 60) -> torch.Tensor:
    """A query (the last row) and ``near`` rows of cosines 0.1, 0.10001, 0.10002, ... with it, one in
    each of the first ``near`` blocks of 64 rows; every other row has cosine -0.5. Rounding to
    bfloat16 moves such a cosine by about 0.0005, far more than the gaps."""
    rng = np.random.default_rng(seed)
    d, n = 50, 64 * blocks
    q = rng.normal(size=d)
    q /= np.linalg.norm(q)
    other = rng.normal(size=(n, d))
    other -= np.outer(other @ q, q)  # orthogonal to the query
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    cos = np.full(n, -0.5)
    cos[np.arange(near) * 64] = 0.1 + 1e-5 * rng.permutation(near)
    m = cos[:, None] * q + np.sqrt(1 - cos**2)[:, None] * other
    m[-1] = q
    return torch.from_numpy(m.astype(np.float32))


def test_the_slack_is_what_makes_the_low_precision_search_exact():
    """Where the 15th and 16th neighbours lie closer than bfloat16 resolves, the search without its
    slack misses true neighbours; with it, the result is the float64 ranking."""
    wrong = 0
    for seed in range(5):
        matrix = near_ties(seed)
        query = np.array([len(matrix) - 1])
        expected = float64_ranking(matrix, query, 15)
        assert np.array_equal(NeighbourSearch(matrix, precisions=(torch.bfloat16,)).top(query, 15), expected)
        sloppy = NeighbourSearch(matrix, precisions=(torch.bfloat16,))
        sloppy.slack = 0.0
        wrong += not np.array_equal(sloppy.top(query, 15), expected)
    assert wrong >= 3


def test_a_precision_that_errs_more_than_its_slack_is_not_used(matrix, monkeypatch):
    monkeypatch.setitem(search_module.SLACK, torch.bfloat16, 1e-9)
    search = NeighbourSearch(matrix, precisions=(torch.bfloat16,))
    assert search.dtype == torch.float64
    rows = np.arange(0, 3000, 11)
    assert np.array_equal(search.top(rows, 15), float64_ranking(matrix, rows, 15))


def test_small_matrices_are_ranked_whole():
    matrix = unit_rows(np.random.default_rng(2), 300, 8)  # 5 blocks: fewer than k + 1
    rows = np.arange(300)
    assert np.array_equal(NeighbourSearch(matrix).top(rows, 15), float64_ranking(matrix, rows, 15))
