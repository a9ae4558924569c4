"""Small random teachers and corpora for tests and benchmarks (no download needed).

The tokenizer is the bundled all-MiniLM-L6-v2 WordPiece vocabulary (uncased, 30,522 pieces). The
corpora are written in the ingest and augment stages' schemas, so this module sits beside the
command line, above the stages (docs/stages.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .teacher.settings import bundled_model_path

SHAPES = {
    "mini": dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64),
    "tiny": dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, intermediate_size=64),
    "minilm": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
}


def save_tokenizer(folder: str | os.PathLike):
    # a lazy attribute of transformers 5 (an alias of BertTokenizer) that its static exports omit
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    # transformers 5 ignores vocab_file= (an empty vocabulary, every word [UNK]): pass vocab=
    tok = BertTokenizerFast(vocab=os.path.join(bundled_model_path(), "vocab.txt"), do_lower_case=True)
    if len(tok) < 30000:
        raise RuntimeError(f"tokenizer vocabulary not loaded ({len(tok)} tokens)")
    tok.save_pretrained(folder)
    return tok


def random_teacher(
    folder: str | os.PathLike,
    shape: str | dict = "tiny",
    num_labels: int = 2,
    seed: int = 0,
    max_position_embeddings: int = 512,
    labels: list[str] | None = None,
    vocab: list[str] | None = None,
) -> str:
    """A randomly initialised ``BertForSequenceClassification`` (``from_config``) saved with its
    tokenizer: the bundled vocabulary, or ``vocab`` (tokens in id order, uncased)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    dims = SHAPES[shape] if isinstance(shape, str) else shape
    labels = labels or [f"LABEL_{i}" for i in range(num_labels)]
    # BertConfig takes PreTrainedConfig's keywords (num_labels) at run time; its typed __init__ omits them
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=30522 if vocab is None else len(vocab),
        max_position_embeddings=max_position_embeddings,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)},
        **dims,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if vocab is None:
        save_tokenizer(folder)
    else:
        _save_vocab(folder, {t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    return str(folder)


def random_mlm(
    folder: str | os.PathLike,
    vocab: dict[str, int],
    shape: str | dict = "tiny",
    do_lower_case: bool = True,
    seed: int = 0,
) -> str:
    """A randomly initialised ``BertForMaskedLM`` over ``vocab`` (token -> id) saved with its tokenizer.
    ``initializer_range`` 0.2 (not 0.02): its logits then depend on every input detail (segment ids
    included), so the masked-LM candidates do too."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    dims = SHAPES[shape] if isinstance(shape, str) else shape
    config = BertConfig(vocab_size=len(vocab), max_position_embeddings=512, initializer_range=0.2, **dims)
    torch.manual_seed(seed)
    BertForMaskedLM(config).save_pretrained(folder)
    _save_vocab(folder, vocab, do_lower_case)
    return str(folder)


def _save_vocab(folder: str | os.PathLike, vocab: dict[str, int], do_lower_case: bool) -> None:
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    BertTokenizerFast(vocab=vocab, do_lower_case=do_lower_case).save_pretrained(folder)


def cache_job(output_dir: str | os.PathLike, labels=("negative", "positive"), seed: int = 1, **train):
    """A job whose corpora a test writes itself (``write_examples`` / ``write_augmented``): only
    the output folder, the labels and the train split's keys (``train``: extra InputSpec keys)."""
    from .config import parse_config

    spec = {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}, **train}
    return parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": seed,
            "output_dir": str(output_dir),
            "labels": list(labels),
            "inputs": {"train": spec},
        },
        check_files=False,
    )


def write_augmented(folder: str | os.PathLike, rows: list[dict], part_rows: int | None = None) -> list[str]:
    """Rows (text_a, optional text_b / label / label_id / score) as an augmented corpus: part-*.parquet."""
    from .augment.stage import AUGMENTED_SCHEMA

    table = pa.table(
        {
            "example_id": [r.get("example_id", f"ex{i:06d}") for i, r in enumerate(rows)],
            "parent_id": [r.get("parent_id", f"ex{i:06d}") for i, r in enumerate(rows)],
            "method": [r.get("method", "tinybert") for r in rows],
            "variant": [r.get("variant", 0) for r in rows],
            "text_a": [r["text_a"] for r in rows],
            "text_b": [r.get("text_b") for r in rows],
            "label": [r.get("label") for r in rows],
            "label_id": [r.get("label_id") for r in rows],
            "score": [r.get("score") for r in rows],
            "seed": [r.get("seed", 0) for r in rows],
        },
        schema=AUGMENTED_SCHEMA,
    )
    return _write_parts(folder, table, part_rows)


def record_augmentation(folder: str | os.PathLike, cfg, method: str) -> dict:
    """What the augment stage leaves beside the files of a corpus it finished, for a corpus written
    by :func:`write_augmented`: the summary with the settings of ``method`` in the job ``cfg`` (which
    the teacher stage copies into a cache's lineage) and the completion marker. Returns the summary."""
    from . import row_ranges, storage
    from .augment.stage import make_methods, recorded_settings
    from .runtime import markers

    folder = str(folder)
    summary = {"method": method, **recorded_settings(cfg, make_methods(cfg, [method], "local")[method])}
    path = storage.join(folder, markers.SUMMARY)
    storage.write_json(path, summary)
    parts = [{"path": p} for p, _ in row_ranges.parquet_row_counts(folder)]
    markers.mark_finished(folder, "written by pipeline.testing", [*parts, {"path": path}])
    return summary


def write_examples(folder: str | os.PathLike, rows: list[dict], part_rows: int | None = None) -> list[str]:
    """Rows as ingested examples (the ingest stage's schema): part-*.parquet."""
    from .ingest.stage import EXAMPLE_SCHEMA

    table = pa.table(
        {
            "example_id": [r.get("example_id", f"ex{i:06d}") for i, r in enumerate(rows)],
            "source": [r.get("source", "synthetic") for r in rows],
            "line": [i + 2 for i in range(len(rows))],
            "text_a": [r["text_a"] for r in rows],
            "text_b": [r.get("text_b") for r in rows],
            "label": [r.get("label") for r in rows],
            "label_id": [r.get("label_id") for r in rows],
            "score": [r.get("score") for r in rows],
        },
        schema=EXAMPLE_SCHEMA,
    )
    return _write_parts(folder, table, part_rows)


def _write_parts(folder, table: pa.Table, part_rows: int | None) -> list[str]:
    Path(folder).mkdir(parents=True, exist_ok=True)
    part_rows = part_rows or max(1, table.num_rows)
    paths = []
    for i, start in enumerate(range(0, max(1, table.num_rows), part_rows)):
        path = os.path.join(folder, f"part-{i:05d}.parquet")
        pq.write_table(table.slice(start, part_rows), path, row_group_size=7)
        paths.append(path)
    return paths
