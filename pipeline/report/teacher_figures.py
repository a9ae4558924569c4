"""The teacher and cache sections' figures, read from a job's teacher/ folder.

Caches are read through :func:`pipeline.cache.open_cache` (footer check only) and only their id,
label and ``logits`` columns: hidden states stay on disk.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import storage
from ..cache.ensemble import ENSEMBLE_NAME
from ..metrics import correlations
from . import outputs, stats
from .corpus import each_batch
from .outputs import Folder, Section

MAX_SCATTER_POINTS = 2000  # regression: (gold, predicted) points per cache in the scatter plot


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


def _logits(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    n = batch.num_rows
    column = batch.column("logits")
    values = (column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column).flatten()
    if not n:
        return np.zeros((0, getattr(column.type, "list_size", 1)))
    return values.to_numpy(zero_copy_only=False).reshape(n, -1)


class _Flips:
    """Label flips of variants against their original, over rows that come as original, its
    variants, next original, ... (the order of a cache of an augmented corpus): the last
    original's prediction is all that is kept. ``grouped`` turns False when a variant does not
    follow its own original; the caller then counts again with one prediction per original."""

    def __init__(self) -> None:
        self.flips = self.compared = 0
        self.last_id: str | None = None
        self.last_pred = -1
        self.grouped = True

    def add(self, ids: pa.Array, parents: pa.Array, variant: np.ndarray, pred: np.ndarray) -> None:
        n = len(variant)
        if not n:
            return
        last = np.maximum.accumulate(np.where(variant == 0, np.arange(n), -1))
        rows = np.flatnonzero(variant > 0)
        inside, head = rows[last[rows] >= 0], rows[last[rows] < 0]
        if len(inside) and not pc.all(pc.equal(parents.take(inside), ids.take(last[inside]))).as_py():
            self.grouped = False
        if len(head) and (self.last_id is None or not pc.all(pc.equal(parents.take(head), self.last_id)).as_py()):
            self.grouped = False
        parent_pred = np.where(last[rows] >= 0, pred[np.maximum(last[rows], 0)], self.last_pred)
        self.flips += int(np.count_nonzero(pred[rows] != parent_pred))
        self.compared += len(rows)
        starts = np.flatnonzero(variant == 0)
        if len(starts):
            self.last_id, self.last_pred = ids[int(starts[-1])].as_py(), int(pred[starts[-1]])


def _flips_ungrouped(cache) -> stats.FlipStats:
    """Label flips of a cache whose variants do not follow their originals: a first pass keeps
    each original's prediction, a second compares the variants with it."""
    parent_pred: dict[str, int] = {}
    columns = ["example_id", "parent_id", "variant", "logits"]

    def originals(batch: pa.RecordBatch) -> None:
        keep = pc.equal(batch.column("variant"), 0)
        ids = batch.column("example_id").filter(keep).to_pylist()
        parent_pred.update(zip(ids, _logits(batch.filter(keep)).argmax(axis=1).tolist()))

    flips = compared = 0

    def variants(batch: pa.RecordBatch) -> None:
        nonlocal flips, compared
        keep = pc.greater(batch.column("variant"), 0)
        pred = _logits(batch.filter(keep)).argmax(axis=1).tolist()
        for parent, p in zip(batch.column("parent_id").filter(keep).to_pylist(), pred):
            if parent in parent_pred:
                compared += 1
                flips += p != parent_pred[parent]

    each_batch(cache.files, columns, originals)
    each_batch(cache.files, columns, variants)
    return stats.FlipStats(flips, compared)


def _teacher_figures(name: str, cache) -> dict:
    """A classifying teacher's figures over every row of its cache, read batch by batch: label
    counts, agreement with the labels, confidence histograms, label flips (exact counts)."""
    labels = cache.labels
    present = set(cache.column_names)
    columns = [c for c in ("example_id", "parent_id", "method", "variant", "label_id", "logits") if c in present]
    has_variants = {"variant", "parent_id"} <= present
    orig, var = stats.Confidence.empty(len(labels)), stats.Confidence.empty(len(labels))
    predicted = np.zeros(len(labels), dtype=np.int64)
    agree, labelled, rows = 0, 0, 0
    methods: set[str] = set()
    flips = _Flips()

    def visit(batch: pa.RecordBatch) -> None:
        nonlocal agree, labelled, rows
        logits = _logits(batch)
        n = batch.num_rows
        rows += n
        if not n:
            return
        conf, pred = stats.confidence(logits), logits.argmax(axis=1)
        variant = batch.column("variant").to_numpy(zero_copy_only=False) if "variant" in present else np.zeros(n, int)
        orig.add(conf[variant == 0])
        var.add(conf[variant > 0])
        predicted[:] += np.bincount(pred, minlength=len(labels))[: len(labels)]
        if "method" in present:
            methods.update(pc.unique(batch.column("method")).drop_null().to_pylist())
        if "label_id" in present:
            label = batch.column("label_id")
            valid = pc.is_valid(label).to_numpy(zero_copy_only=False)
            gold = pc.fill_null(label, -1).to_numpy(zero_copy_only=False)
            labelled += int(valid.sum())
            agree += int(np.count_nonzero(valid & (gold == pred)))
        if has_variants:
            flips.add(batch.column("example_id"), batch.column("parent_id"), variant, pred)

    each_batch(cache.files, columns, visit)
    out = {
        "name": name,
        "rows": rows,
        "confidence_original": orig,
        "confidence_variant": var,
        "flips": None,
        "methods": sorted(methods),
        "predicted": dict(zip(labels, predicted.tolist())),
    }
    if has_variants and var.n:
        out["flips"] = stats.FlipStats(flips.flips, flips.compared) if flips.grouped else _flips_ungrouped(cache)
    if "label_id" in present:
        out["agreement"] = (agree, labelled)
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

    root = outputs.root(output_dir)
    base = storage.join(root, "teacher")
    folders = outputs.by_folder(outputs.files(base))
    done, unfinished = find_caches(folders)
    has_summary = "_summary.json" in folders.get((), set())
    summary = outputs.read_json(storage.join(base, "_summary.json")) if has_summary else {}
    finetune = summary.get("finetune") if isinstance(summary, dict) else None
    if not done:
        note = f"The teacher stage did not run: no teacher/<input>/manifest.json under {outputs.shown(root)}."
        if unfinished:
            note += " Unfinished caches (no manifest): " + ", ".join(_cache_name(u) for u in unfinished) + "."
        return Section(note=note, data={"finetune": finetune}), Section(note=note)
    teacher, caches, errors, labels = [], [], [], None
    for d in done:
        name, folder = _cache_name(d), storage.join(base, *d)
        try:
            cache = open_cache(folder, verify="footer")
            regression = cache.manifest.get("teacher", {}).get("problem_type") == "regression"
            if regression or ENSEMBLE_NAME in folders[d]:
                table = _read_logits(cache)
            if regression:
                figures = _regression_figures(name, table, _logits(table)[:, 0] if table.num_rows else np.zeros(0))
            else:
                figures = _teacher_figures(name, cache)
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
