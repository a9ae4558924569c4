"""Preparing the teachers: fine-tuning the teacher (one Ray task or in-process) when configured, and the
ensemble's further members, each fine-tuned with its own seed and its logits cached for every input."""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from .. import layout, storage
from ..cache.manifest import cache_key
from ..runtime.resources import Resources
from . import shards as sh
from .errors import TeacherError
from .finetune import LabelledTexts, finetune_classifier, finished_metrics, holdout
from .inference import cache_input
from .model import has_classification_head
from .model_files import ModelSourceError, local_model_dir, weights_sha256
from .planning import _Resources, _TeacherInfo, model_dir
from .settings import TeacherConfig

# ---------------------------------------------------------------------------------------------
# Fine-tuning


def _read_labelled(cfg, split: str) -> LabelledTexts:
    path = layout.examples_dir(cfg.output_dir, split)
    files = sh.list_input_files(path) if storage.exists(path) else []
    if not files:
        raise TeacherError(f"{path}: no ingested examples for split {split!r}; run `pipeline ingest` first")
    import pyarrow as pa

    table = pa.concat_tables([sh.read_rows([(f.path, 0, f.rows)]) for f in files])
    return LabelledTexts.from_arrow(table, regression=cfg.regression)


def _dev_line(metrics: dict) -> str:
    metric = metrics.get("metric", "accuracy")
    return f"dev {metric} {metrics[f'dev_{metric}']:.4f}"


def _finetune_task(
    source, out_dir, train, dev, labels, regression, settings, seed, device, dtype, threads, extra, lines=None
):
    """Fine-tuning as a task; its epoch lines go to ``lines`` (a Ray queue the driver prints from)
    when given, else to stderr."""
    return finetune_classifier(
        source,
        out_dir,
        train,
        dev,
        labels,
        settings,
        regression=regression,
        seed=seed,
        device=device,
        dtype=dtype,
        threads=threads,
        extra=extra,
        log=(lambda s: print(s, file=sys.stderr, flush=True)) if lines is None else lines.put,
    )


def _print_lines(lines) -> None:
    while not lines.empty():
        print(lines.get_nowait(), file=sys.stderr, flush=True)


def prepare_teacher(
    cfg, tc: TeacherConfig, use_ray: bool, res: _Resources, *, seed: int | None = None, out: str | None = None
) -> tuple[str, dict | None]:
    """The teacher to run (hub id, folder or URI), fine-tuned first when configured (with ``seed``,
    default the job's, into ``out``, default teacher/model); the fine-tune metrics."""
    seed = cfg.seed if seed is None else seed
    try:
        source = tc.model_source()
        src_dir = local_model_dir(source)
    except (ModuleNotFoundError, ModelSourceError) as exc:
        raise TeacherError(str(exc)) from None
    enabled = tc.finetune.enabled
    if enabled is None:
        enabled = not has_classification_head(src_dir)
    if not enabled:
        if not has_classification_head(src_dir):
            raise TeacherError(
                f"teacher {source!r} has no sequence-classification head; enable teacher.finetune "
                f"or name a fine-tuned teacher"
            )
        return source, None
    outputs = cfg.output_names
    if not outputs:
        raise TeacherError("fine-tuning the teacher needs the job's labels (the label set) or score (regression)")
    ft = tc.finetune
    train = _read_labelled(cfg, ft.train_split)
    if ft.dev_split in cfg.inputs:
        dev, dev_source = _read_labelled(cfg, ft.dev_split), f"examples/{ft.dev_split}"
    else:
        train, dev = holdout(train, ft.dev_fraction, cfg.seed)  # the job's seed: every teacher gets the same dev
        dev_source = f"{ft.dev_fraction:.0%} of examples/{ft.train_split} held out (seed {cfg.seed})"
    if len(train) == 0 or len(dev) == 0:
        raise TeacherError(f"fine-tuning needs labelled train and dev examples, got {len(train)} and {len(dev)}")
    data = json.dumps([train.text_a, train.text_b, train.target, dev.text_a, dev.text_b, dev.target])
    source_weights = weights_sha256(src_dir)
    key = cache_key(
        purpose="finetune",
        source_weights=source_weights,
        labels=list(outputs),
        regression=cfg.regression,
        seed=seed,
        settings=ft.model_dump(mode="json"),
        dtype=tc.dtype,
        data=hashlib.sha256(data.encode()).hexdigest(),
    )
    out = out or model_dir(cfg)
    done = finished_metrics(out, key)
    if done is not None:
        print(
            f"  fine-tuned teacher up to date in {out} ({_dev_line(done)}); not retrained",
            file=sys.stderr,
        )
        return out, {**done, "reused": True}
    extra = {"key": key, "dev_source": dev_source, "source_weights_sha256": source_weights}
    args = (
        src_dir,
        out,
        train,
        dev,
        list(outputs),
        cfg.regression,
        ft,
        seed,
        res.device,
        tc.dtype,
        res.threads,
        extra,
    )
    print(f"  fine-tuning {source} on {len(train):,} examples ({res.device})", file=sys.stderr)
    if use_ray:
        import ray
        from ray.util.queue import Queue

        from ..runtime.ray_env import ensure

        ensure()
        # ray's typed overloads of remote() stop short of _finetune_task's 13 parameters
        task = ray.remote(_finetune_task).options(  # type: ignore[arg-type]
            **Resources(cpus=res.threads, gpus=1 if res.gpus else 0, model=True).ray_options()
        )
        # the task's per-epoch lines reach this console through a queue (its own output stays in the
        # Ray logs); the queue's actor claims no CPU, so it never waits behind the task it serves
        lines = Queue(actor_options={"num_cpus": 0})
        ref = task.remote(*args, lines)  # type: ignore[call-arg]
        try:
            while not ray.wait([ref], timeout=1.0)[0]:
                _print_lines(lines)
            _print_lines(lines)
            metrics = ray.get(ref)
        finally:
            lines.shutdown()
    else:
        metrics = _finetune_task(*args)
    return out, {**metrics, "reused": False}


# ---------------------------------------------------------------------------------------------
# Ensemble members


def _cache_members(cfg, tc: TeacherConfig, names: list[str], res: _Resources, use_ray: bool) -> dict:
    """The ensemble's further teachers: each fine-tuned (when configured) with its own seed into
    teacher/members/<name>/, then its logits cached for every input in <cache>/members/<name>/."""
    out: dict[str, Any] = {}
    for member in tc.ensemble:
        mtc = tc.model_copy(
            update={
                "model": member.model or tc.model,
                "finetune": tc.finetune.model_copy(update={"enabled": member.finetune}),
                "mlm_top_k": None,
                "mlm_model": None,
            }
        )
        seed = cfg.seed if member.seed is None else member.seed
        print(f"  ensemble member {member.name}", file=sys.stderr)
        source, ft = prepare_teacher(
            cfg, mtc, use_ray, res, seed=seed, out=layout.member_model_dir(cfg.output_dir, member.name)
        )
        info = _TeacherInfo(source, finetuned=ft is not None, labels=cfg.output_names, regression=cfg.regression)
        if ft is not None:
            info.teacher["base_model"] = mtc.model or f"bundled all-MiniLM-L6-v2 ({mtc.model_source()})"
            info.teacher["finetune_seed"] = seed
        caches = {
            name: cache_input(
                cfg,
                mtc,
                name,
                info,
                [],
                [],
                res,
                use_ray,
                out_dir=layout.member_cache_dir(cfg.output_dir, name, member.name),
            )
            for name in names
        }
        out[member.name] = {"finetune": ft, "inputs": caches}
    return out
