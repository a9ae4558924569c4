"""The augment stage: each (split, method) is a stage of tasks over fixed ranges of the split's
examples (``augment.shard_rows`` examples each); task i writes ``part-i.parquet``.

Every random choice for an example comes from a stream seeded by (job seed, example_id, method)
and a task's range is fixed by the examples and ``shard_rows``, so the files are byte-identical
whatever the number of workers or nodes. The methods (``tinybert_tasks.TinyBert``,
``tang_tasks.Tang``) sit behind one interface (``method.AugmentMethod``); the runner
(``runtime/runner.py``) skips a finished output and resumes an interrupted one per task.
"""

from __future__ import annotations

from functools import cache

from .. import layout, row_ranges, storage
from ..config import JobConfig
from ..runtime import markers
from ..runtime.digest import digest
from ..runtime.runner import Stage, Task, make_task, run_stage
from .method import AUGMENTED_SCHEMA, AugmentError, AugmentMethod, variants_table  # noqa: F401  (the stage's API)
from .tang_tasks import Tang, unigram_counts  # noqa: F401
from .tinybert_tasks import MlmActorLayout, TinyBert, mlm_actor_layout  # noqa: F401


def augmented_dir(cfg: JobConfig, split: str, method: str) -> str:
    return layout.augmented_dir(cfg.output_dir, split, method)


def _example_files(cfg: JobConfig, split: str) -> list[tuple[str, int]]:
    """The split's ingested Parquet files with their row counts (from the footers)."""
    path = layout.examples_dir(cfg.output_dir, split)
    files = row_ranges.parquet_row_counts(path) if storage.exists(path) else []
    if not files:
        raise AugmentError(f"{path}: no ingested examples for split {split!r}; run `pipeline ingest` first")
    return files


def plan_ranges(files: list[tuple[str, int]], shard_rows: int) -> list[Task]:
    """Pure: tasks of ``shard_rows`` consecutive examples of ``files`` ((path, rows), in order);
    one task over the empty first file when there are no examples (so that its output has the schema)."""
    ranges = row_ranges.fixed_ranges(files, shard_rows)
    if not ranges:
        return [make_task(0, {"pieces": [[files[0][0], 0, 0]]})]
    return [make_task(i, {"pieces": pieces}, hi - lo) for i, (lo, hi, pieces) in enumerate(ranges)]


def examples_key(cfg: JobConfig, split: str) -> str:
    """The fingerprint of a split's examples: ingest's marker when it finished them (its key holds
    the input file's SHA-256 and the settings, and the files' sizes), else their SHA-256."""
    path = layout.examples_dir(cfg.output_dir, split)
    if not storage.exists(path):
        raise AugmentError(f"{path}: no ingested examples for split {split!r}; run `pipeline ingest` first")
    marker = storage.join(path, markers.MARKER)
    if storage.exists(marker):
        return digest(storage.read_json(marker))
    return digest(markers.fingerprint_dir(path))


def make_methods(cfg: JobConfig, names: list[str], executor: str) -> dict[str, AugmentMethod]:
    plan = cache(lambda split: plan_ranges(_example_files(cfg, split), cfg.augment.shard_rows))
    key = cache(lambda split: examples_key(cfg, split))
    made: dict[str, AugmentMethod] = {"tinybert": TinyBert(cfg, executor), "tang": Tang(cfg, executor, plan, key)}
    return {name: made[name] for name in names}


def recorded_settings(cfg: JobConfig, method: AugmentMethod) -> dict:
    """What made a corpus besides its examples, and their hash, recorded in the corpus's summary: the
    teacher stage copies them into the lineage of a cache of the corpus (manifest, dataset card)."""
    settings = {"seed": cfg.seed, "tries": method.tries(), "shard_rows": cfg.augment.shard_rows, **method.settings()}
    return {"settings": settings, "settings_hash": digest(settings, length=16)}


def augment_stage(cfg: JobConfig, split: str, method: AugmentMethod, executor: str = "ray") -> Stage:
    out_dir = augmented_dir(cfg, split, method.name)
    key = digest(
        {
            "stage": "augment",
            "split": split,
            "method": method.name,
            "seed": cfg.seed,
            "tries": method.tries(),
            "params": method.settings(),
            "shard_rows": cfg.augment.shard_rows,
            "examples": examples_key(cfg, split),
            **method.extra_inputs(split),
        }
    )

    def summarize(results: list[dict]) -> dict:
        parents, rows = sum(r["rows_in"] for r in results), sum(r["rows_out"] for r in results)
        return {
            "split": split,
            "method": method.name,
            "examples_in": parents,
            "rows_out": rows,
            "variants": rows - parents,
            "tries_per_example": method.tries(),
            **method.summary(),
            **recorded_settings(cfg, method),
            "shards": [
                {"file": f["path"].rsplit("/", 1)[-1], "rows": f["rows"], "bytes": f["bytes"], "sha256": f["sha256"]}
                for r in results
                for f in r["files"]
            ],
        }

    def lines(s: dict) -> list[tuple[str, object]]:
        return [
            ("examples in", s["examples_in"]),
            ("rows out", s["rows_out"]),
            ("variants per example", round(s["variants"] / max(s["examples_in"], 1), 2)),
            ("tries per example", s["tries_per_example"]),
            *([("mlm", s["mlm"])] if "mlm" in s else []),
            ("examples / s", round(s["examples_in"] / max(s.get("seconds", 0), 1e-9), 1)),
            ("output", out_dir),
        ]

    return Stage(
        f"augment {split} {method.name}",
        out_dir,
        key,
        plan=lambda: plan_ranges(_example_files(cfg, split), cfg.augment.shard_rows),
        work=lambda todo: method.work(split, todo, out_dir),
        summarize=summarize,
        lines=lines,
    )


def run_augment(cfg: JobConfig, methods: list[str] | None = None, executor: str = "ray") -> dict:
    """Augment every split of ``cfg.augment.splits`` with each method."""
    made = make_methods(cfg, list(methods or cfg.augment.methods), executor)
    results = {}
    for split in cfg.augment.splits:
        for name, method in made.items():
            results[(split, name)] = run_stage(augment_stage(cfg, split, method, executor), executor)
    return results
