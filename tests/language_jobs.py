"""Small jobs in other languages than English, for the language tests: a corpus, a tiny random
Chinese masked LM, French word vectors, and the job dict (a teacher or student section can be added
to the dict before it is parsed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast
from transformers.models.bert.tokenization_bert_legacy import BasicTokenizer

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
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows), encoding="utf-8")
    return path


def chinese_mlm(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """A tiny random BERT MLM over the characters of ``texts`` (lower-cased as the uncased basic
    tokenizer gives them) and ``##`` pieces of their Latin letters and digits, saved to ``folder``."""
    basic = BasicTokenizer(do_lower_case=True)
    chars = sorted({c for t in texts for w in basic.tokenize(t) for c in w})
    tokens = [*SPECIALS, *chars, *("##" + c for c in chars if c.isascii() and c.isalnum())]
    torch.manual_seed(seed)
    # initializer_range 0.2: logits then depend on every input detail, so the candidates do too
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        initializer_range=0.2,
    )
    BertForMaskedLM(config).save_pretrained(folder)
    BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True).save_pretrained(folder)
    return folder


def vec_file(path: Path, words: list[str], dim: int = 8, seed: int = 0) -> Path:
    """Word vectors in the word2vec / fastText text format (a "count dim" first line)."""
    rng = np.random.default_rng(seed)
    lines = [f"{len(words)} {dim}"]
    lines += [w + " " + " ".join(f"{x:.4f}" for x in rng.standard_normal(dim)) for w in words]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def language_job(tmp_path: Path, language: str, rows: list[tuple[str, str]], **augment) -> dict:
    """A job dict: ``rows`` as the train split, both augmentations with a few tries; ``augment``
    settings merged over the defaults (``tinybert`` / ``tang`` sections key by key)."""
    train = write_tsv(tmp_path / "train.tsv", rows)
    section: dict = {"methods": ["tinybert", "tang"], "shard_rows": 4, "tinybert": {"n_aug": 3}, "tang": {"n_iter": 4}}
    for key, value in augment.items():
        section[key] = {**section.get(key, {}), **value} if isinstance(value, dict) else value
    return {
        "name": f"{language}-small",
        "task": "sst2",
        "language": language,
        "seed": 3,
        "output_dir": str(tmp_path / "out"),
        "labels": ["negative", "positive"],
        "inputs": {"train": {"path": str(train), "columns": {"text_a": "sentence", "label": "label"}}},
        "augment": section,
    }
