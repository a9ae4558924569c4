"""Small jobs in other languages than English, for the language tests: a corpus, a tiny random
Chinese masked LM and sequence classifier, French word vectors, and the job dict (with dev / test
splits, a teacher and a student when asked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from transformers.models.bert.tokenization_bert_legacy import BasicTokenizer

from pipeline.testing import random_mlm, random_teacher

ZH_SENTENCES = [
    ("这个手机很好用，我很喜欢！", "positive"),
    ("质量太差了，物流也很慢。", "negative"),
    ("iPhone 15 真的很好，推荐购买。", "positive"),
    ("东西不错，价格便宜，下次还来。", "positive"),
    ("　包装破损，客服态度恶劣。　", "negative"),  # full-width spaces around it
    ("书的内容很精彩，作者写得“非常好”……", "positive"),
    ("失望，不会再买了", "negative"),
    ("屏幕清晰 电池耐用 Wi-Fi 稳定", "positive"),
]
FR_SENTENCES = [
    ("Le café était très bon, mais l'été dernier était meilleur.", "positive"),
    ("Un film ennuyeux et beaucoup trop long.", "negative"),
    ("Les acteurs sont excellents et l'histoire est touchante.", "positive"),
    ("Quelle déception : le scénario est faible.", "negative"),
    ("Une comédie drôle, légère et bien écrite.", "positive"),
    ("Je n'ai pas aimé la fin du livre.", "negative"),
]
# dev / test rows of the end-to-end jobs (the student stage evaluates on them)
ZH_HELD_OUT = [
    ("物流很快，包装完好，非常满意。", "positive"),
    ("电池不耐用，屏幕也有坏点。", "negative"),
    ("客服态度很好，推荐！", "positive"),
    ("价格太贵了，不值。", "negative"),
]
FR_HELD_OUT = [
    ("Un très beau film, drôle et touchant.", "positive"),
    ("Le livre est long et ennuyeux.", "negative"),
    ("J'ai aimé l'histoire et les acteurs.", "positive"),
    ("Quelle fin faible et décevante !", "negative"),
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows), encoding="utf-8")
    return path


def chinese_vocab(texts: list[str]) -> list[str]:
    """The specials, the characters of ``texts`` (lower-cased as the uncased basic tokenizer gives
    them) and ``##`` pieces of their Latin letters and digits: no text of ``texts`` needs [UNK]."""
    basic = BasicTokenizer(do_lower_case=True)
    chars = sorted({c for t in texts for w in basic.tokenize(t) for c in w})
    return [*SPECIALS, *chars, *("##" + c for c in chars if c.isascii() and c.isalnum())]


def chinese_mlm(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """A tiny random BERT MLM over :func:`chinese_vocab` of ``texts``, saved to ``folder``."""
    return Path(random_mlm(folder, {t: i for i, t in enumerate(chinese_vocab(texts))}, "mini", True, seed))


def chinese_teacher(folder: Path, texts: list[str], labels: list[str], seed: int = 0) -> Path:
    """A tiny random ``BertForSequenceClassification`` over :func:`chinese_vocab` of ``texts``
    (the bundled MiniLM vocabulary would map most Chinese characters to [UNK]), saved to ``folder``."""
    teacher = random_teacher(
        folder, "mini", seed=seed, max_position_embeddings=64, labels=labels, vocab=chinese_vocab(texts)
    )
    return Path(teacher)


def vec_file(path: Path, words: list[str], dim: int = 8, seed: int = 0) -> Path:
    """Word vectors in the word2vec / fastText text format (a "count dim" first line)."""
    rng = np.random.default_rng(seed)
    lines = [f"{len(words)} {dim}"]
    lines += [w + " " + " ".join(f"{x:.4f}" for x in rng.standard_normal(dim)) for w in words]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def language_job(
    tmp_path: Path,
    language: str,
    rows: list[tuple[str, str]],
    *,
    held_out: dict[str, list[tuple[str, str]]] | None = None,
    teacher: dict | None = None,
    student: dict | None = None,
    **augment,
) -> dict:
    """A job dict: ``rows`` as the train split, both augmentations with a few tries; ``augment``
    settings merged over the defaults (``tinybert`` / ``tang`` sections key by key). ``held_out``:
    further splits by name (dev, test); ``teacher`` / ``student``: those sections as given."""
    inputs = {
        split: {
            "path": str(write_tsv(tmp_path / f"{split}.tsv", split_rows)),
            "columns": {"text_a": "sentence", "label": "label"},
        }
        for split, split_rows in {"train": rows, **(held_out or {})}.items()
    }
    section: dict = {"methods": ["tinybert", "tang"], "shard_rows": 4, "tinybert": {"n_aug": 3}, "tang": {"n_iter": 4}}
    for key, value in augment.items():
        section[key] = {**section.get(key, {}), **value} if isinstance(value, dict) else value
    stages = {"teacher": teacher, "student": student}
    return {
        "name": f"{language}-small",
        "task": "sst2",
        "language": language,
        "seed": 3,
        "output_dir": str(tmp_path / "out"),
        "labels": ["negative", "positive"],
        "inputs": inputs,
        "augment": section,
        **{name: value for name, value in stages.items() if value is not None},
    }
