"""The teacher stage: optional fine-tuning, then cached teacher outputs for each input corpus.

Thin adapters around the pure parts:

- fine-tuning runs as one Ray task (one GPU when the cluster has GPUs) or in-process;
- inference runs on a Ray actor pool (``runtime/runner.py``): each actor loads the teacher
  once, each call computes and writes one whole shard (``compute.ShardComputer``), one GPU per
  actor when the cluster has GPUs, else ``cpu_threads`` torch threads per actor;
- the driver plans the shards, skips those an earlier run finished, and writes ``manifest.json``
  last. Shards are written by the actors, so on a multi-node cluster ``output_dir`` must be
  shared storage (a pyarrow.fs URI or a shared mount).
"""

from __future__ import annotations

import time
from typing import Any

from .. import storage
from ..cache import ensemble
from ..cache.layers import LayerError, resolve_attentions, resolve_layers
from ..progress import print_summary

# the parts of the stage live in planning, members, inference and cache_manifest; the names that
# other modules import from here (``X as X``) are re-exported
from .cache_manifest import _lineage as _lineage
from .errors import TeacherError
from .inference import CPU_SHARDS_PER_CALL as CPU_SHARDS_PER_CALL
from .inference import GPU_SHARDS_PER_CALL as GPU_SHARDS_PER_CALL
from .inference import ShardWorker as ShardWorker
from .inference import cache_input
from .members import _cache_members, _dev_line, prepare_teacher
from .planning import (
    _mlm_teacher,
    _Resources,
    _teacher_config,
    _TeacherInfo,
    cache_dir,
    default_inputs,
    model_dir,
    teacher_dir,
)
from .planning import cpu_inference_layout as cpu_inference_layout
from .settings import TeacherConfig


def run_teacher(
    cfg, teacher: TeacherConfig | None = None, *, inputs: list[str] | None = None, use_ray: bool = True
) -> dict:
    """Fine-tune (when configured) and cache the teacher's outputs for each input corpus.

    ``teacher`` overrides ``cfg.teacher``; ``inputs`` overrides ``teacher.inputs``;
    ``use_ray=False`` runs everything in this process (tests, debugging).
    """
    started = time.perf_counter()
    tc = _teacher_config(cfg, teacher)
    names = list(inputs or tc.inputs or default_inputs(cfg))
    if use_ray:
        from ..runtime import ray_env

        if not ray_env.started() and not ray_env.deferred():  # called as a library, not from the CLI
            ray_cfg = getattr(cfg, "ray", None)
            ray_env.defer(getattr(ray_cfg, "address", None), getattr(ray_cfg, "num_cpus", None), False)
    res = _Resources(tc, use_ray)
    source, ft_metrics = prepare_teacher(cfg, tc, use_ray, res)
    info = _TeacherInfo(source, finetuned=ft_metrics is not None, labels=cfg.output_names, regression=cfg.regression)
    if ft_metrics is not None:
        info.teacher["base_model"] = tc.model or f"bundled all-MiniLM-L6-v2 ({tc.model_source()})"
        info.teacher["finetune_seed"] = cfg.seed
    mlm_source = tc.mlm_source()  # set exactly when mlm_top_k is
    if mlm_source is not None:
        info.mlm = _mlm_teacher(mlm_source, info)
    positions = getattr(info.config, "max_position_embeddings", None)
    if positions and tc.max_length > positions:
        raise TeacherError(f"teacher.max_length {tc.max_length} exceeds the teacher's {positions} positions")
    try:
        layers = resolve_layers(tc.layers, info.layers, tc.student_layers)
        attentions = resolve_attentions(tc.attentions, info.layers)
    except LayerError as exc:
        raise TeacherError(f"teacher {info.source!r}: {exc}") from None
    if any(not 1 <= layer <= info.layers for layer in tc.minilm_layers):
        raise TeacherError(f"teacher.minilm_layers {tc.minilm_layers}: the teacher has layers 1..{info.layers}")
    layers = sorted({*layers, *(layer - 1 for layer in tc.minilm_layers)})  # MiniLM's inputs: hidden_<L-1>
    results: dict[str, Any] = {"finetune": ft_metrics, "inputs": {}}
    for name in names:
        states = tc.stores_states(name)
        results["inputs"][name] = cache_input(
            cfg, tc, name, info, layers if states else [], attentions if states else [], res, use_ray
        )
    if tc.ensemble:
        results["ensemble"] = _cache_members(cfg, tc, names, res, use_ray)
    for name in names:
        ensemble.write_ensemble(cache_dir(cfg, name), [m.name for m in tc.ensemble])
    rows: list[tuple[str, object]] = [
        ("teacher", info.source),
        ("weights sha256", info.weights[:16] + "…"),
        (
            "device",
            "-, everything reused"
            if not res.known
            else f"{res.device}, Ray"
            if use_ray
            else f"{res.device}, in-process",
        ),
        ("dtype", tc.dtype),
        ("layers", str(layers)),
        ("attentions", str(attentions) or "none"),
    ]
    if tc.ensemble:
        rows.append(("ensemble", ", ".join([ensemble.MAIN, *(m.name for m in tc.ensemble)])))
    if ft_metrics:
        rows += [
            (
                "fine-tuned",
                f"best epoch {ft_metrics['best_epoch']}, {_dev_line(ft_metrics)}"
                + (" (reused)" if ft_metrics.get("reused") else ""),
            ),
            ("model", model_dir(cfg)),
        ]
    rows += [("inputs", len(names)), ("seconds", time.perf_counter() - started)]
    print_summary("teacher", rows)
    storage.write_json(storage.join(teacher_dir(cfg), "_summary.json"), results)
    return results
