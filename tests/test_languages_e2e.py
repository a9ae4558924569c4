"""A Chinese job and a French job end to end (local executor, no Ray): ingest, Tang et al.'s
augmentation and TinyBERT's (Chinese: a tiny random Chinese MLM; French: fastText-format word
vectors). The job dicts come from ``language_jobs.language_job``, so a teacher or student section
can be added to them."""

import re

import pyarrow.parquet as pq
from language_jobs import FR_SENTENCES, ZH_SENTENCES, chinese_mlm, language_job, vec_file

from pipeline.augment.stage import augmented_dir, run_augment
from pipeline.augment.words import WordSplitter
from pipeline.config import parse_config
from pipeline.ingest.stage import run_ingest


def _corpus(cfg, method: str) -> dict[str, list[str]]:
    """Per parent example: its original text, then its variants."""
    rows = pq.read_table(augmented_dir(cfg, "train", method)).to_pylist()
    out: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: (r["parent_id"], r["variant"])):
        out.setdefault(r["parent_id"], []).append(r["text_a"])
    return out


def test_a_chinese_job_ingests_and_augments_with_both_methods(tmp_path):
    mlm = chinese_mlm(tmp_path / "zh-mlm", [s for s, _ in ZH_SENTENCES])
    job = language_job(tmp_path, "zh", ZH_SENTENCES, tinybert={"mlm": str(mlm)}, tang={"mask_token": "[UNK]"})
    cfg = parse_config(job, "zh.yaml")
    run_ingest(cfg, executor="local")
    results = run_augment(cfg, executor="local")

    originals = {s.strip("\u3000") for s, _ in ZH_SENTENCES}  # ingest trims the full-width spaces
    splitter = WordSplitter(True, "language", "zh")
    for method in ("tinybert", "tang"):
        summary = results[("train", method)]
        assert summary["examples_in"] == len(ZH_SENTENCES) and summary["settings"]["language"] == "zh"
        corpus = _corpus(cfg, method)
        assert {texts[0] for texts in corpus.values()} == originals
        assert sum(len(texts) - 1 for texts in corpus.values()) > len(ZH_SENTENCES)
        for original, *variants in corpus.values():
            for v in variants:
                # written as Chinese is written: no space next to a Chinese character that the original lacked
                assert len(re.findall(r"(?<=[\u4e00-\u9fff]) | (?=[\u4e00-\u9fff])", v)) <= len(
                    re.findall(r"(?<=[\u4e00-\u9fff]) | (?=[\u4e00-\u9fff])", original)
                ), (original, v)
                assert v and v == v.strip()  # no spaces (full-width ones included) at either end
    tinybert = _corpus(cfg, "tinybert")
    for original, *variants in tinybert.values():
        for v in variants:  # only eligible characters change: punctuation and function characters stay
            if len(v) == len(original):
                assert all(a == b or splitter.is_eligible(a.lower()) for a, b in zip(original, v)), (original, v)
            assert v.count("，") == original.count("，") and v.count("。") == original.count("。")
    assert any("[UNK]" in v for texts in _corpus(cfg, "tang").values() for v in texts[1:])
    assert "spacy_model" not in results[("train", "tang")]["settings"]  # jieba tags Chinese


def test_a_french_job_ingests_and_augments_with_both_methods(tmp_path):
    splitter = WordSplitter(False, "language", "fr")  # French keeps case and accents by default
    words = sorted({w.lower() for s, _ in FR_SENTENCES for w in splitter.words(s) if w.isalpha()})
    vectors = vec_file(tmp_path / "cc.fr.8.vec", [*words, "superbe", "mauvais", "roman"])
    job = language_job(
        tmp_path,
        "fr",
        FR_SENTENCES,
        tinybert={"glove": {"path": str(vectors)}, "n_aug": 4},
        tang={"spacy_model": "fr_core_news_sm", "n_iter": 6, "p_pos": 0.3},
    )
    cfg = parse_config(job, "fr.yaml")
    run_ingest(cfg, executor="local")
    results = run_augment(cfg, executor="local")
    for method in ("tinybert", "tang"):
        assert results[("train", method)]["examples_in"] == len(FR_SENTENCES)
        corpus = _corpus(cfg, method)
        assert {texts[0] for texts in corpus.values()} == {s for s, _ in FR_SENTENCES}
        assert sum(len(texts) - 1 for texts in corpus.values()) > len(FR_SENTENCES)
    # TinyBERT: every replacement is a word of the vectors file, in the case of the word it replaces
    vocab = {line.split()[0] for line in vectors.read_text("utf-8").splitlines()[1:]}
    for original, *variants in _corpus(cfg, "tinybert").values():
        before = splitter.words(original)
        for v in variants:
            after = splitter.words(v)
            changed = [(a, b) for a, b in zip(before, after) if a != b]
            assert len(after) == len(before) and changed, (original, v)
            assert all(splitter.is_eligible(a) and b.lower() in vocab for a, b in changed), (original, v)
    assert any("é" in v for texts in _corpus(cfg, "tinybert").values() for v in texts[1:])  # accents kept
    # Tang: French elisions stay written together ("l'été"), punctuation keeps its place
    tang = _corpus(cfg, "tang")
    assert any("[MASK]" in v for texts in tang.values() for v in texts[1:])
    assert not any(re.search(r"\w' \w", v) for texts in tang.values() for v in texts)
