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

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from .. import layout, storage
from ..cache import card, ensemble
from ..cache.columns import MLM_IDS, MLM_LOGITS, attention_column, hidden_column
from ..cache.layers import LayerError, resolve_attentions, resolve_layers
from ..cache.manifest import build_manifest, cache_key, remove_manifest, write_manifest
from ..cache.shards import cache_footprint
from ..progress import print_summary
from ..runtime import markers
from ..runtime.resources import Resources
from ..runtime.runner import Stage, Task, Work, make_task, run_stage
from . import minilm
from . import shards as sh
from .compute import InferenceSpec, ShardComputer
from .errors import TeacherError
from .finetune import LabelledTexts, finetune_classifier, finished_metrics, holdout
from .model import cpu_threads_default, has_classification_head, visible_cpus
from .model_files import ModelSourceError, local_model_dir, tokenizer_sha256, weights_sha256
from .settings import TeacherConfig


def teacher_dir(cfg) -> str:
    return layout.teacher_dir(cfg.output_dir)


def model_dir(cfg) -> str:
    """Where the fine-tuned teacher goes."""
    return layout.teacher_model_dir(cfg.output_dir)


def cache_dir(cfg, input_name: str) -> str:
    layout.input_parts(input_name)  # checks the name
    return layout.cache_dir(cfg.output_dir, input_name)


def default_inputs(cfg) -> list[str]:
    """Every augmented corpus of the job, plus the ingested examples of its other splits."""
    aug = getattr(cfg, "augment", None)
    splits = list(aug.splits) if aug else []
    names = [f"augmented/{s}/{m}" for s in splits for m in aug.methods] if aug else []
    return names + [f"examples/{s}" for s in cfg.inputs if s not in splits]


def _teacher_config(cfg, teacher: TeacherConfig | None) -> TeacherConfig:
    tc = teacher if teacher is not None else getattr(cfg, "teacher", None)
    return tc if tc is not None else TeacherConfig()


# ---------------------------------------------------------------------------------------------
# Resources


class _Resources:
    """The cluster's CPUs and GPUs and what the stage makes of them, looked up when first needed:
    a stage whose model and shards are all reused never asks (and never starts Ray for it)."""

    def __init__(self, tc: TeacherConfig, use_ray: bool):
        self._tc, self._use_ray = tc, use_ray
        self.known = False

    def _look_up(self) -> None:
        tc = self._tc
        if self._use_ray:
            from ..runtime.ray_env import cluster_cpus, cluster_gpus

            cpus, gpus = cluster_cpus(), cluster_gpus()
        else:
            import torch

            cpus, gpus = visible_cpus(), torch.cuda.device_count()
        self._gpus = gpus if tc.device != "cpu" else 0
        if tc.device == "cuda" and not self._gpus:
            raise TeacherError("teacher.device is 'cuda' but the cluster has no GPU")
        self._cpus = cpus
        if self._gpus:
            self._workers = tc.workers or self._gpus
            self._threads = tc.cpu_threads or max(1, min(8, cpus // max(1, self._workers)))
        else:  # fine-tuning: one task with all CPUs (up to 8)
            self._threads = tc.cpu_threads or cpu_threads_default(cpus)
            self._workers = tc.workers or max(1, cpus // self._threads)
        self.known = True

    def _get(self, name: str) -> int:
        if not self.known:
            self._look_up()
        return getattr(self, name)

    @property
    def cpus(self) -> int:
        return self._get("_cpus")

    @property
    def gpus(self) -> int:
        return self._get("_gpus")

    @property
    def threads(self) -> int:
        return self._get("_threads")

    @property
    def workers(self) -> int:
        return self._get("_workers")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"

    def inference_layout(self, shards: int) -> tuple[int, int]:
        """(actors, torch threads per actor) that compute ``shards`` shards."""
        if self.gpus:
            return max(1, min(self.workers, shards)), self.threads
        return cpu_inference_layout(self.cpus, shards, self._tc.workers, self._tc.cpu_threads)


def cpu_inference_layout(
    cpus: int, shards: int, workers: int | None = None, threads: int | None = None
) -> tuple[int, int]:
    """(actors, torch threads per actor) for CPU inference of ``shards`` shards on ``cpus`` CPUs.

    By default one single-threaded actor per CPU: processes that each run the model on one
    thread get as much or more through than one process with many threads, and an actor's reading
    and writing then holds up only its own core (docs/performance.md). When there are fewer shards
    than CPUs, the CPUs are spread over the shards' actors instead (up to 8 threads each).
    ``workers`` / ``threads`` fix either number.
    """
    shards = max(1, shards)
    if threads:
        return max(1, min(workers or max(1, cpus // threads), shards)), threads
    actors = max(1, min(workers or cpus, shards))
    return actors, max(1, min(8, cpus // actors))


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


# ---------------------------------------------------------------------------------------------
# Driver


class _TeacherInfo:
    """What the driver knows of the teacher: shape, labels, hashes (the manifest's teacher/tokenizer)."""

    def __init__(self, source: str, finetuned: bool, labels: list[str] | None, regression: bool = False):
        from transformers import AutoConfig, AutoTokenizer

        model_path = local_model_dir(source)
        config = AutoConfig.from_pretrained(model_path)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if not getattr(tokenizer, "is_fast", False):
            raise TeacherError(f"{model_path}: the teacher needs a fast tokenizer (tokenizer.json)")
        self.path, self.source, self.config = model_path, source, config
        self.layers, self.hidden_size = config.num_hidden_layers, config.hidden_size
        self.heads, self.num_labels = config.num_attention_heads, config.num_labels
        self.weights = weights_sha256(model_path)
        self.mlm: dict | None = None  # the masked-LM teacher of mlm_top_k, when asked for
        self.token_types = "token_type_ids" in tokenizer.model_input_names
        model_labels = [config.id2label[i] for i in range(config.num_labels)]
        if labels is not None and len(labels) != config.num_labels:
            raise TeacherError(
                f"the teacher predicts {config.num_labels} labels {model_labels}; the job has {len(labels)}: {labels}"
            )
        self.labels = list(labels) if labels is not None else model_labels
        self.problem_type = "regression" if config.problem_type == "regression" else "single_label_classification"
        if regression and (config.num_labels != 1 or config.problem_type != "regression"):
            raise TeacherError(
                f"the job is a regression task (score) but the teacher is a {config.num_labels}-label classifier "
                f"(problem_type {config.problem_type!r}); fine-tune it (teacher.finetune) or name a regression teacher"
            )
        if not regression and config.problem_type == "regression":
            raise TeacherError("the teacher is a regression model (one score); the job names a label set, not score")
        self.teacher = {
            "model": source,
            "path": model_path,
            "weights_sha256": self.weights,
            "finetuned": finetuned,
            "architecture": (config.architectures or [type(config).__name__])[0],
            "model_type": config.model_type,
            "num_layers": self.layers,
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.heads,
            "vocab_size": config.vocab_size,
            "id2label": {str(i): config.id2label[i] for i in range(config.num_labels)},
            "problem_type": self.problem_type,
        }
        self.tokenizer = {
            "class": type(tokenizer).__name__,
            "name_or_path": source,
            "fast": True,
            "sha256": tokenizer_sha256(model_path),
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "cls_token_id": tokenizer.cls_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "padding": "none stored",
            "token_type_ids": self.token_types,
        }


def _columns_doc(info: _TeacherInfo, layers, attentions) -> dict[str, str]:
    cols = {
        "row": "int64: position in the input corpus",
        "num_tokens": "int32: real tokens",
        "input_ids": "list<int32>: token ids, no padding",
    }
    if info.token_types:
        cols["token_type_ids"] = "list<int8>: segment ids"
    cols["logits"] = (
        "fixed_size_list<float32>[1]: the predicted score (a regression head)"
        if info.problem_type == "regression"
        else f"fixed_size_list<float32>[{len(info.labels)}]: raw logits, no temperature"
    )
    for l in layers:
        cols[hidden_column(l)] = f"list<float16>: num_tokens x {info.hidden_size}, row-major"
    for l in attentions:
        cols[attention_column(l)] = f"list<float16>: {info.heads} x num_tokens x num_tokens attention probabilities"
    return cols


def _mlm_teacher(source: str, info: _TeacherInfo) -> dict:
    """The masked-LM teacher of mlm_top_k: checked to have its head and the teacher's vocabulary."""
    from transformers import AutoConfig, AutoTokenizer

    path = local_model_dir(source)
    config = AutoConfig.from_pretrained(path)
    archs = config.architectures or []
    if not any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
        raise TeacherError(
            f"mlm_top_k: {source!r} ({archs[0] if archs else config.model_type}) has no masked-LM "
            f"head; set teacher.mlm_model to a masked-LM checkpoint with the teacher's vocabulary"
        )
    try:
        same = AutoTokenizer.from_pretrained(path).get_vocab() == AutoTokenizer.from_pretrained(info.path).get_vocab()
    except (OSError, ValueError):
        same = config.vocab_size == info.config.vocab_size  # no tokenizer files: the vocabulary sizes must agree
    if not same:
        raise TeacherError(
            f"mlm_top_k: the masked-LM teacher {source!r} and the teacher {info.source!r} have different vocabularies"
        )
    return {
        "model": source,
        "path": path,
        "weights_sha256": weights_sha256(path),
        "architecture": archs[0],
        "vocab_size": config.vocab_size,
    }


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


def _manifest(
    cfg,
    tc: TeacherConfig,
    name: str,
    in_dir: str,
    files,
    info: _TeacherInfo,
    layers: list[int],
    attentions: list[int],
    key: str,
    results: list[sh.ShardResult],
) -> dict:
    shards = [
        {
            "file": r.name,
            "first_row": r.first_row,
            "rows": r.rows,
            "tokens": r.tokens,
            "bytes": r.bytes,
            "sha256": r.sha256,
        }
        for r in results
    ]
    float16_paths = [f"{c}.list.element" for c in [*map(hidden_column, layers), *map(attention_column, attentions)]]
    bss = (
        ["logits.list.element"]
        + ([f"{MLM_LOGITS}.list.element"] if tc.mlm_top_k else [])
        + (float16_paths if tc.float16_encoding == "byte_stream_split" else [])
    )
    columns = _columns_doc(info, layers, attentions)
    if tc.mlm_top_k:
        columns[MLM_IDS] = f"list<int32>: num_tokens x {tc.mlm_top_k} token ids of the highest masked-LM logits"
        columns[MLM_LOGITS] = f"list<float32>: num_tokens x {tc.mlm_top_k} raw masked-LM logits, descending"
    return build_manifest(
        input_name=name,
        input_dir=in_dir,
        input_files=files,
        teacher=info.teacher,
        tokenizer=info.tokenizer,
        max_length=tc.max_length,
        labels=info.labels,
        layers=layers,
        attentions=attentions,
        hidden_size=info.hidden_size,
        num_heads=info.heads,
        columns=columns,
        dtypes={
            "logits": "float32",
            "hidden": "float16",
            "attention": "float16",
            "input_ids": "int32",
            "hidden_mantissa_bits": tc.mantissa_bits,
            "compute_dtype": tc.dtype,
        },
        encoding={
            "compression": "zstd",
            "byte_stream_split": bss,
            "float16_encoding": tc.float16_encoding,
            "row_group_bytes": tc.row_group_bytes,
            "page_checksums": True,
        },
        config_hash=cfg.config_hash(),
        key=key,
        shard_rows=tc.shard_rows,
        shards=shards,
        seed=cfg.seed,
        extra={
            "student_layers": tc.student_layers if tc.layers == "tinybert" else None,
            "mlm_top_k": tc.mlm_top_k or 0,
            "mlm_teacher": info.mlm if tc.mlm_top_k else None,
            "nonfinite_values": sum(r.nonfinite for r in results),
            "lineage": _lineage(cfg, name),
        },
    )


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


def _lineage(cfg, name: str) -> dict:
    """Where a cached corpus comes from: the job, the source file and, for an augmented corpus, the
    augmentation settings that made it and their hash (written into the manifest and the card)."""
    parts = name.split("/")
    spec = cfg.inputs.get(parts[1]) if len(parts) > 1 else None
    out: dict[str, Any] = {
        "job": {"name": cfg.name, "task": cfg.task, "seed": cfg.seed, "config_hash": cfg.config_hash()},
        "source": {
            "split": parts[1] if len(parts) > 1 else None,
            "path": spec.path if spec else None,
            "license": spec.license if spec else None,
        },
    }
    if parts[0] == "augmented" and len(parts) == 3:
        out["augmentation"] = _augmentation(layout.corpus_dir(cfg.output_dir, name), parts[2])
    return out


def _augmentation(corpus: str, method: str) -> dict:
    """An augmented corpus's method, settings and their hash, as its augment stage recorded them in
    the corpus's summary (read from disk: the teacher does not make the augmentation methods). A
    corpus with no such record (unfinished, or written before 0.2) is described by its method alone."""
    summary = storage.join(corpus, markers.SUMMARY)
    recorded: Any = None
    if storage.exists(storage.join(corpus, markers.MARKER)) and storage.exists(summary):
        recorded = storage.read_json(summary)
    if isinstance(recorded, dict) and isinstance(recorded.get("settings"), dict) and recorded.get("settings_hash"):
        return {
            "method": recorded.get("method", method),
            "settings": recorded["settings"],
            "hash": recorded["settings_hash"],
        }
    return {"method": method}


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
