"""Read a job's output folder into the figures the report shows (no Ray, no model).

Every stage is optional: a section whose outputs are absent comes back with ``ran=False`` and a
note saying what is missing. The ingest, augmentation and student sections are read here, the
teacher and cache sections by :mod:`.teacher_figures`; an augmented corpus is read in bounded
memory by :mod:`.corpus`.
"""

from __future__ import annotations

import io
import json
import os
from fnmatch import fnmatchcase

import numpy as np

from .. import storage
from . import outputs, stats
from .corpus import SampledCorpus, scan
from .outputs import ReportData, Section
from .teacher_figures import collect_teacher_and_cache

__all__ = ["ReportData", "Section", "collect", "collect_teacher_and_cache"]

SAMPLES_PER_SPLIT = 4  # originals shown with their variants
VARIANTS_SHOWN = 6  # variants shown per original and method
REJECTS_SHOWN = 5  # rejected rows shown per split
STATS_MAX_EXAMPLES = 2000  # word statistics over at most this many originals per corpus (seeded sample)
SAMPLE_MAX_WORDS = 40  # sampled originals are at most this long, so the page stays readable


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
    root = outputs.root(output_dir)
    examples = storage.join(root, "examples")
    folders = [f[0] for f in outputs.files(examples) if len(f) == 2 and f[1] == "_summary.json"]
    if not folders:
        return Section(note=f"Ingest did not run: no examples/<split>/_summary.json under {outputs.shown(root)}.")
    splits = []
    for folder in folders:
        s = outputs.read_json(storage.join(examples, folder, "_summary.json"))
        split = s.get("split", folder)
        rejects: list[dict] = []
        rdir = storage.join(root, "rejects", split)
        for (name,) in outputs.files(rdir, recursive=False):  # one file per ingest task
            if fnmatchcase(name, "part-*.jsonl") and len(rejects) < REJECTS_SHOWN:
                rejects += _first_records(storage.join(rdir, name), REJECTS_SHOWN - len(rejects))
        splits.append({**s, "split": split, "reject_samples": rejects})
    return Section(ran=True, data={"splits": splits})


# ---------------------------------------------------------------------------------------------
# Augment


def _corpus_figures(
    method: str, files: list[str], summary: dict, mask_token: str, seed: int
) -> tuple[dict, SampledCorpus]:
    """A corpus's exact counts and its word statistics over a seeded sample of its originals
    (every original when there are at most ``STATS_MAX_EXAMPLES``), read in bounded memory."""
    counted = scan(files, STATS_MAX_EXAMPLES, seed)
    sampled = SampledCorpus.read(files, counted.sample)
    examples = counted.originals
    variants = counted.rows - examples
    tries_each = summary.get("tries_per_example")
    tries = stats.tries_made(method, tries_each, examples, counted.second_texts) if tries_each is not None else None
    counts = [sampled.edits(i, mask_token) for i, v in enumerate(sampled.variant) if v > 0]
    figures = {
        "method": method,
        "examples": examples,
        "variants": variants,
        "rows": counted.rows,
        "tries_per_example": tries_each,
        "tries": tries,
        "duplicates_dropped": tries - variants if tries is not None else None,
        "variants_per_example": counted.per_example,
        "rates": stats.method_rates(counts),
        "stats_examples": len(counted.sample),
        "summary": summary,
    }
    return figures, sampled


def _samples(corpora: dict[str, SampledCorpus], mask_token: str, seed: int) -> list[dict]:
    """A few originals (seeded choice among the short sampled ones every method has) with variants per method."""
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
    root = outputs.root(output_dir)
    base = storage.join(root, "augmented")
    folders = outputs.by_folder(outputs.files(base))
    summaries = [d for d, names in sorted(folders.items()) if len(d) == 2 and "_summary.json" in names]
    if not summaries:
        return Section(
            note=f"Augmentation did not run: no augmented/<split>/<method>/_summary.json under {outputs.shown(root)}."
        )
    splits: dict[str, dict[str, SampledCorpus]] = {}
    out: dict[str, dict] = {}
    for split, method in summaries:
        folder = storage.join(base, split, method)
        parts = sorted(n for n in folders[split, method] if fnmatchcase(n, "part-*.parquet"))
        summary = outputs.read_json(storage.join(folder, "_summary.json"))
        figures, sampled = _corpus_figures(method, [storage.join(folder, n) for n in parts], summary, mask_token, seed)
        splits.setdefault(split, {})[method] = sampled
        out.setdefault(split, {"methods": {}})["methods"][method] = figures
    for split, corpora in splits.items():
        out[split]["samples"] = _samples(corpora, mask_token, seed)
    return Section(ran=True, data={"splits": out, "mask_token": mask_token})


# ---------------------------------------------------------------------------------------------
# Student


def collect_student(output_dir: str | os.PathLike) -> Section:
    base = storage.join(outputs.root(output_dir), "student")
    if not storage.is_dir(base):
        return Section(note="No student was trained in this job (no student/ folder).")
    files = outputs.files(base)
    results = outputs.read_json(storage.join(base, "results.json")) if ("results.json",) in files else None
    runs = [outputs.read_json(storage.join(base, *f)) for f in files if len(f) == 2 and f[1] == "metrics.json"]
    if results is None and not runs:
        return Section(
            note=f"No student results: {outputs.shown(base)} holds neither results.json nor <run>/metrics.json."
        )
    return Section(
        ran=True, data={"rows": (results or {}).get("rows", []), "runs": runs, "has_results": results is not None}
    )


# ---------------------------------------------------------------------------------------------


def collect(
    output_dir: str | os.PathLike, title: str | None = None, mask_token: str = stats.MASK_TOKEN, seed: int = 0
) -> ReportData:
    """Everything the report shows, read from one output folder (a local path or a URI)."""
    root = outputs.root(output_dir)
    teacher, cache = collect_teacher_and_cache(root)
    given = os.fspath(output_dir)
    return ReportData(
        title=title or outputs.base_name(root),
        output_dir=storage.redact(given) if "://" in given else given,
        ingest=collect_ingest(root),
        augment=collect_augment(root, mask_token, seed),
        teacher=teacher,
        cache=cache,
        student=collect_student(root),
    )
