"""TinyBERT on Ray: thin adapters around the pure augmenter (``tinybert.py``).

- Without an MLM: CPU tasks; the GloVe matrix is put in the object store once and read zero-copy
  by every worker. With several workers the split's word types get their neighbours first, in
  tasks that share the work by a hash of the word (no two workers search for the same word):
  every range's types are sent to the bucket tasks straight from the tasks that found them,
  never through the driver.
- With an MLM: an actor pool, the model loaded once per actor (one GPU per actor when the
  cluster has GPUs).
"""

from __future__ import annotations

import dataclasses
import zlib
from functools import lru_cache

import pyarrow as pa

from ..config import GloveConfig, JobConfig, TinyBertConfig
from ..gc_pause import paused_gc
from ..runtime import runner
from ..runtime.ray_env import cluster_cpus, cluster_gpus
from ..runtime.resources import Resources
from ..runtime.runner import Task, Work
from .languages import DEFAULT, language
from .method import read_examples, variants_table, write_variants

CPU_BATCH_SIZE = 64  # examples per augment call (augment.tinybert.batch_size None)
GPU_BATCH_SIZE = 256  # with an MLM on a GPU: bigger MLM batches, fewer kernel launches per sentence
CPU_BATCH_TOKENS = 2048  # padded tokens per MLM batch on a CPU (augment.tinybert.batch_tokens None)
GPU_BATCH_TOKENS = 65536  # and on a GPU


# ---------------------------------------------------------------------------------------------
# Per-process caches: a worker process loads each thing once and keeps it for later tasks.


@lru_cache(maxsize=2)
def _glove(ref: tuple):
    from .glove import GloveVectors

    words, matrix = runner.get(ref)  # on Ray the matrix is a read-only, zero-copy view of the object store
    return GloveVectors(words, matrix)


@lru_cache(maxsize=2)
def _glove_only_augmenter(params, glove_ref: tuple, table_ref: tuple | None):
    from .tinybert import TinyBertAugmenter

    augmenter = TinyBertAugmenter(params, _glove(glove_ref), None)
    if table_ref is not None:  # (called inside glove_only_task, with the collector paused)
        for part in runner.get(table_ref):
            augmenter.prime_neighbours(part)
    return augmenter


def augment_rows(augmenter, block: pa.Table, seed: int, batch_size: int) -> pa.Table:
    """A range's examples augmented ``batch_size`` at a time (one augment call each), its rows built
    as one table."""
    ids, texts_a, texts_b = (block.column(c).to_pylist() for c in ("example_id", "text_a", "text_b"))
    results = []
    for i in range(0, len(ids), batch_size):
        results += augmenter.augment(
            ids[i : i + batch_size], texts_a[i : i + batch_size], texts_b[i : i + batch_size], seed
        )
    return variants_table(block, results, "tinybert", seed)


def glove_only_task(
    task: Task, params, glove_ref: tuple, seed: int, batch_size: int, table_ref: tuple | None, out_dir: str
) -> dict:
    # The collector paused for the whole task: in a worker's first task, loading GloVe, reading
    # the neighbour table and importing the modules otherwise cost about 0.4 s of full collections.
    with paused_gc():
        table = augment_rows(_glove_only_augmenter(params, glove_ref, table_ref), read_examples(task), seed, batch_size)
    return write_variants(out_dir, task, table)


# ---------------------------------------------------------------------------------------------
# The neighbour table: types found per range, searched per hash bucket

# Each range task returns one object per bucket: on a large cluster, buckets beyond this would
# multiply the objects (ranges x buckets) and split a search of about a second ever finer.
MAX_BUCKETS = 32


def _range_types(
    task_jsons: list[str], do_lower_case: bool, stopwords: str, language: str, buckets: int
) -> tuple[list[str], ...]:
    """The likely-eligible word types of some tasks' ranges, split into ``buckets`` by a stable hash."""
    from .words import WordSplitter

    splitter, found = WordSplitter(do_lower_case, stopwords, language), set()
    for text in task_jsons:
        table = read_examples(Task.from_json(text))
        found |= splitter.likely_eligible(table.column("text_a").to_pylist() + table.column("text_b").to_pylist())
    parts: list[list[str]] = [[] for _ in range(buckets)]
    for word in found:
        parts[zlib.crc32(word.encode()) % buckets].append(word)
    return tuple(parts)


def _bucket_neighbours(glove_ref: tuple, k: int, *parts: list[str]) -> dict[str, list[str]]:
    words = sorted(set().union(*parts))
    with paused_gc():
        return dict(zip(words, _glove(glove_ref).neighbours(words, k)))


def neighbour_table(todo: list[Task], params, glove_ref: tuple, slots: int) -> tuple | None:
    """The GloVe neighbours of the word types of the ranges ``todo``, computed once by ``slots``
    bucket tasks (at most ``MAX_BUCKETS``) and shared with every task through the object store (a
    box of their refs).

    Without it each worker's memo computes the common types again (about 0.1 ms per type on one
    core, about half the work of GloVe-only augmentation); with one slot there is nothing to share.
    A type the regular expression misses is computed by the task that meets it, so the output
    never depends on this table.
    """
    import ray

    if slots < 2 or not todo:
        return None
    from ..runtime.ray_env import ensure

    ensure()
    slots = min(slots, MAX_BUCKETS)
    find = ray.remote(_range_types).options(num_returns=slots, **Resources().ray_options())
    groups = [todo[i :: 2 * slots] for i in range(min(len(todo), 2 * slots))]  # scanning is quick: a few tasks
    found = [
        find.remote([t.as_json() for t in group], params.do_lower_case, params.stopwords, params.language, slots)
        for group in groups
    ]
    search = ray.remote(_bucket_neighbours).options(**Resources().ray_options())
    # with num_returns=slots each find.remote() gives a list of refs; ray types it as one ObjectRef
    parts = [search.remote(glove_ref, params.top_k, *[refs[j] for refs in found]) for j in range(slots)]  # type: ignore[index]
    ray.wait(parts, num_returns=len(parts), fetch_local=False)  # the tasks read them themselves
    return runner.RayRefs(parts)


# ---------------------------------------------------------------------------------------------
# With an MLM: an actor pool


def mlm_augmenter(params, mlm: str, device: str, dtype: str, num_threads: int | None, glove) -> tuple:
    """A TinyBERT augmenter with its MLM loaded on ``device`` (auto: a GPU when there is one) and
    ``batch_tokens`` None resolved for it; the augmenter and the device (the actors and
    ``pipeline.TinyBert`` share this, so both give the same candidates)."""
    import torch

    from ..assets import local_copy
    from .mlm import MlmCandidates
    from .tinybert import TinyBertAugmenter

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if params.batch_tokens is None:
        params = dataclasses.replace(params, batch_tokens=GPU_BATCH_TOKENS if device == "cuda" else CPU_BATCH_TOKENS)
    # a URI is copied once to this node (transformers loads local folders); a hub id as it is
    model = MlmCandidates.from_pretrained(local_copy(mlm), device=device, dtype=dtype, num_threads=num_threads)
    # GloVe searches where the MLM runs: on a GPU one product and top-k for thousands of words
    return TinyBertAugmenter(params, glove.on_device(device) if glove is not None else None, model), device


class MlmWorker:
    """Actor: the MLM (and GloVe) loaded once, then whole tasks augmented and written."""

    def __init__(
        self,
        params,
        mlm: str,
        device: str,
        dtype: str,
        num_threads: int,
        glove_ref: tuple | None,
        seed: int,
        batch_size: int | None,
        out_dir: str,
    ):
        from ..runtime.numerics import pin_numerics

        pin_numerics()
        glove = _glove(glove_ref) if glove_ref else None
        self.augmenter, device = mlm_augmenter(params, mlm, device, dtype, num_threads, glove)
        if batch_size is None:
            batch_size = GPU_BATCH_SIZE if device == "cuda" else CPU_BATCH_SIZE
        self.seed, self.batch_size, self.out_dir = seed, batch_size, out_dir

    def __call__(self, tasks: list[Task]):
        for task in tasks:
            table = augment_rows(self.augmenter, read_examples(task), self.seed, self.batch_size)
            yield write_variants(self.out_dir, task, table)


@dataclasses.dataclass(frozen=True)
class MlmActorLayout:
    actors: int
    threads: int  # torch threads per actor
    cpus_each: float  # Ray resource claims per actor
    gpus_each: float


def mlm_actor_layout(cpus: int, gpus: int, workers: int | None, actors_per_gpu: int) -> MlmActorLayout:
    """How many MLM actors, with what claims and torch threads.

    With GPUs: ``actors_per_gpu`` actors per GPU by default, each claiming that share of a GPU and
    one CPU, with up to 4 torch threads (the host's share of the CPUs); ``workers`` beyond that
    share the GPUs more finely, so that every actor can be placed. Without: one actor, or
    ``workers``, sharing the CPUs. Actors that claim every logical CPU starve the read tasks and
    the dataset hangs (Ray issue 44687), so CPU actors leave one CPU's worth of claims free;
    torch still uses ``threads``.
    """
    if gpus:
        actors = workers or gpus * actors_per_gpu
        per_gpu = max(actors_per_gpu, -(-actors // gpus))
        return MlmActorLayout(actors, max(1, min(4, cpus // actors)), 1, 1 / per_gpu)
    actors = workers or 1
    threads = max(1, cpus // actors)
    return MlmActorLayout(actors, threads, min(threads, max(0.25, (cpus - 1) / actors)), 0)


# ---------------------------------------------------------------------------------------------
# The method

# Settings that do not change the output (tested): left out of the stage key.
PERFORMANCE_ONLY = {"workers", "actors_per_gpu", "batch_size"}


def tinybert_params(t: TinyBertConfig, n_aug: int, text_format: str, language_code: str = DEFAULT):
    """The pure augmenter's parameters from the job's ``augment.tinybert`` settings (the stage and
    ``pipeline.TinyBert`` both build them here); stop words: the job's, else the language's preset."""
    from .tinybert import TinyBertParams

    # batch_tokens None is resolved per device by mlm_augmenter (GloVe-only mode does not use it)
    return TinyBertParams(
        n_aug=n_aug,
        p=t.p,
        top_k=t.top_k,
        mlm_input=t.mlm_input,
        max_seq_length=t.max_seq_length,
        batch_tokens=t.batch_tokens,  # type: ignore[arg-type]  # None until mlm_augmenter resolves it
        do_lower_case=language(language_code).lower_case if t.do_lower_case is None else t.do_lower_case,
        stopwords=t.stopwords or language(language_code).stopwords,
        text_format=text_format,
        language=language_code,
    )


def load_glove(g: GloveConfig):
    """The GloVe vectors of ``augment.tinybert.glove`` (the loaders read local files: a URI is
    copied once to this node)."""
    from ..assets import local_copy
    from .glove import GloveVectors, default_glove_path

    path = local_copy(g.path) if g.path else default_glove_path()
    return GloveVectors.load(path, g.format, g.rows, g.allow_pickle)


class TinyBert:
    name = "tinybert"

    def __init__(self, cfg: JobConfig, executor: str):
        self.cfg, self.executor = cfg, executor
        self._glove_ref: tuple | None = None

    def tries(self) -> int:
        return self.cfg.tinybert_n

    def settings(self) -> dict:
        params = self.params()
        settings = {
            **self.cfg.augment.tinybert.model_dump(mode="json", exclude=PERFORMANCE_ONLY),
            "do_lower_case": params.do_lower_case,  # the language's presets resolved
            "stopwords": params.stopwords,
            "text_format": self.cfg.augment.text_format,
        }
        if self.cfg.language != DEFAULT:  # (an English job's key stays what it was)
            settings["language"] = self.cfg.language
            if not self.uses_glove():
                settings.pop("glove")
        return settings

    def uses_glove(self) -> bool:
        """Word vectors take part: the bundled English GloVe for English, else only a file the job names."""
        return language(self.cfg.language).bundled_glove or self.cfg.augment.tinybert.glove.path is not None

    def extra_inputs(self, split: str) -> dict:
        return {}

    def summary(self) -> dict:
        summary = {"mlm": self.cfg.augment.tinybert.mlm or "none (GloVe neighbours for every eligible word)"}
        if self.cfg.language != DEFAULT:
            summary["language"] = self.cfg.language
        return summary

    def params(self):
        return tinybert_params(
            self.cfg.augment.tinybert, self.cfg.tinybert_n, self.cfg.augment.text_format, self.cfg.language
        )

    def glove_ref(self) -> tuple | None:
        """GloVe, loaded once per run and shared with every task (only when some task runs); None
        when the job's language takes no word vectors (``uses_glove``)."""
        if not self.uses_glove():
            return None
        if self._glove_ref is None:
            glove = load_glove(self.cfg.augment.tinybert.glove)
            self._glove_ref = runner.put((glove.words, glove.matrix), self.executor)
        return self._glove_ref

    def work(self, split: str, todo: list[Task], out_dir: str) -> Work:
        t, params, seed = self.cfg.augment.tinybert, self.params(), self.cfg.seed
        local = self.executor == "local"
        if t.mlm is None:
            glove_ref = self.glove_ref()
            assert glove_ref is not None  # the config refuses a job with neither an MLM nor word vectors
            slots = t.workers or (1 if local else cluster_cpus())
            table = None if local else neighbour_table(todo, params, glove_ref, slots)
            return Work(
                glove_only_task,
                {
                    "params": params,
                    "glove_ref": glove_ref,
                    "seed": seed,
                    "batch_size": t.batch_size or CPU_BATCH_SIZE,
                    "table_ref": table,
                    "out_dir": out_dir,
                },
                Resources(cpus=1, workers=t.workers),
            )
        gpus = 0 if local or t.device == "cpu" else cluster_gpus()
        layout = mlm_actor_layout(1 if local else cluster_cpus(), gpus, t.workers, t.actors_per_gpu)
        kwargs = {
            "params": params,
            "mlm": t.mlm,
            "device": t.device,
            "dtype": t.dtype,
            "num_threads": layout.threads,
            "glove_ref": self.glove_ref(),
            "seed": seed,
            "batch_size": t.batch_size,
            "out_dir": out_dir,
        }
        return Work(
            MlmWorker,
            kwargs,
            Resources(
                cpus=layout.cpus_each,
                gpus=layout.gpus_each,
                workers=layout.actors,
                threads=layout.threads,
                actors=True,
                model=True,
            ),
        )
