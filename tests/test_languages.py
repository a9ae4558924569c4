"""Languages other than English: the presets' pure parts (words, eligibility, stop words, joining,
tagging), the config's refusals, ingest of Chinese text, and both augmentations on Chinese and
French text (no Ray)."""

import re

import numpy as np
import pytest
import torch
from language_jobs import FR_SENTENCES, ZH_SENTENCES, chinese_mlm, language_job, vec_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

from pipeline.augment.glove import GloveVectors
from pipeline.augment.languages import eligible_form, is_cjk, is_han, join_words, language, language_stopwords
from pipeline.augment.mlm import MlmCandidates
from pipeline.augment.pos import JiebaTagger, PosTagger, PosUnigram, make_tagger
from pipeline.augment.tang import TangAugmenter, TangParams, sample_rows
from pipeline.augment.tinybert import TinyBertAugmenter, TinyBertParams
from pipeline.augment.words import WordSplitter, reference_stopwords
from pipeline.config import ConfigError, parse_config
from pipeline.ingest.validate import EMPTY_TEXT, TOO_LONG, Rules, validate_line

ZH_TEXTS = [s for s, _ in ZH_SENTENCES]
FR_TEXTS = [s for s, _ in FR_SENTENCES]


@pytest.fixture(scope="module")
def zh_mlm_dir(tmp_path_factory):
    return chinese_mlm(tmp_path_factory.mktemp("zh-mlm"), ZH_TEXTS)


@pytest.fixture(scope="module")
def jieba_tagger():
    return JiebaTagger()


# --------------------------------------------------------------------------------------------
# words, eligibility, stop words, joining


def test_every_chinese_character_is_a_word_and_eligible_unless_a_function_character():
    splitter = WordSplitter(True, "language", "zh")
    words = splitter.words("这个手机很好用，我很喜欢！iPhone 15 真的 great。")
    assert words[:8] == ["这", "个", "手", "机", "很", "好", "用", "，"]
    eligible = [w for w in words if splitter.is_eligible(w)]
    # function characters (这 个 很 我 的), punctuation (full-width too) and digits stay; Latin words may change
    assert eligible == ["手", "机", "好", "用", "喜", "欢", "iphone", "真", "great"]
    assert {"的", "了", "不", "很", "我"} <= language_stopwords("zh")
    assert reference_stopwords() <= language_stopwords("zh")  # the English words of mixed text


def test_eligibility_rules_follow_the_script():
    assert eligible_form("movie", "latin") and not eligible_form("café", "latin")
    assert eligible_form("好", "han") and eligible_form("good", "han")
    assert not eligible_form("好用", "han")  # a Han word is one character (the basic tokenizer splits them)
    assert not eligible_form("，", "han") and not eligible_form("１５", "han")
    assert eligible_form("été", "letters") and eligible_form("книга", "letters")
    assert not eligible_form("l'", "letters") and not eligible_form("15", "letters")
    assert is_han("好") and not is_han("，") and not is_han("a")
    assert is_cjk("，") and is_cjk("\u3000") and is_cjk("好") and not is_cjk(",")


def test_french_words_lose_accents_with_capitals_and_spacy_stop_words_apply():
    text = "Le café était très bon, mais l'été dernier était meilleur."
    lower = WordSplitter(True, "language", "fr")
    assert [w for w in lower.words(text) if lower.is_eligible(w)] == ["cafe", "bon", "ete", "dernier", "meilleur"]
    cased = WordSplitter(False, "language", "fr")
    assert [w for w in cased.words(text) if cased.is_eligible(w)] == ["café", "bon", "été", "dernier", "meilleur"]


@pytest.mark.parametrize("code", ["zh", "fr"])
def test_likely_eligible_words_are_the_eligible_words(code):
    splitter = WordSplitter(True, "language", code)
    texts = ZH_TEXTS if code == "zh" else FR_TEXTS
    exact = {w for t in texts for w in splitter.words(t) if splitter.is_eligible(w)}
    assert splitter.likely_eligible(texts) == exact


def test_presets():
    assert language("en") == language("en") and language("en").stopwords == "reference"
    assert (language("zh").tagger, language("zh").spaced, language("zh").bundled_glove) == ("jieba", False, False)
    assert (language("fr").tagger, language("fr").eligible, language("fr").spaced) == ("spacy", "letters", True)


def test_chinese_words_join_without_spaces_but_latin_words_keep_theirs():
    assert join_words(["我", "爱", "new", "york", "。"], spaced=False) == "我爱new york。"
    assert join_words(["iphone", "15", "很", "好", "！"], spaced=False) == "iphone 15很好！"
    assert join_words(["[UNK]", "[UNK]", "好", "，", "ok"], spaced=False) == "[UNK][UNK]好，ok"
    assert join_words(["le", "café", "."]) == "le café ."


# --------------------------------------------------------------------------------------------
# tagging


def test_jieba_words_are_pieces_of_the_text_and_carry_jieba_tags(jieba_tagger):
    texts = ["　质量不错，　物流很快！", "iPhone 15 很好用。", ""]
    tagged = jieba_tagger.tag(texts)
    assert tagged[0] == (["质量", "不错", "，", "物流", "很快", "！"], ["n", "a", "x", "n", "d", "x"])
    assert tagged[1][0] == ["iPhone", "15", "很好", "用", "。"] and tagged[1][1][:2] == ["eng", "m"]
    assert tagged[2] == ([], [])
    for text, (words, _) in zip(texts, tagged):
        assert "".join(words) == re.sub(r"\s", "", text)  # whitespace (U+3000 too) dropped, nothing else
    assert isinstance(make_tagger("zh", "unused"), JiebaTagger)


def test_french_tags_from_the_morphologizer():
    (words, tags), *_ = PosTagger("fr_core_news_sm").tag(["Le café était très bon, mais l'été dernier."])
    assert words == ["Le", "café", "était", "très", "bon", ",", "mais", "l'", "été", "dernier", "."]
    # fr_core_news_sm has no tagger: the fine tags are UPOS with the morphological features
    assert tags[1] == "NOUN|Gender=Fem|Number=Sing" and tags[3] == "ADV" and tags[5] == "PUNCT"
    (_, upos), *_ = PosTagger("fr_core_news_sm", attr="pos").tag(["Le café était très bon."])
    assert upos == ["DET", "NOUN", "AUX", "ADV", "ADJ", "PUNCT"]


# --------------------------------------------------------------------------------------------
# Tang et al. on Chinese


def test_tang_chinese_replacements_keep_the_tag_and_variants_join_without_spaces(jieba_tagger):
    tagged = jieba_tagger.tag(ZH_TEXTS)
    unigram = PosUnigram.count(tagged)
    by_tag: dict[str, set[str]] = {}
    for words, tags in tagged:
        for w, t in zip(words, tags):
            by_tag.setdefault(t, set()).add(w)
    params = TangParams(n_iter=30, p_mask=0.2, p_pos=0.4, p_ng=0.0, mask_token="[UNK]", language="zh")
    words, tags = tagged[0]
    rows, _ = sample_rows(words, tags, unigram, params, np.random.default_rng(0), 30)
    replaced = [
        (w, t, row[i]) for row in rows for i, (w, t) in enumerate(zip(words, tags)) if row[i] not in (w, "[UNK]")
    ]
    assert replaced and all(new in by_tag[t] for _, t, new in replaced)

    for fmt in ("natural", "reference"):
        augmenter = TangAugmenter(
            TangParams(n_iter=12, p_mask=0.3, mask_token="[UNK]", text_format=fmt, language="zh"), unigram
        )
        ids = [str(i) for i in range(len(ZH_TEXTS))]
        out = augmenter.augment_tagged(ids, tagged, [None] * len(tagged), ZH_TEXTS, [None] * len(tagged), 0)
        assert any("[UNK]" in a for rows in out for a, _ in rows[1:])
        for text, rows in zip(ZH_TEXTS, out):
            for v, _ in rows[1:]:
                if fmt == "natural":  # the text's own spaces only (mixed text keeps those it had)
                    assert v.count(" ") <= text.count(" "), (text, v)
                else:  # none next to Chinese characters, masks or full-width punctuation
                    assert not re.search(r"(?<=[\u4e00-\u9fff\]，。！])[ ]|[ ](?=[\u4e00-\u9fff\[，。！])", v), v
    natural = TangAugmenter(TangParams(n_iter=20, p_mask=0.0, p_pos=0.5, p_ng=0.0, language="zh"), unigram)
    (rows,) = natural.augment_tagged(["m"], [tagged[2]], [None], [ZH_TEXTS[2]], [None], 0)
    assert len(rows) > 5
    for v, _ in rows:  # the text's two spaces stay where they were; punctuation stays punctuation
        assert re.fullmatch(r"\S+ \S+ \S+", v) and v[-1] in "".join(by_tag["x"]), v


# --------------------------------------------------------------------------------------------
# TinyBERT on Chinese with a tiny random Chinese MLM


def _one_at_a_time(folder, text: str, splitter: WordSplitter, k: int = 15) -> dict[int, list[str]]:
    """The reference's procedure for each eligible single-piece word: [CLS] masked [SEP] original
    [SEP], batch size 1, argsort of the whole vocabulary at the mask, ``##`` pieces dropped."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    words = splitter.words(text)
    pieces = [tokenizer.tokenize(w) for w in words]
    flat = [p for ps in pieces for p in ps]
    out = {}
    start = 0
    for i, (word, ps) in enumerate(zip(words, pieces)):
        if splitter.is_eligible(word) and len(ps) == 1:
            masked = [*flat[:start], "[MASK]", *flat[start + 1 :]]
            seq = ["[CLS]", *masked, "[SEP]", *flat, "[SEP]"]
            types = [0] * (len(flat) + 2) + [1] * (len(flat) + 1)
            with torch.no_grad():
                logits = model(
                    input_ids=torch.tensor([tokenizer.convert_tokens_to_ids(seq)]), token_type_ids=torch.tensor([types])
                ).logits[0, start + 1]
            top = torch.argsort(logits, descending=True)[:k].tolist()
            out[i] = sorted(t for t in tokenizer.convert_ids_to_tokens(top) if not t.startswith("##"))
        start += len(ps)
    return out


def test_tinybert_chinese_characters_take_mlm_candidates(zh_mlm_dir):
    params = TinyBertParams(n_aug=10, language="zh", stopwords="language")
    augmenter = TinyBertAugmenter(params, None, MlmCandidates.from_pretrained(str(zh_mlm_dir)))
    found = augmenter.candidates(ZH_TEXTS)
    for text, s in zip(ZH_TEXTS, found):
        assert [s.words[i] for i in s.positions] == [w for w in s.words if augmenter.splitter.is_eligible(w)]
        expected = _one_at_a_time(zh_mlm_dir, text, augmenter.splitter)
        by_position = {i: sorted(c) for i, c in zip(s.positions, s.candidates) if i in expected}
        assert by_position == expected
    assert sum(len(s.positions) for s in found) > 30


def test_tinybert_chinese_variants_keep_the_text_as_written(zh_mlm_dir):
    mlm = MlmCandidates.from_pretrained(str(zh_mlm_dir))
    ids = [str(i) for i in range(len(ZH_TEXTS))]
    natural = TinyBertAugmenter(TinyBertParams(n_aug=10, p=0.5, language="zh", stopwords="language"), None, mlm)
    out = natural.augment(ids, ZH_TEXTS, [None] * len(ZH_TEXTS), seed=1)
    assert sum(len(rows) - 1 for rows in out) > 20
    splitter = natural.splitter
    for text, rows in zip(ZH_TEXTS, out):
        assert rows[0] == (text, None)
        for variant, _ in rows[1:]:
            # no spaces added, full-width punctuation and function characters where they were
            assert variant.count(" ") == text.count(" ") and variant.count("\u3000") == text.count("\u3000")
            if len(variant) == len(text):  # every replacement a single character (any ASCII one is not)
                for a, b in zip(text, variant):
                    assert a == b or splitter.is_eligible(a.lower()), (text, variant)
    reference = TinyBertAugmenter(
        TinyBertParams(n_aug=10, p=0.5, language="zh", stopwords="language", text_format="reference"), None, mlm
    )
    out_ref = reference.augment(ids, ZH_TEXTS, [None] * len(ZH_TEXTS), seed=1)
    assert [len(r) for r in out_ref] == [len(r) for r in out]  # the same variants, written differently
    for rows in out_ref:  # words joined: a space only between two Latin letters or digits
        for v, _ in rows[1:]:
            assert not re.search(r"(?<![a-z0-9]) | (?![a-z0-9])", v), v
    assert "iphone 15" in out_ref[2][0][0] or all("iphone 15" in v for v, _ in out_ref[2][1:])


# --------------------------------------------------------------------------------------------
# word vectors in the word2vec / fastText text format


def test_fasttext_vec_files_load_with_their_header(tmp_path):
    words = ["café", "thé", "été", "film", "livre"]
    glove = GloveVectors.load(vec_file(tmp_path / "cc.fr.8.vec", words))
    assert glove.words == words and glove.matrix.shape == (5, 8)
    assert np.allclose(np.linalg.norm(glove.matrix, axis=1), 1.0, atol=1e-5)
    (near,) = glove.neighbours(["café"], 2)
    assert len(near) == 2 and "café" not in near and set(near) <= set(words)


# --------------------------------------------------------------------------------------------
# the config: what a language needs, refused before any work


def _config(tmp_path, language, check_files=True, **augment):
    return parse_config(language_job(tmp_path, language, ZH_SENTENCES, **augment), "job.yaml", check_files)


def test_languages_that_cannot_be_served_are_refused_with_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"language 'ja' \(Japanese\) is written without spaces"):
        _config(tmp_path, "ja")
    with pytest.raises(ConfigError, match=r"language 'zh': augment.tinybert.mlm must name a Chinese"):
        _config(tmp_path, "zh")
    with pytest.raises(ConfigError, match=r"augment.tinybert needs a masked LM .* or its word vectors"):
        _config(tmp_path, "fr", tang={"spacy_model": "fr_core_news_sm"})
    with pytest.raises(ConfigError, match=r"augment.tang.spacy_model is the English pipeline"):
        _config(tmp_path, "fr", tinybert={"mlm": "bert-base-multilingual-cased"})
    with pytest.raises(ConfigError, match=r"language: spaCy has no language 'qq'"):
        _config(tmp_path, "qq", methods=["tinybert"], tinybert={"mlm": "some/hub-model"})
    with pytest.raises(ConfigError, match=r"'fr_core_news_sm' is a pipeline of 'fr', not of the job's language 'de'"):
        _config(tmp_path, "de", methods=["tang"], tang={"spacy_model": "fr_core_news_sm"})
    with pytest.raises(ConfigError, match=r"no installed spaCy pipeline or folder 'de_core_news_zz'"):
        _config(tmp_path, "de", methods=["tang"], tang={"spacy_model": "de_core_news_zz"})
    with pytest.raises(ConfigError, match=r"  - language: String should match pattern"):
        _config(tmp_path, "Chinese")


def test_languages_that_can_be_served_pass(tmp_path):
    assert _config(tmp_path, "zh", methods=["tang"]).language == "zh"
    assert _config(tmp_path, "zh", tinybert={"mlm": "bert-base-chinese"}).language == "zh"
    vec = vec_file(tmp_path / "fr.vec", ["café", "film"])
    cfg = _config(tmp_path, "fr", tinybert={"glove": {"path": str(vec)}}, tang={"spacy_model": "fr_core_news_sm"})
    assert cfg.augment.tang.spacy_model == "fr_core_news_sm"
    assert _config(tmp_path, "en").language == "en"


# --------------------------------------------------------------------------------------------
# ingest: characters, full-width spaces, CJK punctuation


def _rules(max_chars=2000, too_long="reject"):
    return Rules("tsv", "0", None, "1", ("neg", "pos"), max_chars, too_long=too_long)


def test_ingest_counts_characters_and_trims_full_width_spaces():
    text = "质量不错，物流很快！"  # 10 characters, 30 bytes of UTF-8
    row, _ = validate_line(f"\u3000{text}\u3000\tpos".encode(), 2, "f", _rules(max_chars=10))
    assert row["text_a"] == text
    _, rej = validate_line(f"{text}好\tpos".encode(), 2, "f", _rules(max_chars=10))
    assert rej["reason"] == TOO_LONG and "11 characters, limit 10" in rej["detail"]
    row, _ = validate_line(f"{text}好\tpos".encode(), 2, "f", _rules(max_chars=5, too_long="truncate"))
    assert row["text_a"] == "质量不错，" and row["fixes"] == "truncated"
    row, _ = validate_line("质量\u3000\u3000不错好\tpos".encode(), 2, "f", _rules(max_chars=4, too_long="truncate"))
    assert row["text_a"] == "质量"  # cut at 4 characters, the full-width spaces at the cut trimmed


def test_ingest_full_width_spaces_alone_are_empty_and_cjk_punctuation_is_text():
    _, rej = validate_line("\u3000\u3000\tpos".encode(), 2, "f", _rules())
    assert rej["reason"] == EMPTY_TEXT
    row, _ = validate_line("。。。！\tpos".encode(), 2, "f", _rules())
    assert row["text_a"] == "。。。！"  # punctuation shows, as "..." does in English
