"""The student stage: train every configured run once per seed from the teacher caches, evaluate,
and write the result table. Offline: no Ray, no teacher inference (the teacher row of the table
evaluates the teacher model once on the final split for its scores and speed).

The metrics are the task's (:mod:`pipeline.metrics`): accuracy, macro-F1, F1 and MCC for a label
set; Pearson, Spearman and MSE for a regression task. The best epoch is chosen by the task's
headline metric on the dev split.

Outputs under ``<output_dir>/student/``:

- ``<run>-seed<k>/metrics.json``: run, model, data, seed, params, per-epoch history (train loss,
  every dev metric), best epoch, every test metric, sentences/s, and a key: a re-run with the same
  key reuses the finished run instead of training it again;
- ``<run>-seed<k>/model.pt`` (BiLSTM state + vocabulary) or a ``save_pretrained`` folder (BERT);
- ``results.json`` / ``results.md``: mean ± std over seeds of every metric on the test split (on
  dev where the test labels are hidden, as GLUE's are), params, speed;
- ``curves.png``: the headline dev metric per epoch of every run.

The work is split by concern: :mod:`.run_context` (what runs share), :mod:`.runs` (training one
run), :mod:`.tables` (the result table) and :mod:`.curves` (the learning-curve figure).
"""

from __future__ import annotations

import sys

import torch

from .. import storage
from ..cache import CacheError
from ..runtime.resources import Resources
from ..runtime.runner import Stage, Task, Work, make_task, run_stage
from .curves import plot_curves
from .errors import StudentStageError
from .run_context import (  # noqa: F401  (_teacher_targets, teacher_model_path: the stage's API, as before the split)
    _Context,
    _key,
    _teacher_targets,
    cache_dir,
    student_dir,
    teacher_model_path,
)
from .runs import _finished_run, _RunTrainer
from .settings import StudentConfig
from .tables import _teacher_rows, aggregate, markdown_table, table_metrics  # noqa: F401  (table_metrics: re-exported)


def run_student(
    cfg,
    student: StudentConfig | None = None,
    *,
    runs: list[str] | None = None,
    seeds: list[int] | None = None,
    stream=None,
) -> dict:
    """Train, evaluate and tabulate the job's student runs (``runs`` / ``seeds``: only these; several
    processes or machines can split a job's runs this way, and a last run without them tabulates all)."""
    sc = student if student is not None else cfg.student
    if sc is None:
        raise StudentStageError("the job has no student section")
    stream = stream or sys.stderr
    chosen = [r for r in sc.runs if runs is None or r.name in runs]
    unknown = sorted(set(runs or []) - {r.name for r in sc.runs})
    if unknown:
        raise StudentStageError(f"unknown run(s) {unknown}; the job has {[r.name for r in sc.runs]}")
    unknown_seeds = sorted(set(seeds or []) - set(sc.seeds))
    if unknown_seeds:
        raise StudentStageError(f"unknown seed(s) {unknown_seeds}; the job has {sc.seeds}")
    if seeds:
        sc = sc.model_copy(update={"seeds": [s for s in sc.seeds if s in seeds]})
    ctx = _Context(cfg, sc, stream)
    for run in chosen:  # every cache is validated before the first step of training
        ctx.cache(run.data)
        if run.intermediate:
            ctx.cache(run.intermediate)
        if run.teachers:
            missing = sorted(set(run.teachers) - set(ctx.ensemble(run.data).names))
            if missing:
                raise CacheError(
                    cache_dir(cfg, run.data),
                    f"run {run.name!r} names teachers {missing}; the cache's ensemble has "
                    f"{ctx.ensemble(run.data).names} (teacher.ensemble, then `pipeline teacher`)",
                )
    by_name = {run.name: run for run in chosen}
    pairs = [(run.name, seed) for run in chosen for seed in sc.seeds]
    tasks = [make_task(i, {"run": name, "seed": seed}, 1) for i, (name, seed) in enumerate(pairs)]
    out = student_dir(cfg)
    per_run: dict[str, list[dict]] = {}
    rows: list[dict] = []

    def reuse(task: Task) -> dict | None:
        done = _finished_run(ctx, by_name[task.spec["run"]], task.spec["seed"])
        return None if done is None else {**done, "rows_in": 1}

    def commit(summary: dict, results: list[dict]) -> None:
        for (name, _), result in zip(pairs, results):
            per_run.setdefault(name, []).append(result)
        if sc.teacher_row:
            rows.extend(_teacher_rows(ctx))
        rows.extend(aggregate(run, per_run[run.name], ctx.metric) for run in chosen)
        storage.write_json(
            storage.join(out, "results.json"),
            {"rows": rows, "seeds": sc.seeds, "device": str(ctx.device), "threads": torch.get_num_threads()},
        )
        table = markdown_table(rows)
        storage.write_bytes(storage.join(out, "results.md"), table.encode())
        plot_curves(per_run, storage.join(out, "curves.png"), ctx.metric)
        print(table, file=sys.stdout)

    stage = Stage(
        "student",
        out,
        _key([t.spec for t in tasks]),
        lambda: tasks,
        lambda todo: Work(
            _RunTrainer, {"ctx": ctx, "runs": by_name}, Resources(threads=torch.get_num_threads(), actors=True)
        ),
        lines=lambda s: [
            ("runs", len(chosen)),
            ("seeds", str(sc.seeds)),
            ("device", str(ctx.device)),
            ("results", storage.join(out, "results.md")),
        ],
        reuse=reuse,
        commit=commit,
        task_markers=False,
        unit="runs",
    )
    run_stage(stage, executor="local")
    return {"rows": rows, "runs": per_run}
