"""What every student run shares: the stage's context (config, device, dev / test splits, opened
caches), the run's teacher targets, and small helpers (run keys, cache paths, parameter counts)."""

from __future__ import annotations

import os

import numpy as np
import torch

from .. import assets, layout, storage
from ..cache import CacheError, TeacherCache, open_cache
from ..cache.ensemble import Ensemble, combine
from ..metrics import METRIC_NAMES, REGRESSION_METRICS
from ..runtime.digest import digest
from ..tasks import TASKS
from .errors import StudentStageError
from .evaluate import EvalSet, read_split
from .settings import RunConfig, StudentConfig


def student_dir(cfg) -> str:
    return layout.student_dir(cfg.output_dir)


def cache_dir(cfg, name: str) -> str:
    """The teacher cache of the input corpus ``name`` (checked to be a corpus name)."""
    layout.input_parts(name)
    return layout.cache_dir(cfg.output_dir, name)


def _device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise StudentStageError("student.device is cuda but no GPU is visible")
        return torch.device("cuda")
    return torch.device("cpu")


def _key(*parts) -> str:
    return digest(list(parts), length=16)


def _cache_fingerprint(cache: TeacherCache) -> str:
    return _key(cache.manifest["cache_key"], [s["sha256"] for s in cache.manifest["shards"]])


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def teacher_model_path(teacher: dict) -> str:
    """A local folder of a cache's teacher (its manifest's ``teacher`` entry). For a teacher named
    by URI the manifest records the teacher stage's copy on the node that ran it: used where it
    exists here, else the URI is copied to this node."""
    path, source = teacher["path"], teacher.get("model") or ""
    if storage.is_remote(source) and not os.path.isdir(path):
        return assets.local_copy(source)
    return assets.local_copy(path)


class _Context:
    """What every run of one stage shares: config, device, dev / test splits, opened caches."""

    def __init__(self, cfg, sc: StudentConfig, stream):
        self.cfg, self.sc, self.stream = cfg, sc, stream
        self.device = _device(sc.device)
        if sc.threads:
            torch.set_num_threads(sc.threads)
        self.regression = cfg.regression
        self.labels = list(cfg.output_names or [])
        # the task's headline metric (MCC for CoLA, F1 for MRPC / QQP, Pearson for STS-B), else
        # accuracy (Pearson for a regression job under a classification preset)
        kind = [m for m in METRIC_NAMES if (m in REGRESSION_METRICS) == self.regression]
        self.metric = next((m for m in TASKS[cfg.task].metrics if m in kind), kind[0])
        if not self.regression and len(self.labels) < 2:
            raise StudentStageError("the student stage needs the job's labels (at least two) or score (regression)")
        self.target = "score" if self.regression else "label_id"
        self.dev = self._split(sc.dev_split)
        self.test = self._split(sc.test_split) if sc.test_split else None
        # the split of the final scores: test, or dev where the test labels are hidden (GLUE)
        self.final, self.final_split = (self.test, sc.test_split) if self.test is not None else (self.dev, sc.dev_split)
        self._caches: dict[str, TeacherCache] = {}
        self._ensembles: dict[str, Ensemble] = {}

    def _split(self, split: str) -> EvalSet:
        path = storage.join(self.cfg.output_dir, "examples", split)
        if not storage.exists(path):
            raise StudentStageError(f"{path}: the {split!r} split has not been ingested (run `pipeline ingest`)")
        return read_split(path, self.regression)

    def cache(self, name: str, layers=None, attentions=None) -> TeacherCache:
        if name not in self._caches:
            self._caches[name] = open_cache(cache_dir(self.cfg, name))  # validates every shard (CacheError)
        cache = self._caches[name]
        cache.validate(layers=layers, attentions=attentions, checksums=False)
        if cache.labels != self.labels:
            raise CacheError(cache.path, f"labels {cache.labels} differ from the job's {self.labels}")
        return cache

    def ensemble(self, name: str) -> Ensemble:
        """The cache of ``name`` with the ensemble members its ensemble.json lists (validated once)."""
        if name not in self._ensembles:
            self._ensembles[name] = Ensemble(cache_dir(self.cfg, name), main=self.cache(name))
        return self._ensembles[name]


def _teacher_targets(ctx: _Context, run: RunConfig, collate):
    """The run's collate and the cache columns it reads for the teacher: the main teacher's logits,
    or, with ``run.teachers``, the ensemble's logits combined once per run and looked up by row."""
    if run.loss == "hard":
        return collate, []
    if not run.teachers:
        return collate, ["logits"]
    stacked = ctx.ensemble(run.data).logits(run.teachers)
    target = torch.from_numpy(combine(stacked, run.combine, run.weights, run.temperature))

    def with_ensemble(table):
        rows = torch.from_numpy(table.column("row").to_numpy().astype(np.int64))  # (a writable copy)
        return {**collate(table), "logits": target[rows]}

    return with_ensemble, []
