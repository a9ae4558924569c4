"""A Chinese job and a French job end to end (local executor, no Ray), each through
``pipeline.run``: ingest, Tang et al.'s augmentation and TinyBERT's (Chinese: a tiny random Chinese
MLM; French: fastText-format word vectors), a tiny random teacher (Chinese: its vocabulary holds the
corpus's characters; French: the bundled MiniLM vocabulary) fine-tuned for an epoch and cached over
both augmented corpora and dev / test, a BiLSTM student distilled from each augmented corpus (one
seed, one epoch) and the report."""

import html
import json
import math
import re

import numpy as np
import pyarrow.parquet as pq
from language_jobs import (
    FR_HELD_OUT,
    FR_SENTENCES,
    ZH_HELD_OUT,
    ZH_SENTENCES,
    chinese_mlm,
    chinese_teacher,
    language_job,
    vec_file,
)
from transformers import AutoTokenizer

from pipeline import Job, run
from pipeline.augment.stage import augmented_dir
from pipeline.augment.words import WordSplitter
from pipeline.cache import open_cache
from pipeline.report.render import SECTIONS
from pipeline.student.run_context import teacher_model_path
from pipeline.testing import random_teacher

LABELS = ["negative", "positive"]
RUNS = ("bilstm-kd-tinybert", "bilstm-kd-tang")
HAN_SPACE = re.compile(r"(?<=[\u4e00-\u9fff]) | (?=[\u4e00-\u9fff])")


def _corpus(cfg, method: str) -> dict[str, list[str]]:
    """Per parent example: its original text, then its variants."""
    rows = pq.read_table(augmented_dir(cfg, "train", method)).to_pylist()
    out: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: (r["parent_id"], r["variant"])):
        out.setdefault(r["parent_id"], []).append(r["text_a"])
    return out


def _stages(teacher_model: str, word_vectors: str) -> dict:
    """The teacher and student sections of both jobs: a tiny teacher fine-tuned for an epoch, and a
    BiLSTM distilled from each augmented corpus with the job's own word vectors (no English GloVe rows)."""
    return {
        "teacher": {
            "model": teacher_model,
            "finetune": {"enabled": True, "epochs": 1, "batch_size": 8, "max_length": 32},
            "layers": [0, 2],
            "max_length": 32,
            "token_budget": 256,
            "shard_rows": 16,
            "cpu_threads": 1,
        },
        "student": {
            "runs": [
                {"name": f"bilstm-kd-{m}", "model": "bilstm", "data": f"augmented/train/{m}", "loss": "mse"}
                for m in ("tinybert", "tang")
            ],
            "seeds": [1],
            "threads": 1,
            "shuffle_buffer": 32,
            "bilstm": {"glove": word_vectors, "glove_rows": 0, "hidden": 8, "mlp": 8, "epochs": 1, "batch_size": 8},
        },
    }


def _check_teacher_student_report(summary, cfg, originals: set[str]) -> str:
    """What the teacher, student and report stages left, checked against the augmented corpora;
    returns the report page (HTML)."""
    out = cfg.output_dir
    assert summary.stages == ["ingest", "augment", "teacher", "student", "report"]
    assert {k: s.kept for k, s in summary.ingest.items()} == {"train": len(originals), "dev": 4, "test": 4}
    # the teacher: a cache row per augmented row, finite logits; fine-tuned first
    assert set(summary.caches) == {"augmented/train/tinybert", "augmented/train/tang", "examples/dev", "examples/test"}
    for method in ("tinybert", "tang"):
        rows = pq.read_table(augmented_dir(cfg, "train", method), columns=["example_id", "text_a"]).to_pylist()
        cache = open_cache(f"{out}/teacher/augmented/train/{method}")
        table = cache.read_table(["example_id", "logits"])
        assert len(cache) == len(rows) == summary.caches[f"augmented/train/{method}"].rows
        assert sorted(table.column("example_id").to_pylist()) == sorted(r["example_id"] for r in rows)
        logits = np.array(table.column("logits").to_pylist())
        assert logits.shape == (len(rows), 2) and np.isfinite(logits).all() and cache.labels == LABELS
        # each distinct text its own logits: the texts reached the teacher, not a row of [UNK]s
        by_id = {r["example_id"]: r["text_a"] for r in rows}
        texts = [by_id[i] for i in table.column("example_id").to_pylist()]
        assert len({tuple(x) for x in logits}) == len(set(texts))
        assert cache.manifest["teacher"]["finetuned"]
    # the student: each run scored on test, and the teacher's own row
    with open(f"{out}/student/results.json", encoding="utf-8") as f:
        results = json.load(f)
    by_name = {r["name"]: r for r in results["rows"]}
    assert set(by_name) == {"teacher", *RUNS} and [r["name"] for r in summary.results] == list(by_name)
    for name in ("teacher", *RUNS):
        row = by_name[name]
        assert row["eval_split"] == "test" and row["metric"] == "accuracy", row
        assert math.isfinite(row["metric_mean"]) and row["metric_mean"] * 4 in range(5), row  # of 4 test rows
    for method in ("tinybert", "tang"):  # each run trained on its whole cached corpus
        metrics = _student_metrics(cfg, method)
        assert metrics["train_rows"] == summary.caches[f"augmented/train/{method}"].rows
        assert metrics["eval_split"] == "test" and set(metrics["test"]) >= {"accuracy", "macro_f1"}
    # the report: every section, the teacher and the student ran
    with open(summary.report, encoding="utf-8") as f:
        page = f.read()
    for sid, _title in SECTIONS:
        assert f'<section id="{sid}">' in page, sid
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    assert "did not run" not in text and "No student" not in text
    teacher = _section_text(page, "teacher")  # the fine-tuning, and a row per cache with its label flips
    assert f"Fine-tuning {len(originals)} training examples" in teacher
    for method in ("tinybert", "tang"):
        rows = summary.caches[f"augmented/train/{method}"].rows
        assert re.search(rf"augmented/train/{method} {method} {rows} .* \(\d+ of {rows - len(originals)}\)", teacher)
    student = _section_text(page, "student")
    assert all(name in student for name in RUNS)
    return page


def _section_text(page: str, sid: str) -> str:
    found = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert found, sid
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))))


def _student_metrics(cfg, method: str) -> dict:
    with open(f"{cfg.output_dir}/student/bilstm-kd-{method}-seed1/metrics.json", encoding="utf-8") as f:
        return json.load(f)


def _variants_shown(page: str, corpus: dict[str, list[str]]) -> list[tuple[str, str]]:
    """The variants of ``corpus`` (with their originals) that the report's sample table writes out
    exactly as the corpus holds them: its list items,
    less the words shown as dropped, highlights removed."""
    table = re.search(r'<table class="samples">.*?</table>', page, re.S)
    assert table, "no sample table in the report"
    items = re.findall(r"<li>(.*?)</li>", table.group(0), re.S)
    dropped = r'<span class="w-dropped"[^>]*>.*?</span>'
    cells = {html.unescape(re.sub(r"<[^>]+>", "", re.sub(dropped, "", item))) for item in items}
    return [(texts[0], v) for texts in corpus.values() for v in texts[1:] if v in cells]


def test_a_chinese_job_runs_end_to_end(tmp_path):
    texts = [s for s, _ in ZH_SENTENCES + ZH_HELD_OUT]
    mlm = chinese_mlm(tmp_path / "zh-mlm", [s for s, _ in ZH_SENTENCES])  # the MLM sees the train split only
    teacher = chinese_teacher(tmp_path / "zh-teacher", texts, LABELS)
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    assert not any(tokenizer.unk_token_id in tokenizer(t)["input_ids"] for t in texts)  # no character is [UNK]
    splitter = WordSplitter(True, "language", "zh")
    chars = sorted({w for t in texts for w in splitter.words(t)})
    vectors = vec_file(tmp_path / "cc.zh.8.vec", chars)
    job = language_job(
        tmp_path,
        "zh",
        ZH_SENTENCES,
        held_out={"dev": ZH_HELD_OUT, "test": ZH_HELD_OUT},
        tinybert={"mlm": str(mlm)},
        tang={"mask_token": "[UNK]"},
        **_stages(str(teacher), str(vectors)),
    )
    parsed = Job(**job)
    summary = run(parsed, executor="local")
    cfg = parsed.config

    originals = {s.strip("\u3000") for s, _ in ZH_SENTENCES}  # ingest trims the full-width spaces
    for method in ("tinybert", "tang"):
        with open(f"{augmented_dir(cfg, 'train', method)}/_summary.json", encoding="utf-8") as f:
            recorded = json.load(f)
        assert recorded["examples_in"] == len(ZH_SENTENCES) and recorded["settings"]["language"] == "zh"
        assert summary.augment[f"train/{method}"].rows_in == len(ZH_SENTENCES)
        corpus = _corpus(cfg, method)
        assert {texts[0] for texts in corpus.values()} == originals
        assert sum(len(texts) - 1 for texts in corpus.values()) > len(ZH_SENTENCES)
        for original, *variants in corpus.values():
            for v in variants:
                # written as Chinese is written: no space next to a Chinese character that the original lacked
                assert len(HAN_SPACE.findall(v)) <= len(HAN_SPACE.findall(original)), (original, v)
                assert v and v == v.strip()  # no spaces (full-width ones included) at either end
    tinybert = _corpus(cfg, "tinybert")
    for original, *variants in tinybert.values():
        for v in variants:  # only eligible characters change: punctuation and function characters stay
            if len(v) == len(original):
                assert all(a == b or splitter.is_eligible(a.lower()) for a, b in zip(original, v)), (original, v)
            assert v.count("，") == original.count("，") and v.count("。") == original.count("。")
    assert any("[UNK]" in v for texts in _corpus(cfg, "tang").values() for v in texts[1:])
    assert "spacy_model" not in recorded["settings"]  # (tang's) jieba tags Chinese

    page = _check_teacher_student_report(summary, cfg, originals)
    # the fine-tuned teacher that wrote the caches reads every character: [UNK] only where Tang masked
    for method in ("tinybert", "tang"):
        cache = open_cache(f"{cfg.output_dir}/teacher/augmented/train/{method}")
        cached = AutoTokenizer.from_pretrained(teacher_model_path(cache.manifest["teacher"]))
        for t in (t for texts in _corpus(cfg, method).values() for t in texts):
            assert cached(t)["input_ids"].count(cached.unk_token_id) == t.count("[UNK]"), t
    # the student's words: each Chinese character is one, found in the job's character vectors
    for method in ("tinybert", "tang"):
        metrics = _student_metrics(cfg, method)
        han = {c for texts in _corpus(cfg, method).values() for t in texts for c in t if "\u4e00" <= c <= "\u9fff"}
        assert metrics["glove_words_found"] >= len(han), metrics
    # the report shows Chinese variants whole, with no space put between Han characters
    for method in ("tinybert", "tang"):
        shown = _variants_shown(page, _corpus(cfg, method))
        assert len(shown) >= 3, method
        for original, v in shown:  # no space next to a Han character that the original lacked
            assert len(HAN_SPACE.findall(v)) <= len(HAN_SPACE.findall(original)), (original, v)


def test_a_french_job_runs_end_to_end(tmp_path):
    splitter = WordSplitter(False, "language", "fr")  # French keeps case and accents by default
    all_rows = FR_SENTENCES + FR_HELD_OUT
    words = sorted({w.lower() for s, _ in all_rows for w in splitter.words(s) if w.isalpha()})
    vectors = vec_file(tmp_path / "cc.fr.8.vec", [*words, "superbe", "mauvais", "roman"])
    teacher = random_teacher(tmp_path / "teacher", "tiny", seed=2, max_position_embeddings=64, labels=LABELS)
    job = language_job(
        tmp_path,
        "fr",
        FR_SENTENCES,
        held_out={"dev": FR_HELD_OUT, "test": FR_HELD_OUT},
        tinybert={"glove": {"path": str(vectors)}, "n_aug": 4},
        tang={"spacy_model": "fr_core_news_sm", "n_iter": 6, "p_pos": 0.3},
        **_stages(teacher, str(vectors)),
    )
    parsed = Job(**job)
    summary = run(parsed, executor="local")
    cfg = parsed.config
    for method in ("tinybert", "tang"):
        assert summary.augment[f"train/{method}"].rows_in == len(FR_SENTENCES)
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

    page = _check_teacher_student_report(summary, cfg, {s for s, _ in FR_SENTENCES})
    for method in ("tinybert", "tang"):  # French variants in the report, accents and elisions as written
        assert len(_variants_shown(page, _corpus(cfg, method))) >= 3, method
    shown = _variants_shown(page, _corpus(cfg, "tinybert")) + _variants_shown(page, tang)
    assert any(re.search(r"[éèàç]", v) for _, v in shown) and any(re.search(r"\w'\w", v) for _, v in shown)


def test_the_bilstm_students_words_keep_french_words_and_the_unk_mask_whole():
    from pipeline.student.words import words

    # the job's French vectors hold café, était, très (English keeps its a-z split: caf, é)
    assert words("Le café était très bon, l'été", "fr") == ["le", "café", "était", "très", "bon", ",", "l'", "été"]
    assert words("Le café", "en") == ["le", "caf", "é"]
    # Tang's mask token of the job ([UNK], found better for Chinese) stays one word, as [MASK] does
    assert words("质量[UNK]很好", "zh", "[UNK]") == ["质", "量", "[unk]", "很", "好"]
    assert words("a [MASK] b [UNK]", "en") == ["a", "[mask]", "b", "[", "unk", "]"]
