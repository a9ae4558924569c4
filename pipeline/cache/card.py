"""The dataset card of a cache folder (``README.md``), in the Hugging Face dataset-card format.

A YAML header (features and their types, the split and its rows, the shard files, the licence of
the inputs, the teacher, layers and dtypes, the lineage) and a short text, both derived from the
manifest and the shards' schema alone, so the folder can be uploaded to a dataset hub as it is and
the same cache always gets the same card. :func:`card_problems` checks a card against both.
"""

from __future__ import annotations

import pyarrow as pa
import yaml

CARD_NAME = "README.md"
DATA_FILES = "shard-*.parquet"  # the configs glob: the folder also holds manifest.json and _tasks/
META_KEY = "kd_teacher_cache"  # our own block of the header; dataset hubs keep unknown keys as they are

_DTYPES = {
    pa.bool_(): "bool",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.uint8(): "uint8",
    pa.uint16(): "uint16",
    pa.uint32(): "uint32",
    pa.uint64(): "uint64",
    pa.float16(): "float16",
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.binary(): "binary",
    pa.null(): "null",
}


def _feature(t: pa.DataType) -> dict:
    """One Arrow type as a dataset-card feature: ``{dtype: X}`` or ``{list: X[, length: n]}``."""
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _feature(t.value_type)
        out: dict = {"list": inner.get("dtype", inner)}
        if pa.types.is_fixed_size_list(t):
            out["length"] = t.list_size
        return out
    if t not in _DTYPES:
        raise ValueError(f"no dataset-card type for the Arrow type {t}")
    return {"dtype": _DTYPES[t]}


def features(schema: pa.Schema) -> list[dict]:
    """The shards' columns as the card's ``dataset_info.features`` list, in column order."""
    return [{"name": f.name, **_feature(f.type)} for f in schema]


def split_name(manifest: dict) -> str:
    """The corpus's split: ``examples/dev`` -> dev, ``augmented/train/tinybert`` -> train."""
    parts = manifest["input"]["name"].split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def licence(manifest: dict) -> str:
    """The inputs' licence as the job names it (``inputs.<split>.license``), else "unknown"."""
    return ((manifest.get("lineage") or {}).get("source") or {}).get("license") or "unknown"


def header(manifest: dict, schema: pa.Schema, data_bytes: int) -> dict:
    """``data_bytes``: the uncompressed bytes of the shards' row groups (the split's ``num_bytes``)."""
    split = split_name(manifest)
    lineage = manifest.get("lineage") or {}
    tags = ["knowledge-distillation", "teacher-logits"]
    if manifest["layers"]:
        tags.append("hidden-states")
    if manifest["attentions"]:
        tags.append("attentions")
    return {
        "license": licence(manifest),
        "pretty_name": f"Teacher outputs: {manifest['input']['name']}",
        "tags": tags,
        "configs": [{"config_name": "default", "data_files": [{"split": split, "path": DATA_FILES}]}],
        "dataset_info": {
            "features": features(schema),
            "splits": [{"name": split, "num_bytes": data_bytes, "num_examples": manifest["rows"]}],
            "download_size": manifest["bytes"],
            "dataset_size": data_bytes,
        },
        META_KEY: {
            "format": manifest["format"],
            "version": manifest["version"],
            "cache_key": manifest["cache_key"],
            "config_hash": manifest["config_hash"],
            "rows": manifest["rows"],
            "tokens": manifest["tokens"],
            "shards": len(manifest["shards"]),
            "teacher": {
                k: manifest["teacher"].get(k)
                for k in ("model", "weights_sha256", "base_model")
                if k in manifest["teacher"]
            },
            "tokenizer": manifest["tokenizer"],
            "max_length": manifest["max_length"],
            "labels": manifest["labels"],
            "layers": manifest["layers"],
            "attentions": manifest["attentions"],
            "hidden_size": manifest["hidden_size"],
            "dtypes": manifest["dtypes"],
            "encoding": manifest["encoding"],
            "lineage": lineage,
        },
    }


def render(manifest: dict, schema: pa.Schema, data_bytes: int) -> str:
    head = header(manifest, schema, data_bytes)
    meta = head[META_KEY]
    lineage = meta["lineage"]
    job = lineage.get("job", {})
    aug = lineage.get("augmentation")
    hidden = ", ".join(f"`hidden_{l}`" for l in manifest["layers"]) or "none"
    lines = [
        "---",
        yaml.safe_dump(head, sort_keys=False, allow_unicode=True, width=100).rstrip(),
        "---",
        "",
        f"# Teacher outputs: {manifest['input']['name']}",
        "",
        f"{manifest['rows']:,} rows ({manifest['tokens']:,} real tokens) of the corpus "
        f"`{manifest['input']['name']}` with the outputs of the teacher `{meta['teacher'].get('model')}`: "
        f"logits over {manifest['labels']} and the hidden states of layers {hidden} "
        f"(float16, {manifest['dtypes'].get('hidden_mantissa_bits', 10)} mantissa bits), "
        f"in {len(manifest['shards'])} Parquet shard(s), `{DATA_FILES}`.",
        "",
        f"- Made by the job `{job.get('name')}` (task `{job.get('task')}`, seed {job.get('seed')}, "
        f"config hash `{job.get('config_hash')}`) from `{lineage.get('source', {}).get('path')}`.",
    ]
    if aug and "hash" in aug:
        lines.append(f"- Augmentation: `{aug['method']}`, settings hash `{aug['hash']}` (settings in the header).")
    elif aug:  # a corpus written before its augment stage recorded its settings (before 0.2)
        lines.append(f"- Augmentation: `{aug['method']}` (its settings are not recorded with the corpus).")
    lines += [
        f"- Licence of the inputs: {licence(manifest)}.",
        # the 0.1 path of the check (a deprecated alias in 0.2): a card's text stays byte for byte the same
        "- `manifest.json` lists every shard with its rows and SHA-256; "
        "`python -m pipeline.teacher.check DIR` checks the folder against it and against this card.",
        "- Hidden state of row r: `hidden_<L>[r]` reshaped to (num_tokens[r], hidden_size); "
        "`datasets.load_dataset(DIR)` reads the shards named by this header.",
        "",
    ]
    return "\n".join(lines)


def parse(text: str) -> dict:
    """The YAML header of a card; ValueError when there is none or it is not a mapping."""
    if not text.startswith("---\n"):
        raise ValueError("no YAML header (the card must start with a line '---')")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError("the YAML header is not closed by a line '---'")
    try:
        head = yaml.safe_load(text[4:end])
    except yaml.YAMLError as exc:
        raise ValueError(f"the YAML header does not parse: {str(exc)[:200]}") from None
    if not isinstance(head, dict):
        raise ValueError("the YAML header is not a mapping")
    return head


def card_problems(text: str, manifest: dict, schema: pa.Schema, data_bytes: int) -> list[str]:
    """What is wrong with a card for this manifest and these shards (empty: nothing)."""
    try:
        head = parse(text)
    except ValueError as exc:
        return [str(exc)]
    want = header(manifest, schema, data_bytes)
    problems = []
    got_features = {f.get("name"): f for f in (head.get("dataset_info") or {}).get("features") or []}
    for f in want["dataset_info"]["features"]:
        found = got_features.pop(f["name"], None)
        if found is None:
            problems.append(f"dataset_info.features: no {f['name']!r} (the shards have it)")
        elif found != f:
            problems.append(
                f"dataset_info.features: {f['name']!r} is {_type_text(found)} in the card, "
                f"{_type_text(f)} in the shards"
            )
    for name in got_features:
        problems.append(f"dataset_info.features: {str(name)[:80]!r} is not a column of the shards")
    for key, label in (
        (("dataset_info", "splits"), "dataset_info.splits"),
        (("dataset_info", "download_size"), "dataset_info.download_size"),
        (("dataset_info", "dataset_size"), "dataset_info.dataset_size"),
        (("configs",), "configs"),
        (("license",), "license"),
    ):
        got, exp = _get(head, key), _get(want, key)
        if got != exp:
            problems.append(f"{label}: {_short(got)} in the card, {_short(exp)} from the manifest")
    meta = head.get(META_KEY)
    if not isinstance(meta, dict):
        problems.append(f"no {META_KEY} block (teacher, layers, dtypes, lineage)")
    else:
        for key, exp in want[META_KEY].items():
            if meta.get(key) != exp:
                problems.append(f"{META_KEY}.{key}: {_short(meta.get(key))} in the card, {_short(exp)} in the manifest")
    return problems


def _get(d: dict, keys: tuple) -> object:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None  # type: ignore[assignment]
    return d


def _type_text(f: dict) -> str:
    if "list" in f:
        return f"list<{f['list']}>" + (f"[{f['length']}]" if "length" in f else "")
    return str(f.get("dtype"))


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 120 else text[:117] + "..."
