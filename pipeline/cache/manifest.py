"""What a cache is: the teacher, its tokenizer, the settings and the shards (``manifest.json``).

The manifest is written last, after every shard is complete; a directory without it is an
unfinished cache. It names the teacher (its source and a SHA-256 content hash of its weight
files), the tokenizer (class and a hash of its files), the maximum length, the label names, the
stored layers and dtypes, the job's config hash, the cache key every shard carries, and each
shard with its first row, row count, token count, size and SHA-256.
"""

from __future__ import annotations

import time

from .. import storage
from ..runtime.digest import digest

FORMAT = "kd-teacher-cache"
VERSION = 1
MANIFEST_NAME = "manifest.json"
LAYER_RULE = (
    "hidden_<L> = Hugging Face hidden_states[L] (0 = embeddings output); 'tinybert' = "
    "g(m) = round_half_up(m*N/M) for m = 0..M, N teacher layers, M student layers"
)
# Written into every manifest as version 1 has it: the text is part of the format (caches stay
# byte for byte the same), so it still names the 0.1 path, which 0.2 keeps as a deprecated alias.
READING = (
    "pipeline.teacher.open_cache(dir), or any Parquet reader on the shard files listed here "
    "(not on the directory, which also holds this manifest); hidden_<L> reshapes to "
    "(num_tokens, hidden_size)"
)


def cache_key(**parts) -> str:
    """What decides a shard's content: equal keys mean a finished shard can be reused."""
    return digest({"format": FORMAT, "version": VERSION, **parts})


def build_manifest(
    *,
    input_name: str,
    input_dir: str,
    input_files,
    teacher: dict,
    tokenizer: dict,
    max_length: int,
    labels: list[str],
    layers: list[int],
    attentions: list[int],
    hidden_size: int,
    num_heads: int,
    columns: dict[str, str],
    dtypes: dict,
    encoding: dict,
    config_hash: str,
    key: str,
    shard_rows: int,
    shards: list[dict],
    seed: int | None = None,
    extra: dict | None = None,
) -> dict:
    """``input_files``: the input corpus's files, each with ``path``, ``rows`` and ``sha256``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "input": {
            "name": input_name,
            "path": input_dir,
            "rows": sum(f.rows for f in input_files),
            "files": [{"path": f.path, "rows": f.rows, "sha256": f.sha256} for f in input_files],
        },
        "teacher": teacher,
        "tokenizer": tokenizer,
        "max_length": max_length,
        "labels": labels,
        "num_labels": len(labels),
        "layers": layers,
        "layer_rule": LAYER_RULE,
        "attentions": attentions,
        "hidden_size": hidden_size,
        "num_attention_heads": num_heads,
        "columns": columns,
        "dtypes": dtypes,
        "encoding": encoding,
        "config_hash": config_hash,
        "seed": seed,
        "cache_key": key,
        "shard_rows": shard_rows,
        "rows": sum(s["rows"] for s in shards),
        "tokens": sum(s["tokens"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "shards": shards,
        "reading": READING,
        **(extra or {}),
    }


def write_manifest(directory: str, manifest: dict) -> str:
    path = storage.join(directory, MANIFEST_NAME)
    storage.write_json(path, manifest)
    return path


def remove_manifest(directory: str) -> None:
    """Before any shard changes: a directory without a manifest is an unfinished cache."""
    storage.delete_if_exists(storage.join(directory, MANIFEST_NAME))
