"""Caching one input corpus: the pool of actors that compute and write whole shards (``ShardWorker``),
and the Stage that plans the shards, reuses finished ones and commits the manifest and card."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from .. import layout, storage
from ..cache import card
from ..cache.columns import hidden_column
from ..cache.manifest import cache_key, remove_manifest, write_manifest
from ..cache.shards import cache_footprint
from ..runtime.resources import Resources
from ..runtime.runner import Stage, Task, Work, make_task, run_stage
from . import minilm
from . import shards as sh
from .cache_manifest import _manifest
from .compute import InferenceSpec, ShardComputer
from .errors import TeacherError
from .planning import _Resources, _TeacherInfo, cache_dir
from .settings import TeacherConfig

# ---------------------------------------------------------------------------------------------
# Inference: a pool of actors, each computing and writing whole shards

GPU_SHARDS_PER_CALL = 8  # a GPU actor reads the next shard while computing one and writes several at once
CPU_SHARDS_PER_CALL = 1  # a CPU actor computes its shards one step after the other (compute_many)


class ShardWorker:
    """Actor: the teacher loaded once; each call computes and writes a few shards."""

    def __init__(self, spec: InferenceSpec, progress=None):
        self.computer = ShardComputer(spec, progress=progress)

    def __call__(self, tasks: list[Task]) -> Iterator[dict]:
        shard_tasks = [sh.ShardTask.from_dict(t.spec) for t in tasks]
        for task, result in zip(shard_tasks, self.computer.compute_many(shard_tasks)):  # (results in task order)
            record = {"path": task.out_path, "rows": result.rows, "bytes": result.bytes, "sha256": result.sha256}
            yield {**result.to_dict(), "rows_in": result.rows, "files": [record]}


_RESULT_FIELDS = {f.name for f in dataclasses.fields(sh.ShardResult)}


def _shard_result(d: dict) -> sh.ShardResult:
    return sh.ShardResult(**{k: v for k, v in d.items() if k in _RESULT_FIELDS})


def cache_input(
    cfg,
    tc: TeacherConfig,
    name: str,
    info: _TeacherInfo,
    layers: list[int],
    attentions: list[int],
    res: _Resources,
    use_ray: bool,
    out_dir: str | None = None,
) -> dict:
    """Cache the teacher's outputs on one input corpus (into ``out_dir``, default its cache folder);
    returns the summary."""
    in_dir = layout.corpus_dir(cfg.output_dir, name)
    out_dir = out_dir or cache_dir(cfg, name)
    files = sh.list_input_files(in_dir) if storage.exists(in_dir) else []
    if not files:
        command = "augment" if name.startswith("augmented/") else "ingest"
        raise TeacherError(f"{in_dir}: input {name!r} has no Parquet files; run `pipeline {command}` first")
    input_fp = cache_key(files=[f.sha256 for f in files])
    mlm = info.mlm if tc.mlm_top_k else None
    key = cache_key(
        teacher=info.weights,
        tokenizer=info.tokenizer["sha256"],
        max_length=tc.max_length,
        layers=layers,
        attentions=attentions,
        mantissa_bits=tc.mantissa_bits,
        dtype=tc.dtype,
        float16_encoding=tc.float16_encoding,
        labels=info.labels,
        input=input_fp,
        **({"minilm_layers": tc.minilm_layers} if tc.minilm_layers and layers else {}),
        shard_rows=tc.shard_rows,
        **({"mlm": mlm["weights_sha256"], "mlm_top_k": tc.mlm_top_k} if mlm else {}),
    )
    tasks = sh.plan_shards(files, tc.shard_rows, out_dir)
    used: dict[str, int] = {"actors": 0, "threads": 0}

    def plan() -> list[Task]:
        storage.makedirs(out_dir)
        remove_manifest(out_dir)  # the manifest is the cache's completion marker
        return [make_task(t.index, t.to_dict(), t.rows) for t in tasks]

    def work(todo: list[Task]) -> Work:
        # on Ray, actors x threads (one single-threaded actor per CPU by default); in this process, all its CPUs
        actors, threads = res.inference_layout(len(todo)) if use_ray else (1, res.threads)
        used.update(actors=actors, threads=threads)
        spec = InferenceSpec(
            model=info.source,
            weights_sha256=info.weights,
            cache_key=key,
            layers=tuple(layers),
            attentions=tuple(attentions),
            max_length=tc.max_length,
            token_budget=tc.token_budget,
            device=res.device,
            dtype=tc.dtype,
            threads=threads,
            mantissa_bits=tc.mantissa_bits,
            float16_encoding=tc.float16_encoding,
            row_group_bytes=tc.row_group_bytes,
            mlm_model=mlm["model"] if mlm else "",
            mlm_weights_sha256=mlm["weights_sha256"] if mlm else "",
            mlm_top_k=tc.mlm_top_k or 0,
        )
        resources = Resources(
            cpus=1 if res.gpus else threads,
            gpus=1 if res.gpus else 0,
            workers=actors,
            threads=threads,
            actors=True,
            model=True,
        )
        return Work(
            ShardWorker,
            {"spec": spec},
            resources,
            tasks_per_call=GPU_SHARDS_PER_CALL if res.gpus else CPU_SHARDS_PER_CALL,
            live_progress=True,
        )

    def commit(summary: dict, results: list[dict]) -> None:
        ordered = [dataclasses.replace(_shard_result(r), computed=not r.get("reused")) for r in results]
        manifest = _manifest(cfg, tc, name, in_dir, files, info, layers, attentions, key, ordered)
        if tc.minilm_layers and layers:  # where hidden states are cached: the projections, once
            manifest["minilm"] = {
                str(layer): minilm.write_layer(out_dir, info.path, layer, info.heads) for layer in tc.minilm_layers
            }
        schema, data_bytes, hidden_bytes = cache_footprint(out_dir, manifest, [hidden_column(l) for l in layers])
        with storage.atomic_output(storage.join(out_dir, card.CARD_NAME)) as out:
            out.write(card.render(manifest, schema, data_bytes).encode())
        write_manifest(out_dir, manifest)
        computed = [r for r in ordered if r.computed]
        hidden_values = manifest["tokens"] * info.hidden_size * len(layers)
        summary.update(
            {
                "input": name,
                "rows": manifest["rows"],
                "tokens": manifest["tokens"],
                "shards": len(ordered),
                "shards_computed": len(computed),
                "shards_reused": len(ordered) - len(computed),
                "actors": used["actors"],
                "threads_per_actor": used["threads"],
                "bytes": manifest["bytes"],
                "tokens_per_s": round(sum(r.tokens for r in computed) / max(summary["seconds"], 1e-9), 1),
                "bytes_per_hidden_value": round(hidden_bytes / hidden_values, 4) if hidden_values else None,
                "nonfinite_values": manifest["nonfinite_values"],
                "cache": out_dir,
            }
        )

    def lines(s: dict) -> list[tuple[str, object]]:
        return [
            ("rows", s["rows"]),
            ("real tokens", s["tokens"]),
            ("shards computed / reused", f"{s['shards_computed']} / {s['shards_reused']}"),
            ("actors x threads", f"{s['actors']} x {s['threads_per_actor']}" if s["actors"] else "-"),
            ("tokens / s (computed)", s["tokens_per_s"]),
            ("hidden layers", str(layers) if layers else "none"),
            ("bytes per hidden value", s["bytes_per_hidden_value"] if layers else "-"),
            ("cache", s["cache"]),
        ]

    # A shard is reused when its task marker has the cache key and the file still has the SHA-256
    # recorded when it was written (runner.py), so a damaged shard is computed again, never re-blessed.
    stage = Stage(f"teacher {name}", out_dir, key, plan, work, lines=lines, commit=commit)
    return run_stage(stage, "ray" if use_ray else "local")
