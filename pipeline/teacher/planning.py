"""What the teacher stage plans with: the paths of its inputs, model and caches, the cluster's CPUs and GPUs
and how inference spreads over them, and what the driver knows of the teacher (shape, labels, hashes)."""

from __future__ import annotations

from .. import layout
from .errors import TeacherError
from .model import cpu_threads_default, visible_cpus
from .model_files import local_model_dir, tokenizer_sha256, weights_sha256
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
