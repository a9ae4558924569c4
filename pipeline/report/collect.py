"""Read a job's output folder into the figures the report shows (no Ray, no model).

Every stage is optional: a section whose outputs are absent comes back with ``ran=False`` and a
note saying what is missing. Teacher caches are read through :func:`pipeline.cache.open_cache`
(footer check only) and only their id, label and ``logits`` columns: hidden states stay on disk.

The folder is a local path or a URI (s3://, gs://, file://): it is read only through
:mod:`pipeline.storage` and the ``pyarrow.fs`` filesystems it resolves, one listing per stage's
folder, so an object store costs a few requests beyond the files the report reads.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cached_property
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import storage
from ..cache.ensemble import ENSEMBLE_NAME
from ..metrics import correlations
from . import stats

SAMPLES_PER_SPLIT = 4  # originals shown with their variants
VARIANTS_SHOWN = 6  # variants shown per original and method
REJECTS_SHOWN = 5  # rejected rows shown per split
STATS_MAX_EXAMPLES = 2000  # word statistics over at most this many originals per corpus (seeded sample)
MAX_SCATTER_POINTS = 2000  # regression: (gold, predicted) points per cache in the scatter plot
SAMPLE_MAX_WORDS = 40  # sampled originals are at most this long, so the page stays readable


@dataclass
class Section:
    ran: bool = False
    note: str = ""
    data: dict = field(default_factory=dict)


@dataclass
class ReportData:
    title: str
    output_dir: str
    ingest: Section
    augment: Section
    teacher: Section
    cache: Section
    student: Section


Folder = tuple[str, ...]  # a file or folder as its names below a listed folder, () for that folder


def _root(output_dir: str | os.PathLike) -> str:
    """The folder to read: a URI as given, a local path spelled as pathlib spells it (the notes
    have always printed it so; pure string work, no disk access)."""
    path = os.fspath(output_dir)
    return path if "://" in path else str(PurePath(path))


def _shown(path: str) -> str:
    """A path as the page prints it: a local one as pathlib spells it, a URI without credentials."""
    return storage.redact(path) if "://" in path else str(PurePath(path))


def _base_name(path: str) -> str:
    """The last name of a path or URI (a bucket's own name for a bucket), its query left out."""
    if "://" not in path:
        return PurePath(path).name
    parts = urlsplit(path)
    return parts.path.rstrip("/").rpartition("/")[2] or parts.hostname or ""


def _read_json(path: str) -> Any:
    return storage.read_json(path)


def _files(folder: str, recursive: bool = True) -> list[Folder]:
    """The files under ``folder`` as tuples of names relative to it, in the order pathlib sorts
    paths (name by name: "d/x" before "d-x/x"); none when the folder does not exist."""
    return sorted(tuple(rel.split("/")) for rel, _ in storage.list_files(folder, recursive=recursive))


def _read_parquet(path: str, columns: list[str]) -> pa.Table:
    filesystem, p = storage.resolve(path)
    return storage.retrying(path, lambda: pq.read_table(p, columns=columns, filesystem=filesystem))


def _first_records(path: str, n: int) -> list[dict]:
    """The first ``n`` records of a JSON-lines file, blank lines skipped; read only as far as they
    go (a rejects file may be large, and on an object store a whole read is a whole download)."""
    filesystem, p = storage.resolve(path)

    def read() -> list[dict]:
        records: list[dict] = []
        stream = filesystem.open_input_stream(p, compression=None, buffer_size=1 << 20)
        with io.TextIOWrapper(stream, encoding="utf-8") as fh:  # universal newlines, as open() reads
            for line in fh:
                if len(records) >= n:
                    break
                if line.strip():
                    records.append(json.loads(line))
        return records

    return storage.retrying(path, read)


# ---------------------------------------------------------------------------------------------
# Ingest


def collect_ingest(output_dir: str | os.PathLike) -> Section:
    root = _root(output_dir)
    examples = storage.join(root, "examples")
    folders = [f[0] for f in _files(examples) if len(f) == 2 and f[1] == "_summary.json"]
    if not folders:
        return Section(note=f"Ingest did not run: no examples/<split>/_summary.json under {_shown(root)}.")
    splits = []
    for folder in folders:
        s = _read_json(storage.join(examples, folder, "_summary.json"))
        split = s.get("split", folder)
        rejects: list[dict] = []
        rdir = storage.join(root, "rejects", split)
        for (name,) in _files(rdir, recursive=False):  # one file per ingest task
            if fnmatchcase(name, "part-*.jsonl") and len(rejects) < REJECTS_SHOWN:
                rejects += _first_records(storage.join(rdir, name), REJECTS_SHOWN - len(rejects))
        splits.append({**s, "split": split, "reject_samples": rejects})
    return Section(ran=True, data={"splits": splits})


# ---------------------------------------------------------------------------------------------
# Augment


@dataclass
class _Corpus:
    """The columns of an augmented corpus the report needs, as Python lists."""

    ids: list[str]
    parents: list[str]
    variant: list[int]
    text_a: list[str]
    text_b: list[str | None]

    @classmethod
    def read(cls, files: list[str]) -> _Corpus:
        """The corpus of the Parquet files ``files`` (paths or URIs), in that order."""
        cols = ["example_id", "parent_id", "variant", "text_a", "text_b"]
        tables = [_read_parquet(f, cols) for f in files]
        if not tables:
            return cls([], [], [], [], [])
        table = pa.concat_tables(tables)
        return cls(*(table.column(c).to_pylist() for c in cols))

    @cached_property
    def originals(self) -> dict[str, int]:
        """Row of each original (variant 0) by example id."""
        return {e: i for i, (e, v) in enumerate(zip(self.ids, self.variant)) if v == 0}

    def words(self, row: int, mask_token: str) -> int:
        return len(stats.split_words(self.text_a[row], mask_token)) + len(
            stats.split_words(self.text_b[row], mask_token)
        )

    def edits(self, row: int, mask_token: str) -> stats.EditCounts:
        """A variant's edits against its original (both texts of a pair)."""
        o = self.originals[self.parents[row]]
        counts = stats.edit_counts(self.text_a[o], self.text_a[row], mask_token)
        if self.text_b[o] is not None or self.text_b[row] is not None:
            counts = counts + stats.edit_counts(self.text_b[o], self.text_b[row], mask_token)
        return counts

    def diff(self, row: int, mask_token: str) -> dict:
        o = self.originals[self.parents[row]]
        out = {"a": stats.word_diff(self.text_a[o], self.text_a[row], mask_token)}
        if self.text_b[o] is not None:
            out["b"] = stats.word_diff(self.text_b[o], self.text_b[row], mask_token)
        return out


def _corpus_figures(method: str, corpus: _Corpus, summary: dict, mask_token: str, seed: int) -> dict:
    originals = corpus.originals
    examples = len(originals)
    variants = len(corpus.ids) - examples
    second_texts = sum(corpus.text_b[i] is not None for i in originals.values())
    tries_each = summary.get("tries_per_example")
    tries = stats.tries_made(method, tries_each, examples, second_texts) if tries_each is not None else None

    # word statistics over every original, or over a seeded sample of them
    chosen = set(originals)
    if examples > STATS_MAX_EXAMPLES:
        rng = np.random.default_rng(seed)
        chosen = set(rng.choice(sorted(originals), STATS_MAX_EXAMPLES, replace=False).tolist())
    counts = [
        corpus.edits(i, mask_token)
        for i, (p, v) in enumerate(zip(corpus.parents, corpus.variant))
        if v > 0 and p in chosen
    ]
    return {
        "method": method,
        "examples": examples,
        "variants": variants,
        "rows": len(corpus.ids),
        "tries_per_example": tries_each,
        "tries": tries,
        "duplicates_dropped": tries - variants if tries is not None else None,
        "variants_per_example": stats.variants_per_example(corpus.parents, corpus.variant),
        "rates": stats.method_rates(counts),
        "stats_examples": len(chosen),
        "summary": summary,
    }


def _samples(corpora: dict[str, _Corpus], mask_token: str, seed: int) -> list[dict]:
    """A few originals (seeded choice among the short ones every method has) with variants per method."""
    common = None
    for corpus in corpora.values():
        short = {e for e, i in corpus.originals.items() if corpus.words(i, mask_token) <= SAMPLE_MAX_WORDS}
        common = short if common is None else common & short
    pool = sorted(common or ())
    if not pool:
        return []
    rng = np.random.default_rng(seed)
    picked = [pool[k] for k in sorted(rng.choice(len(pool), min(SAMPLES_PER_SPLIT, len(pool)), replace=False))]
    children: dict[str, dict[str, list[int]]] = {}
    for method, corpus in corpora.items():
        kids: dict[str, list[int]] = {p: [] for p in picked}
        for i, (p, v) in enumerate(zip(corpus.parents, corpus.variant)):
            if v > 0 and p in kids:
                kids[p].append(i)
        children[method] = kids
    out = []
    first = next(iter(corpora.values()))
    for parent in picked:
        o = first.originals[parent]
        per_method = {
            m: {
                "total": len(children[m][parent]),
                "shown": [c.diff(i, mask_token) for i in children[m][parent][:VARIANTS_SHOWN]],
            }
            for m, c in corpora.items()
        }
        out.append(
            {
                "parent_id": parent,
                "original": {"text_a": first.text_a[o], "text_b": first.text_b[o]},
                "methods": per_method,
            }
        )
    return out


def collect_augment(output_dir: str | os.PathLike, mask_token: str, seed: int) -> Section:
    root = _root(output_dir)
    base = storage.join(root, "augmented")
    folders = _by_folder(_files(base))
    summaries = [d for d, names in sorted(folders.items()) if len(d) == 2 and "_summary.json" in names]
    if not summaries:
        return Section(
            note=f"Augmentation did not run: no augmented/<split>/<method>/_summary.json under {_shown(root)}."
        )
    splits: dict[str, dict[str, _Corpus]] = {}
    out: dict[str, dict] = {}
    for split, method in summaries:
        folder = storage.join(base, split, method)
        parts = sorted(n for n in folders[split, method] if fnmatchcase(n, "part-*.parquet"))
        corpus = splits.setdefault(split, {})[method] = _Corpus.read([storage.join(folder, n) for n in parts])
        figures = _corpus_figures(method, corpus, _read_json(storage.join(folder, "_summary.json")), mask_token, seed)
        out.setdefault(split, {"methods": {}})["methods"][method] = figures
    for split, corpora in splits.items():
        out[split]["samples"] = _samples(corpora, mask_token, seed)
    return Section(ran=True, data={"splits": out, "mask_token": mask_token})


# ---------------------------------------------------------------------------------------------
# Teacher and cache


def _by_folder(files: Iterable[Folder]) -> dict[Folder, set[str]]:
    """The names of the files in each folder of a listing (:func:`_files`)."""
    out: dict[Folder, set[str]] = {}
    for *folder, name in files:
        out.setdefault(tuple(folder), set()).add(name)
    return out


def find_caches(folders: dict[Folder, set[str]]) -> tuple[list[Folder], list[Folder]]:
    """Cache folders (with manifest.json) and unfinished ones (shards but no manifest) among the
    folders of teacher/ (``_by_folder`` of its listing), in name order; an ensemble member's cache
    (``<cache>/members/<name>``) belongs to its cache, not listed apart."""
    done = {d for d, names in folders.items() if "manifest.json" in names}
    caches, unfinished = [], []
    for d, names in sorted(folders.items()):
        if any(d[:k] in done and d[k] == "members" for k in range(len(d))):
            continue
        if d in done:
            caches.append(d)
        elif any(n.startswith("shard-") and n.endswith(".parquet") for n in names):
            unfinished.append(d)
    return caches, unfinished


def _cache_name(folder: Folder) -> str:
    return "/".join(folder) or "."


def _read_logits(cache) -> pa.Table:
    present = set(cache.column_names)
    names = ("example_id", "parent_id", "method", "variant", "label_id", "score", "logits")
    wanted = [c for c in names if c in present]
    return cache.read_table(columns=wanted)


def _teacher_figures(name: str, table: pa.Table, labels: list[str], regression: bool = False) -> dict:
    n = table.num_rows
    logits = (
        table.column("logits").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(n, -1)
        if n
        else np.zeros((0, 0))
    )
    if regression:
        return _regression_figures(name, table, logits[:, 0] if n else np.zeros(0))
    conf = stats.confidence(logits)
    variant = table.column("variant").to_numpy() if "variant" in table.column_names else np.zeros(n, dtype=int)
    out = {
        "name": name,
        "rows": n,
        "confidence_original": conf[variant == 0].tolist(),
        "confidence_variant": conf[variant > 0].tolist(),
        "flips": None,
        "methods": [],
        "predicted": dict(zip(labels, stats.label_counts(logits, len(labels)))),
    }
    if "parent_id" in table.column_names and (variant > 0).any():
        out["flips"] = stats.flip_stats(
            table.column("example_id").to_pylist(), table.column("parent_id").to_pylist(), variant.tolist(), logits
        )
    if "method" in table.column_names:
        out["methods"] = sorted(set(table.column("method").to_pylist()))
    if "label_id" in table.column_names:
        out["agreement"] = stats.label_agreement(table.column("label_id").to_pylist(), logits)
    return out


def _regression_figures(name: str, table: pa.Table, pred: np.ndarray) -> dict:
    """A one-output (regression) teacher: its predicted scores, their correlation with the gold
    scores, and how far a variant's prediction moves from its original's."""
    n = table.num_rows
    variant = table.column("variant").to_numpy() if "variant" in table.column_names else np.zeros(n, dtype=int)
    gold = np.full(n, np.nan)
    if "score" in table.column_names:
        gold = pc.fill_null(table.column("score"), np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
    scored = ~np.isnan(gold)
    out = {
        "name": name,
        "rows": n,
        "regression": True,
        "methods": sorted(set(table.column("method").to_pylist())) if "method" in table.column_names else [],
        "prediction": [float(pred.mean()), float(pred.std()), float(pred.min()), float(pred.max())] if n else None,
        "scored": int(scored.sum()),
        "correlation": correlations(pred[scored & (variant == 0)], gold[scored & (variant == 0)]),
        # a sample of (gold, prediction, is variant) for the scatter plot, spread over the cache
        "points": [
            [float(gold[i]), float(pred[i]), int(variant[i] > 0)]
            for i in np.flatnonzero(scored)[:: max(1, int(scored.sum()) // MAX_SCATTER_POINTS + 1)]
        ],
        "shift": None,
    }
    if "parent_id" in table.column_names and (variant > 0).any():
        out["shift"] = stats.score_shift(
            table.column("example_id").to_pylist(), table.column("parent_id").to_pylist(), variant.tolist(), pred
        )
    return out


def _ensemble_figures(folder: str, table: pa.Table, regression: bool) -> dict:
    """Each teacher of an ensemble scored against the labels of the cache's originals (``table``:
    the main cache's rows as ``_read_logits`` gives them, in row order), how often the teachers
    agree, and the ensemble's combinations scored the same way."""
    from ..cache.ensemble import COMBINE, combine, open_ensemble
    from ..metrics import task_scores

    ens = open_ensemble(folder, verify="footer")
    stacked = ens.logits()  # by row, as the table
    n = table.num_rows
    variant = table.column("variant").to_numpy() if "variant" in table.column_names else np.zeros(n)
    target = "score" if regression else "label_id"
    fill = np.nan if regression else -100
    gold = (
        pc.fill_null(table.column(target), fill).to_numpy(zero_copy_only=False)
        if target in table.column_names
        else np.full(n, fill)
    )
    keep = variant == 0
    scores = {name: task_scores(stacked[k][keep], gold[keep], regression) for k, name in enumerate(ens.names)}
    for how in COMBINE:
        scores[f"ensemble ({how})"] = task_scores(combine(stacked, how)[keep], gold[keep], regression)
    out: dict = {"teachers": ens.names, "scores": scores, "rows": int(keep.sum())}
    if not regression:
        pred = stacked.argmax(-1)  # [teachers, rows]
        pairs = [(i, j) for i in range(len(pred)) for j in range(i + 1, len(pred))]
        out["pairwise_agreement"] = float(np.mean([np.mean(pred[i] == pred[j]) for i, j in pairs])) if pairs else None
        out["all_agree"] = float(np.mean((pred == pred[0]).all(0))) if len(pred[0]) else None
    return out


def _cache_figures(name: str, cache) -> dict:
    metas, total = [], 0
    for f in cache.files:  # footer and size of each shard, one open each
        filesystem, p = storage.resolve(f)
        with storage.remote_errors(f), filesystem.open_input_file(p) as fh:
            metas.append(pq.ParquetFile(fh).metadata)
            total += fh.size()
    columns = stats.column_bytes(metas)
    m = cache.manifest
    tokens = int(m.get("tokens") or 0)
    hidden = sum(c.compressed for c in columns if c.column.startswith("hidden_"))
    hidden_values = tokens * cache.hidden_size * len(cache.layers)
    compressed = sum(c.compressed for c in columns)
    uncompressed = sum(c.uncompressed for c in columns)
    return {
        "name": name,
        "rows": cache.num_rows,
        "tokens": tokens,
        "shards": len(cache.files),
        "bytes": total,
        "bytes_per_token": stats.bytes_per_token(total, tokens),
        "bytes_per_row": total / cache.num_rows if cache.num_rows else None,
        "bytes_per_hidden_value": hidden / hidden_values if hidden_values else None,
        "compression_ratio": uncompressed / compressed if compressed else None,
        "layers": cache.layers,
        "attentions": cache.attentions,
        "hidden_size": cache.hidden_size,
        "columns": columns,
        "teacher": m.get("teacher", {}).get("model", ""),
        "encoding": m.get("encoding", {}),
    }


def collect_teacher_and_cache(output_dir: str | os.PathLike) -> tuple[Section, Section]:
    from ..cache import CacheError, open_cache

    root = _root(output_dir)
    base = storage.join(root, "teacher")
    folders = _by_folder(_files(base))
    done, unfinished = find_caches(folders)
    has_summary = "_summary.json" in folders.get((), set())
    summary = _read_json(storage.join(base, "_summary.json")) if has_summary else {}
    finetune = summary.get("finetune") if isinstance(summary, dict) else None
    if not done:
        note = f"The teacher stage did not run: no teacher/<input>/manifest.json under {_shown(root)}."
        if unfinished:
            note += " Unfinished caches (no manifest): " + ", ".join(_cache_name(u) for u in unfinished) + "."
        return Section(note=note, data={"finetune": finetune}), Section(note=note)
    teacher, caches, errors, labels = [], [], [], None
    for d in done:
        name, folder = _cache_name(d), storage.join(base, *d)
        try:
            cache = open_cache(folder, verify="footer")
            regression = cache.manifest.get("teacher", {}).get("problem_type") == "regression"
            table = _read_logits(cache)
            figures = _teacher_figures(name, table, cache.labels, regression)
            if ENSEMBLE_NAME in folders[d]:
                figures["ensemble"] = _ensemble_figures(folder, table, regression)
            teacher.append(figures)
            caches.append(_cache_figures(name, cache))
            labels = labels or cache.labels
        except CacheError as exc:
            errors.append(f"{name}: {exc.reason}")
    extra = {"errors": errors, "unfinished": [_cache_name(u) for u in unfinished]}
    return (
        Section(
            ran=bool(teacher) or bool(errors), data={"caches": teacher, "finetune": finetune, "labels": labels, **extra}
        ),
        Section(ran=bool(caches) or bool(errors), data={"caches": caches, **extra}),
    )


# ---------------------------------------------------------------------------------------------
# Student


def collect_student(output_dir: str | os.PathLike) -> Section:
    base = storage.join(_root(output_dir), "student")
    if not storage.is_dir(base):
        return Section(note="No student was trained in this job (no student/ folder).")
    files = _files(base)
    results = _read_json(storage.join(base, "results.json")) if ("results.json",) in files else None
    runs = [_read_json(storage.join(base, *f)) for f in files if len(f) == 2 and f[1] == "metrics.json"]
    if results is None and not runs:
        return Section(note=f"No student results: {_shown(base)} holds neither results.json nor <run>/metrics.json.")
    return Section(
        ran=True, data={"rows": (results or {}).get("rows", []), "runs": runs, "has_results": results is not None}
    )


# ---------------------------------------------------------------------------------------------


def collect(
    output_dir: str | os.PathLike, title: str | None = None, mask_token: str = stats.MASK_TOKEN, seed: int = 0
) -> ReportData:
    """Everything the report shows, read from one output folder (a local path or a URI)."""
    root = _root(output_dir)
    teacher, cache = collect_teacher_and_cache(root)
    given = os.fspath(output_dir)
    return ReportData(
        title=title or _base_name(root),
        output_dir=storage.redact(given) if "://" in given else given,
        ingest=collect_ingest(root),
        augment=collect_augment(root, mask_token, seed),
        teacher=teacher,
        cache=cache,
        student=collect_student(root),
    )
