"""What the teacher writes into each cache's manifest (and so its card) at commit: the columns, dtypes,
encoding and shards, and the lineage of the cached corpus (the job, its source, the augmentation)."""

from __future__ import annotations

from typing import Any

from .. import layout, storage
from ..cache.columns import MLM_IDS, MLM_LOGITS, attention_column, hidden_column
from ..cache.manifest import build_manifest
from ..runtime import markers
from . import shards as sh
from .planning import _TeacherInfo
from .settings import TeacherConfig


def _columns_doc(info: _TeacherInfo, layers, attentions) -> dict[str, str]:
    cols = {
        "row": "int64: position in the input corpus",
        "num_tokens": "int32: real tokens",
        "input_ids": "list<int32>: token ids, no padding",
    }
    if info.token_types:
        cols["token_type_ids"] = "list<int8>: segment ids"
    cols["logits"] = (
        "fixed_size_list<float32>[1]: the predicted score (a regression head)"
        if info.problem_type == "regression"
        else f"fixed_size_list<float32>[{len(info.labels)}]: raw logits, no temperature"
    )
    for l in layers:
        cols[hidden_column(l)] = f"list<float16>: num_tokens x {info.hidden_size}, row-major"
    for l in attentions:
        cols[attention_column(l)] = f"list<float16>: {info.heads} x num_tokens x num_tokens attention probabilities"
    return cols


def _manifest(
    cfg,
    tc: TeacherConfig,
    name: str,
    in_dir: str,
    files,
    info: _TeacherInfo,
    layers: list[int],
    attentions: list[int],
    key: str,
    results: list[sh.ShardResult],
) -> dict:
    shards = [
        {
            "file": r.name,
            "first_row": r.first_row,
            "rows": r.rows,
            "tokens": r.tokens,
            "bytes": r.bytes,
            "sha256": r.sha256,
        }
        for r in results
    ]
    float16_paths = [f"{c}.list.element" for c in [*map(hidden_column, layers), *map(attention_column, attentions)]]
    bss = (
        ["logits.list.element"]
        + ([f"{MLM_LOGITS}.list.element"] if tc.mlm_top_k else [])
        + (float16_paths if tc.float16_encoding == "byte_stream_split" else [])
    )
    columns = _columns_doc(info, layers, attentions)
    if tc.mlm_top_k:
        columns[MLM_IDS] = f"list<int32>: num_tokens x {tc.mlm_top_k} token ids of the highest masked-LM logits"
        columns[MLM_LOGITS] = f"list<float32>: num_tokens x {tc.mlm_top_k} raw masked-LM logits, descending"
    return build_manifest(
        input_name=name,
        input_dir=in_dir,
        input_files=files,
        teacher=info.teacher,
        tokenizer=info.tokenizer,
        max_length=tc.max_length,
        labels=info.labels,
        layers=layers,
        attentions=attentions,
        hidden_size=info.hidden_size,
        num_heads=info.heads,
        columns=columns,
        dtypes={
            "logits": "float32",
            "hidden": "float16",
            "attention": "float16",
            "input_ids": "int32",
            "hidden_mantissa_bits": tc.mantissa_bits,
            "compute_dtype": tc.dtype,
        },
        encoding={
            "compression": "zstd",
            "byte_stream_split": bss,
            "float16_encoding": tc.float16_encoding,
            "row_group_bytes": tc.row_group_bytes,
            "page_checksums": True,
        },
        config_hash=cfg.config_hash(),
        key=key,
        shard_rows=tc.shard_rows,
        shards=shards,
        seed=cfg.seed,
        extra={
            "student_layers": tc.student_layers if tc.layers == "tinybert" else None,
            "mlm_top_k": tc.mlm_top_k or 0,
            "mlm_teacher": info.mlm if tc.mlm_top_k else None,
            "nonfinite_values": sum(r.nonfinite for r in results),
            "lineage": _lineage(cfg, name),
        },
    )


def _lineage(cfg, name: str) -> dict:
    """Where a cached corpus comes from: the job, the source file and, for an augmented corpus, the
    augmentation settings that made it and their hash (written into the manifest and the card)."""
    parts = name.split("/")
    spec = cfg.inputs.get(parts[1]) if len(parts) > 1 else None
    out: dict[str, Any] = {
        "job": {"name": cfg.name, "task": cfg.task, "seed": cfg.seed, "config_hash": cfg.config_hash()},
        "source": {
            "split": parts[1] if len(parts) > 1 else None,
            "path": spec.path if spec else None,
            "license": spec.license if spec else None,
        },
    }
    if parts[0] == "augmented" and len(parts) == 3:
        out["augmentation"] = _augmentation(layout.corpus_dir(cfg.output_dir, name), parts[2])
    return out


def _augmentation(corpus: str, method: str) -> dict:
    """An augmented corpus's method, settings and their hash, as its augment stage recorded them in
    the corpus's summary (read from disk: the teacher does not make the augmentation methods). A
    corpus with no such record (unfinished, or written before 0.2) is described by its method alone."""
    summary = storage.join(corpus, markers.SUMMARY)
    recorded: Any = None
    if storage.exists(storage.join(corpus, markers.MARKER)) and storage.exists(summary):
        recorded = storage.read_json(summary)
    if isinstance(recorded, dict) and isinstance(recorded.get("settings"), dict) and recorded.get("settings_hash"):
        return {
            "method": recorded.get("method", method),
            "settings": recorded["settings"],
            "hash": recorded["settings_hash"],
        }
    return {"method": method}
