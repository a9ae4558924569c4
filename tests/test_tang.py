"""Tang et al. augmentation: rates, distributions, pairs, determinism, edge cases, the real tagger.

Statistical checks use fixed seeds and bounds far in the tails (5 sigma for binomial counts, the
Wilson-Hilferty 5-sigma quantile for chi-square), so a correct implementation passes for any seed
and a wrong rate fails clearly.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from pipeline.augment.pos import PosTagger, PosUnigram
from pipeline.augment.tang import TangAugmenter, TangParams, augment_words, sample_variants

Z = 5.0
MASK = "[MASK]"

# Table words never occur in the test sentence, so any non-mask change is a POS replacement.
COUNTS = {
    ("NN", "cat"): 6, ("NN", "dog"): 3, ("NN", "bird"): 1,
    ("VB", "run"): 1, ("VB", "jump"): 1,
    ("DT", "the"): 5, ("DT", "a"): 4, ("DT", "an"): 1,
    (".", "."): 3, (".", "!"): 1,
}  # fmt: skip
UNIGRAM = PosUnigram(COUNTS)
# 32 distinct words; "JJ" is not in the table, so JJ words are never replaced.
WORDS = [f"w{i}" for i in range(32)]
TAGS = ["NN", "VB", "DT", "JJ"] * 8


def within_binomial(k: int, n: int, p: float) -> bool:
    return abs(k - n * p) <= Z * math.sqrt(n * p * (1 - p)) + 1e-9


def chi2_ok(observed: Counter, probs: dict[str, float]) -> bool:
    n = sum(observed.values())
    assert set(observed) <= set(probs), set(observed) - set(probs)
    stat = sum((observed.get(w, 0) - n * p) ** 2 / (n * p) for w, p in probs.items())
    df = len(probs) - 1
    limit = df * (1 - 2 / (9 * df) + Z * math.sqrt(2 / (9 * df))) ** 3
    return stat <= limit


def renormalised(tag: str) -> dict[str, float]:
    total = sum(c for (t, _), c in COUNTS.items() if t == tag)
    return {w: c / total for (t, w), c in COUNTS.items() if t == tag}


def variants(params: TangParams, n: int, seed: int = 0, words=WORDS, tags=TAGS) -> list[list[str]]:
    return sample_variants(words, tags, UNIGRAM, params, np.random.default_rng(seed), n)


# --- step 1: masking and POS-guided replacement ---------------------------------------------


def test_mask_rate_one_variant_at_a_time():
    params = TangParams(p_mask=0.1, p_pos=0.1, p_ng=0.0)
    rng = np.random.default_rng(1)
    out = [augment_words(WORDS, TAGS, UNIGRAM, params, rng) for _ in range(3000)]
    assert all(len(v) == len(WORDS) for v in out)  # p_ng = 0: no word is dropped
    masked = sum(w == MASK for v in out for w in v)
    assert within_binomial(masked, 3000 * len(WORDS), 0.1), masked


def test_pos_replacement_rate_keeps_tag_and_follows_unigram():
    params = TangParams(p_mask=0.15, p_pos=0.2, p_ng=0.0)
    out = variants(params, 4000, seed=2)
    changed_seen_tag = positions_seen_tag = 0
    drawn: dict[str, Counter] = {"NN": Counter(), "VB": Counter(), "DT": Counter()}
    for v in out:
        for orig, tag, new in zip(WORDS, TAGS, v):
            if tag == "JJ":
                assert new in (orig, MASK)  # unseen tag: the word is kept
                continue
            positions_seen_tag += 1
            if new not in (orig, MASK):
                assert (tag, new) in COUNTS  # same POS as the replaced word
                changed_seen_tag += 1
                drawn[tag][new] += 1
    assert within_binomial(changed_seen_tag, positions_seen_tag, 0.2), changed_seen_tag
    for tag, observed in drawn.items():
        assert chi2_ok(observed, renormalised(tag)), (tag, observed)


def test_unigram_sample_distribution_and_unseen_tag():
    rng = np.random.default_rng(3)
    observed = Counter(UNIGRAM.sample("DT", rng) for _ in range(5000))
    assert chi2_ok(observed, renormalised("DT")), observed
    assert UNIGRAM.sample("JJ", rng) is None
    assert {UNIGRAM.sample(".", rng) for _ in range(200)} == {".", "!"}


def test_mask_token_configurable_and_extreme_rates():
    assert variants(TangParams(p_mask=1.0, p_pos=0.0, p_ng=0.0, mask_token="<m>"), 3) == [["<m>"] * 32] * 3
    assert variants(TangParams(p_mask=0.0, p_pos=0.0, p_ng=0.0), 3) == [WORDS] * 3


# --- step 2: n-gram sampling -----------------------------------------------------------------


def test_ngram_rate_lengths_and_starts():
    params = TangParams(p_mask=0.0, p_pos=0.0, p_ng=0.25, max_ngram=5)
    n, length = 8000, len(WORDS)
    out = variants(params, n, seed=4)
    cut = [v for v in out if len(v) < length]
    assert all(len(v) == length for v in out if len(v) >= length)
    assert within_binomial(len(cut), n, 0.25), len(cut)

    sizes = Counter(len(v) for v in cut)
    assert set(sizes) == {1, 2, 3, 4, 5}
    for k in range(1, 6):
        assert within_binomial(sizes[k], len(cut), 0.2), sizes
    assert chi2_ok(Counter(str(k) for k in (len(v) for v in cut)), {str(k): 0.2 for k in range(1, 6)})

    starts, starts_by_size = Counter(), {k: set() for k in range(1, 6)}
    for v in cut:
        s = WORDS.index(v[0])
        assert v == WORDS[s : s + len(v)]  # one contiguous n-gram of the original
        starts[str(s)] += 1
        starts_by_size[len(v)].add(s)
    assert all(min(ss) == 0 and max(ss) == length - k for k, ss in starts_by_size.items())  # both ends reachable
    expected = {str(s): sum(0.2 / (length - k + 1) for k in range(1, 6) if s <= length - k) for s in range(length)}
    assert chi2_ok(starts, expected), starts


def test_ngram_longer_than_sentence_keeps_all():
    params = TangParams(p_mask=0.0, p_pos=0.0, p_ng=1.0, max_ngram=5)
    out = variants(params, 3000, seed=5, words=["a", "b", "c"], tags=["X", "X", "X"])
    sizes = Counter(len(v) for v in out)
    assert within_binomial(sizes[3], 3000, 0.6), sizes  # n in {3, 4, 5} keeps all three words
    assert within_binomial(sizes[1], 3000, 0.2) and within_binomial(sizes[2], 3000, 0.2), sizes


# --- the augmenter: pairs, determinism, output shape -----------------------------------------

# Reviews and edge cases (empty, one word, punctuation only, non-ASCII), tagged by hand with PTB tags.
RAW_A = [
    "The film didn't move me one way or the other, but it was an honest effort.",
    "An insightfully cheeky entertainment.",
    "",
    "Wow",
    "!!! ...",
    "Café naïve – très bien",
]
RAW_B = [
    "If you want to see a flick about telemarketers, this one will do.",
    "A fun -- but bad -- movie.",
    "Yes.",
    "",
    "?",
    "東京 is big",
]
TAGGED_A = [
    (["The", "film", "did", "n't", "move", "me", "one", "way", "or", "the", "other", ",", "but", "it", "was", "an", "honest", "effort", "."],
     ["DT", "NN", "VBD", "RB", "VB", "PRP", "CD", "NN", "CC", "DT", "JJ", ",", "CC", "PRP", "VBD", "DT", "JJ", "NN", "."]),
    (["An", "insightfully", "cheeky", "entertainment", "."], ["DT", "RB", "JJ", "NN", "."]),
    ([], []),
    (["Wow"], ["UH"]),
    (["!!!", "..."], [".", ":"]),
    (["Café", "naïve", "–", "très", "bien"], ["NNP", "JJ", ":", "FW", "FW"]),
]  # fmt: skip
TAGGED_B = [
    (["If", "you", "want", "to", "see", "a", "flick", "about", "telemarketers", ",", "this", "one", "will", "do", "."],
     ["IN", "PRP", "VBP", "TO", "VB", "DT", "NN", "IN", "NNS", ",", "DT", "NN", "MD", "VB", "."]),
    (["A", "fun", "--", "but", "bad", "--", "movie", "."], ["DT", "JJ", ":", "CC", "JJ", ":", "NN", "."]),
    (["Yes", "."], ["UH", "."]),
    ([], []),
    (["?"], ["."]),
    (["東京", "is", "big"], ["NNP", "VBZ", "JJ"]),
]  # fmt: skip
CORPUS_UNIGRAM = PosUnigram.count(TAGGED_A + TAGGED_B)


@pytest.mark.parametrize(("text_format", "masked"), [("reference", "[MASK] [MASK]"), ("natural", "[MASK][MASK]")])
def test_pair_modes_cycle_a_b_both(text_format, masked):
    aug = TangAugmenter(TangParams(n_iter=9, p_mask=1.0, p_pos=0.0, p_ng=0.0, text_format=text_format), UNIGRAM)
    ta, tb = (["Hi", "!"], [".", "."]), (["Yes", "."], ["UH", "."])
    [rows] = aug.augment_tagged(["e"], [ta], [tb], ["Hi!"], ["Yes."], seed=0)
    assert rows == [("Hi!", "Yes."), (masked, "Yes."), ("Hi!", masked), (masked, masked)]


def test_natural_and_reference_keep_the_same_variants():
    """The default writes each variant over the original text (its spacing, an n-gram as the
    stretch it covers, a replacement capitalised like the word it replaces); the reference form
    joins the words by spaces. Same random draws, same variants kept, same order."""
    params = {"n_iter": 30, "p_mask": 0.2, "p_pos": 0.3, "p_ng": 0.4}
    natural = TangAugmenter(TangParams(**params), CORPUS_UNIGRAM)
    reference = TangAugmenter(TangParams(**params, text_format="reference"), CORPUS_UNIGRAM)
    ids = [f"x{i}" for i in range(len(RAW_A))]
    got = natural.augment_tagged(ids, TAGGED_A, TAGGED_B, RAW_A, RAW_B, seed=4)
    want = reference.augment_tagged(ids, TAGGED_A, TAGGED_B, RAW_A, RAW_B, seed=4)
    checked = 0
    for rows, ref_rows, ra, rb in zip(got, want, RAW_A, RAW_B):
        assert len(rows) == len(ref_rows) and rows[0] == ref_rows[0] == (ra, rb)
        for (a, b), (ref_a, ref_b) in zip(rows[1:], ref_rows[1:]):
            for text, ref, raw in ((a, ref_a, ra), (b, ref_b, rb)):
                if ref == raw:  # the text left alone
                    assert text == raw
                    continue
                new = ref.split(" ") if ref else []
                # the same words, each ending where the text's own spacing says
                assert text.replace(" ", "").lower() == "".join(new).lower()
                checked += 1
    assert checked > 50
    first = got[0][1:]
    assert any(", but it was" in a for a, _ in first)  # no space before the comma, as in the text
    assert all(" ," not in a for a, _ in first)


def test_natural_spacing_of_glued_tokens():
    """Tokens written together in the text stay together unless a replacement would run two words
    into one; the text's own spacing is kept elsewhere, an n-gram is the stretch it covers."""
    tagged = (["I", "did", "n't", "go", "!"], ["PRP", "VBD", "RB", "VB", "."])
    text = "I didn't  go!"
    for counts, expected in [
        ({("VBD", "was"): 1, ("RB", "n't"): 1}, "I wasn't  go!"),
        ({("VBD", "was"): 1, ("RB", "really"): 1}, "I was really  go!"),
        ({("VBD", "did"): 1, ("RB", "n't"): 1, ("VB", "run"): 1, (".", "?"): 1}, "I didn't  run?"),
    ]:
        aug = TangAugmenter(TangParams(n_iter=1, p_mask=0.0, p_pos=1.0, p_ng=0.0), PosUnigram(counts))
        [rows] = aug.augment_tagged(["g"], [tagged], [None], [text], [None], seed=0)
        assert rows[1][0] == expected
    aug = TangAugmenter(TangParams(n_iter=40, p_mask=0.0, p_pos=0.0, p_ng=1.0, max_ngram=3), UNIGRAM)
    [rows] = aug.augment_tagged(["n"], [tagged], [None], [text], [None], seed=0)
    assert {a for a, _ in rows[1:]} <= {
        "I",
        "did",
        "n't",
        "go",
        "!",
        "I did",
        "didn't",
        "n't  go",
        "go!",
        "I didn't",
        "didn't  go",
        "n't  go!",
    }
    assert len(rows) > 5


def test_natural_replacement_takes_the_capital():
    unigram = PosUnigram({("DT", "a"): 1, ("NN", "paris"): 1})
    aug = TangAugmenter(TangParams(n_iter=5, p_mask=0.0, p_pos=1.0, p_ng=0.0), unigram)
    [rows] = aug.augment_tagged(["c"], [(["The", "city", "."], ["DT", "NN", "."])], [None], ["The city."], [None], 1)
    assert rows == [("The city.", None), ("A paris.", None)]


def test_pair_modes_cycle_with_random_variants():
    aug = TangAugmenter(TangParams(n_iter=12, p_mask=0.3, p_pos=0.3, p_ng=0.0), CORPUS_UNIGRAM)
    [rows] = aug.augment_tagged(["p"], [TAGGED_A[0]], [TAGGED_B[0]], [RAW_A[0]], [RAW_B[0]], seed=7)
    assert len(rows) == 13  # long sentences at high rates: every try is new
    for i, (a, b) in enumerate(rows[1:]):
        assert (a == RAW_A[0], b == RAW_B[0]) == [(False, True), (True, False), (False, False)][i % 3]


def batch(aug: TangAugmenter, idx: list[int], seed: int) -> dict[str, list]:
    """Examples 0..5 single-text, 6..11 pairs; returns rows per example id."""
    ids = [f"ex{i}" for i in idx]
    ta = [TAGGED_A[i % 6] for i in idx]
    tb = [TAGGED_B[i % 6] if i >= 6 else None for i in idx]
    ra = [RAW_A[i % 6] for i in idx]
    rb = [RAW_B[i % 6] if i >= 6 else None for i in idx]
    return dict(zip(ids, aug.augment_tagged(ids, ta, tb, ra, rb, seed)))


def test_determinism_independent_of_batching_and_order():
    aug = TangAugmenter(TangParams(n_iter=20), CORPUS_UNIGRAM)
    together = batch(aug, list(range(12)), seed=11)
    one_by_one = {k: v for i in range(12) for k, v in batch(aug, [i], seed=11).items()}
    reverse = batch(aug, list(range(11, -1, -1)), seed=11)
    shipped = PosUnigram.from_arrow(CORPUS_UNIGRAM.to_arrow())  # as a worker receives it
    fresh = batch(TangAugmenter(TangParams(n_iter=20), shipped), list(range(12)), seed=11)
    assert together == one_by_one == reverse == fresh
    assert together != batch(aug, list(range(12)), seed=12)


def test_output_shape_original_first_no_duplicates():
    params = TangParams(n_iter=10)
    out = batch(TangAugmenter(params, CORPUS_UNIGRAM), list(range(12)), seed=3)
    for i, (_eid, rows) in enumerate(sorted(out.items(), key=lambda kv: int(kv[0][2:]))):
        single = i < 6
        assert rows[0] == (RAW_A[i % 6], None if single else RAW_B[i % 6])
        assert 1 <= len(rows) <= params.n_iter + 1
        norm_a = " ".join(TAGGED_A[i % 6][0])
        norm_b = None if single else " ".join(TAGGED_B[i % 6][0])
        # an untouched text is written as given; compare in the normal form (words joined by spaces)
        keys = [(norm_a, norm_b)] + [
            (norm_a if a == RAW_A[i % 6] else a, None if single else (norm_b if b == RAW_B[i % 6] else b))
            for a, b in rows[1:]
        ]
        assert len(set(keys)) == len(keys), rows  # no duplicates, none equal to the original
        for a, b in rows[1:]:
            assert isinstance(a, str) and (b is None) == single
            assert "  " not in a and a == a.strip()


def test_edge_cases():
    aug = TangAugmenter(TangParams(n_iter=20), CORPUS_UNIGRAM)
    out = batch(aug, [2, 3, 4, 5], seed=0)
    assert out["ex2"] == [("", None)]  # no words: nothing to vary
    wow = out["ex3"]  # one word: masked, or replaced by another UH word (only "Wow", "Yes" exist)
    assert wow[0] == ("Wow", None) and {a for a, _ in wow[1:]} <= {MASK, "Yes"} and len(wow) > 1
    punct = out["ex4"]
    punctuation = {w for (t, w) in CORPUS_UNIGRAM.counts if t in (".", ":")}
    assert all(set(a.split()) <= punctuation | {MASK} for a, _ in punct[1:]) and len(punct) > 1
    accents = out["ex5"]
    assert any("Café" in a or "naïve" in a for a, _ in accents[1:])
    assert all(set(a.split()) <= {w for _, w in CORPUS_UNIGRAM.counts} | {MASK} for a, _ in accents[1:])


def test_zero_iterations_and_invalid_params():
    aug = TangAugmenter(TangParams(n_iter=0), CORPUS_UNIGRAM)
    assert batch(aug, [0, 7], seed=0) == {"ex0": [(RAW_A[0], None)], "ex7": [(RAW_A[1], RAW_B[1])]}
    for bad in (dict(p_mask=0.6, p_pos=0.5), dict(p_ng=1.5), dict(max_ngram=0), dict(n_iter=-1)):
        with pytest.raises(ValueError):
            TangParams(**bad)
    with pytest.raises(ValueError):
        augment_words(["a", "b"], ["DT"], UNIGRAM, TangParams(), np.random.default_rng(0))


# --- PosUnigram -------------------------------------------------------------------------------


def test_unigram_merge_equals_count_of_concatenation():
    first, second = TAGGED_A + TAGGED_B[:2], TAGGED_B[2:] + TAGGED_A[:3]
    merged = PosUnigram.count(first).merge(PosUnigram.count(second))
    assert merged == PosUnigram.count(first + second)
    assert merged.counts[("DT", "The")] == 2 and merged.counts[(".", ".")] == 7  # case kept
    assert PosUnigram().merge(merged) == merged


def test_unigram_arrow_round_trip_deterministic():
    table = CORPUS_UNIGRAM.to_arrow()
    assert table.schema == pa.schema([("tag", pa.string()), ("word", pa.string()), ("count", pa.int64())])
    assert PosUnigram.from_arrow(table) == CORPUS_UNIGRAM
    shuffled = PosUnigram(dict(reversed(list(CORPUS_UNIGRAM.counts.items()))))
    assert shuffled.to_arrow().equals(table)
    keys = list(zip(table.column("tag").to_pylist(), table.column("word").to_pylist()))
    assert keys == sorted(keys)
    halves = pa.concat_tables([PosUnigram.count(TAGGED_A).to_arrow(), PosUnigram.count(TAGGED_B).to_arrow()])
    assert PosUnigram.from_arrow(halves) == CORPUS_UNIGRAM
    assert PosUnigram.from_arrow(PosUnigram().to_arrow()) == PosUnigram()


# --- the real spaCy tagger --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tagger() -> PosTagger:
    return PosTagger()


def test_real_tagger_ptb_tags(tagger):
    [cat, spaces, empty, review] = tagger.tag(
        ["The cat sat on the mat.", "Hello   world \n", "", "It isn't a great movie."]
    )
    assert cat == (["The", "cat", "sat", "on", "the", "mat", "."], ["DT", "NN", "VBD", "IN", "DT", "NN", "."])
    assert spaces[0] == ["Hello", "world"]  # whitespace tokens dropped
    assert empty == ([], [])
    assert review[0] == ["It", "is", "n't", "a", "great", "movie", "."]
    assert review[1][4:6] == ["JJ", "NN"] and review[1][1].startswith("VB")


def test_real_tagger_blas_products_give_the_tags_of_blis(tagger):
    from pathlib import Path

    from thinc.api import NumpyOps, get_current_ops

    path = Path(__file__).resolve().parents[1] / "data" / "rt-polarity" / "dev.tsv"
    texts = [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:401]]
    blis = PosTagger(blis=True)
    models = {name: t.nlp.get_pipe("tok2vec").model for name, t in (("blas", tagger), ("blis", blis))}
    assert [m.ops.use_blis for m in models.values()] == [False, True]
    assert type(get_current_ops()) is NumpyOps and get_current_ops().use_blis  # restored after loading
    assert tagger.tag(texts) == blis.tag(texts)


def test_real_tagger_upos():
    [(_words, tags)] = PosTagger(attr="pos").tag(["The cat sat on the mat."])
    assert tags == ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT"]
    with pytest.raises(ValueError):
        PosTagger(attr="lemma")


def test_real_tagger_end_to_end(tagger):
    texts = RAW_A + RAW_B
    tagged = tagger.tag(texts)
    unigram = PosUnigram.count(tagged)
    aug = TangAugmenter(TangParams(n_iter=20), unigram)
    out = aug.augment_tagged(
        [str(i) for i in range(len(texts))], tagged, [None] * len(texts), texts, [None] * len(texts), 0
    )
    for text, (words, _tags), rows in zip(texts, tagged, out):
        assert rows[0] == (text, None) and len(rows) <= 21
        assert len({a for a, _ in rows[1:]} | {" ".join(words)}) == len(rows)
        if len(words) >= 10:  # long sentences: nearly every try is new
            assert len(rows) >= 16, rows
