"""Read a job's output folder into the figures the report shows (no Ray, no model).

Every stage is optional: a section whose outputs are absent comes back with ``ran=False`` and a
note saying what is missing. Teacher caches are read through :func:`pipeline.teacher.open_cache`
(footer check only) and only their id, label and ``logits`` columns: hidden states stay on disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..metrics import correlations
from ..teacher.ensemble import ENSEMBLE_NAME
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


def _read_json(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _parquet_files(folder: Path, prefix: str = "part-") -> list[Path]:
    return sorted(p for p in folder.glob(f"{prefix}*.parquet") if p.is_file())


# ---------------------------------------------------------------------------------------------
# Ingest


def collect_ingest(root: Path) -> Section:
    summaries = sorted((root / "examples").glob("*/_summary.json"))
    if not summaries:
        return Section(note=f"Ingest did not run: no examples/<split>/_summary.json under {root}.")
    splits = []
    for path in summaries:
        s = _read_json(path)
        split = s.get("split", path.parent.name)
        rejects: list[dict] = []
        for rpath in sorted((root / "rejects" / split).glob("part-*.jsonl")):  # one file per ingest task
            with open(rpath, encoding="utf-8") as fh:
                for line in fh:
                    if len(rejects) >= REJECTS_SHOWN:
                        break
                    if line.strip():
                        rejects.append(json.loads(line))
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
    def read(cls, folder: Path) -> _Corpus:
        cols = ["example_id", "parent_id", "variant", "text_a", "text_b"]
        tables = [pq.read_table(f, columns=cols) for f in _parquet_files(folder)]
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


def collect_augment(root: Path, mask_token: str, seed: int) -> Section:
    summaries = sorted((root / "augmented").glob("*/*/_summary.json"))
    if not summaries:
        return Section(note=f"Augmentation did not run: no augmented/<split>/<method>/_summary.json under {root}.")
    splits: dict[str, dict[str, _Corpus]] = {}
    out: dict[str, dict] = {}
    for path in summaries:
        split, method = path.parent.parent.name, path.parent.name
        corpus = splits.setdefault(split, {})[method] = _Corpus.read(path.parent)
        figures = _corpus_figures(method, corpus, _read_json(path), mask_token, seed)
        out.setdefault(split, {"methods": {}})["methods"][method] = figures
    for split, corpora in splits.items():
        out[split]["samples"] = _samples(corpora, mask_token, seed)
    return Section(ran=True, data={"splits": out, "mask_token": mask_token})


# ---------------------------------------------------------------------------------------------
# Teacher and cache


def find_caches(root: Path) -> tuple[list[Path], list[Path]]:
    """Cache folders (with manifest.json) and unfinished ones (shards but no manifest) under teacher/;
    an ensemble member's cache (``<cache>/members/<name>``) belongs to its cache, not listed apart."""
    base = root / "teacher"
    if not base.is_dir():
        return [], []
    done, unfinished = [], []
    for dirpath, dirnames, files in os.walk(base):
        d = Path(dirpath)
        if "members" in dirnames and "manifest.json" in files:
            dirnames.remove("members")
        if "manifest.json" in files:
            done.append(d)
        elif any(f.startswith("shard-") and f.endswith(".parquet") for f in files):
            unfinished.append(d)
    return sorted(done), sorted(unfinished)


def _cache_name(root: Path, folder: Path) -> str:
    return folder.relative_to(root / "teacher").as_posix()


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
    from ..metrics import task_scores
    from ..teacher.ensemble import COMBINE, combine, open_ensemble

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
    metas = [pq.ParquetFile(f).metadata for f in cache.files]
    columns = stats.column_bytes(metas)
    m = cache.manifest
    total = sum(os.path.getsize(f) for f in cache.files)
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


def collect_teacher_and_cache(root: Path) -> tuple[Section, Section]:
    from ..teacher import CacheError, open_cache

    done, unfinished = find_caches(root)
    summary_path = root / "teacher" / "_summary.json"
    summary = _read_json(summary_path) if summary_path.exists() else {}
    finetune = summary.get("finetune") if isinstance(summary, dict) else None
    if not done:
        note = f"The teacher stage did not run: no teacher/<input>/manifest.json under {root}."
        if unfinished:
            note += " Unfinished caches (no manifest): " + ", ".join(_cache_name(root, u) for u in unfinished) + "."
        return Section(note=note, data={"finetune": finetune}), Section(note=note)
    teacher, caches, errors, labels = [], [], [], None
    for folder in done:
        name = _cache_name(root, folder)
        try:
            cache = open_cache(str(folder), verify="footer")
            regression = cache.manifest.get("teacher", {}).get("problem_type") == "regression"
            table = _read_logits(cache)
            figures = _teacher_figures(name, table, cache.labels, regression)
            if (folder / ENSEMBLE_NAME).exists():
                figures["ensemble"] = _ensemble_figures(str(folder), table, regression)
            teacher.append(figures)
            caches.append(_cache_figures(name, cache))
            labels = labels or cache.labels
        except CacheError as exc:
            errors.append(f"{name}: {exc.reason}")
    extra = {"errors": errors, "unfinished": [_cache_name(root, u) for u in unfinished]}
    return (
        Section(
            ran=bool(teacher) or bool(errors), data={"caches": teacher, "finetune": finetune, "labels": labels, **extra}
        ),
        Section(ran=bool(caches) or bool(errors), data={"caches": caches, **extra}),
    )


# ---------------------------------------------------------------------------------------------
# Student


def collect_student(root: Path) -> Section:
    base = root / "student"
    if not base.is_dir():
        return Section(note="No student was trained in this job (no student/ folder).")
    results = _read_json(base / "results.json") if (base / "results.json").exists() else None
    runs = []
    for path in sorted(base.glob("*/metrics.json")):
        runs.append(_read_json(path))
    if results is None and not runs:
        return Section(note=f"No student results: {base} holds neither results.json nor <run>/metrics.json.")
    return Section(
        ran=True, data={"rows": (results or {}).get("rows", []), "runs": runs, "has_results": results is not None}
    )


# ---------------------------------------------------------------------------------------------


def collect(
    output_dir: str | os.PathLike, title: str | None = None, mask_token: str = stats.MASK_TOKEN, seed: int = 0
) -> ReportData:
    """Everything the report shows, read from one output folder (a local path)."""
    root = Path(output_dir)
    teacher, cache = collect_teacher_and_cache(root)
    return ReportData(
        title=title or root.name,
        output_dir=str(output_dir),
        ingest=collect_ingest(root),
        augment=collect_augment(root, mask_token, seed),
        teacher=teacher,
        cache=cache,
        student=collect_student(root),
    )
