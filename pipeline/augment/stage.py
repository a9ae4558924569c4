"""The augment stage: thin Ray Data adapters around the pure augmenters.

- Tang: CPU tasks tag the texts with spaCy (the tagger loaded once per worker process), the
  driver counts the train split's (tag, word) pairs with Arrow from the tagged blocks, and the
  table is shared with every augmenting task through the object store.
- TinyBERT without an MLM: CPU tasks; the GloVe matrix is put in the object store once and read
  zero-copy by every worker.
- TinyBERT with an MLM: an actor pool, the model loaded once per actor (one GPU per actor when
  the cluster has GPUs).

A split is planned into blocks (``blocks.py``: at least two per worker, at most ``block_rows``
examples each) and every task reads its own block's rows from the ingested Parquet files.
Rows come back in input order and are written by the driver into fixed-size shards, so the files
are byte-identical whatever the number of blocks or workers. A (split, method) output is finished
when its ``_complete.json`` is written (last); a re-run with the same examples and settings skips
it and redoes an unfinished one from scratch (``completion.py``).
"""

from __future__ import annotations

import dataclasses
import time
import functools
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import completion, storage
from . import blocks
from ..config import JobConfig
from ..gc_pause import paused_gc
from ..ingest.stage import examples_dir
from ..progress import Progress, print_summary
from ..ray_env import cluster_cpus, cluster_gpus
from ..seeding import stable_hexes
from .pos import UNIGRAM_SCHEMA

AUGMENTED_SCHEMA = pa.schema([
    ("example_id", pa.string()),
    ("parent_id", pa.string()),
    ("method", pa.string()),
    ("variant", pa.int32()),  # 0 = the original
    ("text_a", pa.string()),
    ("text_b", pa.string()),
    ("label", pa.string()),
    ("label_id", pa.int32()),
    ("seed", pa.int64()),
])
_TAGGED = ["words_a", "tags_a", "words_b", "tags_b"]
# Columns Parquet dictionary-encodes: not the ids and the first texts, nearly all distinct (the
# dictionary is tried and dropped; measured on 10,233 sentences' output, 204k-206k rows: with
# every column encoded so, the files took 15-20% longer to write and were 7-9% larger)
_DICTIONARY_COLUMNS = [n for n in AUGMENTED_SCHEMA.names if n not in ("example_id", "text_a")]


def augmented_dir(cfg: JobConfig, split: str, method: str) -> str:
    return storage.join(cfg.output_dir, "augmented", split, method)


def variants_table(batch: pa.Table, results: list[list[tuple[str, str | None]]], method: str, seed: int) -> pa.Table:
    """Pure: per-example augmenter output → rows of the augmented corpus (original first).

    A variant's ``example_id`` is ``stable_hex(parent, method, variant)``; the parent's columns
    are repeated with one Arrow ``take`` each (this runs for every output row: building the
    columns as Python lists, one hash from scratch per row, cost about as much as augmenting)."""
    counts = np.fromiter((len(rows) for rows in results), dtype=np.int64, count=len(results))
    if len(counts) != batch.num_rows:
        raise ValueError(f"{len(counts)} results for {batch.num_rows} examples")
    total = int(counts.sum())
    parent_index = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    variant = np.arange(total, dtype=np.int32) - starts[parent_index].astype(np.int32)
    ids: list[str] = []
    for parent, n in zip(batch.column("example_id").to_pylist(), counts.tolist()):
        if n:
            ids.append(parent)
            ids += stable_hexes((parent, method), range(1, n))
    take = pa.array(parent_index)
    return pa.table({
        "example_id": pa.array(ids, pa.string()),
        "parent_id": batch.column("example_id").take(take),
        "method": pa.array([method] * total, pa.string()),
        "variant": pa.array(variant, pa.int32()),
        "text_a": pa.array([a for rows in results for a, _ in rows], pa.string()),
        "text_b": pa.array([b for rows in results for _, b in rows], pa.string()),
        "label": batch.column("label").take(take),
        "label_id": batch.column("label_id").take(take),
        "seed": pa.array(np.full(total, seed, dtype=np.int64)),
    }, schema=AUGMENTED_SCHEMA)


# ---------------------------------------------------------------------------------------------
# Per-process caches: a Ray worker process loads each model once and keeps it for later tasks.

@lru_cache(maxsize=2)
def _tagger(model: str, attr: str, batch_size: int):
    from .pos import PosTagger

    return PosTagger(model, attr, batch_size)


@lru_cache(maxsize=2)
def _unigram(ref_box: tuple):
    import ray

    from .pos import PosUnigram

    return PosUnigram.from_arrow(ray.get(ref_box[0]))


@lru_cache(maxsize=2)
def _glove(ref_box: tuple):
    import ray

    from .glove import GloveVectors

    words, matrix = ray.get(ref_box[0])  # the matrix is a read-only, zero-copy view of the object store
    return GloveVectors(words, matrix)


@lru_cache(maxsize=2)
def _tinybert_glove_only(params, ref_box: tuple, table_box: tuple | None = None):
    import ray

    from .tinybert import TinyBertAugmenter

    augmenter = TinyBertAugmenter(params, _glove(ref_box), None)
    if table_box is not None:  # (called inside _tinybert_block, with the collector paused)
        for part in ray.get(list(table_box)):
            augmenter.prime_neighbours(part)
    return augmenter


def _neighbour_chunk(ref_box: tuple, words: list[str], k: int) -> dict[str, list[str]]:
    with paused_gc():  # see _tinybert_block
        return dict(zip(words, _glove(ref_box).neighbours(words, k)))


class _Ref(tuple):
    """An ObjectRef in a hashable box: Ray passes it through untouched, and it keys the caches."""


# ---------------------------------------------------------------------------------------------
# Ray Data UDFs

def _tag_batch(batch: pa.Table, model: str, attr: str, batch_size: int) -> pa.Table:
    tagger = _tagger(model, attr, batch_size)
    tagged_a = tagger.tag(batch.column("text_a").to_pylist())
    texts_b = batch.column("text_b").to_pylist()
    present = [t for t in texts_b if t is not None]
    tagged_b = iter(tagger.tag(present)) if present else iter(())
    tagged_b = [next(tagged_b) if t is not None else None for t in texts_b]
    lists = pa.list_(pa.string())
    return batch.append_column("words_a", pa.array([w for w, _ in tagged_a], lists)) \
        .append_column("tags_a", pa.array([t for _, t in tagged_a], lists)) \
        .append_column("words_b", pa.array([x[0] if x else None for x in tagged_b], lists)) \
        .append_column("tags_b", pa.array([x[1] if x else None for x in tagged_b], lists))


def unigram_counts(tagged: list[pa.Table]) -> pa.Table:
    """Pure: the (tag, word) counts of tagged tables (``words_a``/``tags_a``, ``words_b``/``tags_b``
    list columns), as :meth:`PosUnigram.to_arrow` gives them: columns tag, word, count, sorted.
    Counted by Arrow in the driver from the tagged blocks (as Ray tasks, the count cost a second
    pass with its scheduling gaps)."""
    pairs = [pa.table({"tag": pc.list_flatten(t.column(tags)), "word": pc.list_flatten(t.column(words))})
             for t in tagged for words, tags in (("words_a", "tags_a"), ("words_b", "tags_b"))]
    if not pairs:
        pairs = [pa.table({"tag": pa.array([], pa.string()), "word": pa.array([], pa.string())})]
    counted = pa.concat_tables(pairs).group_by(["tag", "word"], use_threads=False).aggregate([([], "count_all")])
    counted = counted.rename_columns(UNIGRAM_SCHEMA.names).cast(UNIGRAM_SCHEMA)
    return counted.sort_by([("tag", "ascending"), ("word", "ascending")])


def _tang_batch(batch: pa.Table, params, unigram_ref: _Ref, seed: int) -> pa.Table:
    from .tang import TangAugmenter

    augmenter = TangAugmenter(params, _unigram(unigram_ref))
    col = {name: batch.column(name).to_pylist() for name in ("example_id", "text_a", "text_b", *_TAGGED)}
    tagged_a = list(zip(col["words_a"], col["tags_a"]))
    tagged_b = [None if w is None else (w, t) for w, t in zip(col["words_b"], col["tags_b"])]
    results = augmenter.augment_tagged(col["example_id"], tagged_a, tagged_b, col["text_a"], col["text_b"], seed)
    return variants_table(batch, results, "tang", seed)


def _tinybert_rows(augmenter, block: pa.Table, seed: int, batch_size: int) -> pa.Table:
    """A block's examples augmented ``batch_size`` at a time (one augment call each), and its rows built
    as one table: a block's output in one piece per column goes into the object store about 2.5x
    as fast as the same rows in one chunk per batch (measured on 100,000 rows: 13 ms against 33)."""
    ids, texts_a, texts_b = (block.column(c).to_pylist() for c in ("example_id", "text_a", "text_b"))
    results = []
    for i in range(0, len(ids), batch_size):
        results += augmenter.augment(ids[i : i + batch_size], texts_a[i : i + batch_size],
                                     texts_b[i : i + batch_size], seed)
    return variants_table(block, results, "tinybert", seed)


def _tag_block(item: pa.Table, model: str, attr: str, batch_size: int) -> pa.Table:
    # the whole block in one spaCy pipe (which batches by batch_size itself): one pipe call per
    # 256 examples took 13% longer (measured on 5,116 sentences)
    return _tag_batch(_read_block(item), model, attr, batch_size)


def _tinybert_block(item: pa.Table, params, glove_ref: _Ref, seed: int, batch_size: int,
                    table_ref: _Ref | None = None) -> pa.Table:
    # The collector paused for the whole block: in a worker's first block, loading GloVe,
    # unpickling the neighbour table (tens of thousands of lists) and importing the modules
    # otherwise cost about 0.4 s of full collections (measured).
    with paused_gc():
        return _tinybert_rows(_tinybert_glove_only(params, glove_ref, table_ref), _read_block(item), seed, batch_size)


CPU_BATCH_SIZE = 64  # examples per augment call (augment.tinybert.batch_size None)
GPU_BATCH_SIZE = 256  # with an MLM on a GPU: bigger MLM batches, fewer kernel launches per sentence
CPU_BATCH_TOKENS = 2048  # padded tokens per MLM batch on a CPU (augment.tinybert.batch_tokens None)
GPU_BATCH_TOKENS = 65536  # and on a GPU


class TinyBertMlmWorker:
    """Actor: the MLM (and GloVe) loaded once, then batches of examples augmented."""

    def __init__(self, params, mlm: str, device: str, dtype: str, num_threads: int, glove_ref: _Ref | None, seed: int,
                 batch_size: int | None):
        import torch

        from .mlm import MlmCandidates
        from .tinybert import TinyBertAugmenter

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if params.batch_tokens is None:
            params = dataclasses.replace(params, batch_tokens=GPU_BATCH_TOKENS if device == "cuda" else CPU_BATCH_TOKENS)
        if batch_size is None:
            batch_size = GPU_BATCH_SIZE if device == "cuda" else CPU_BATCH_SIZE
        model = MlmCandidates.from_pretrained(mlm, device=device, dtype=dtype, num_threads=num_threads)
        # GloVe searches where the MLM runs: on a GPU one product and top-k for thousands of words
        glove = _glove(glove_ref).on_device(device) if glove_ref else None
        self.augmenter = TinyBertAugmenter(params, glove, model)
        self.seed, self.batch_size = seed, batch_size

    def __call__(self, item: pa.Table) -> pa.Table:
        """One planned block of examples, augmented ``batch_size`` examples at a time."""
        return _tinybert_rows(self.augmenter, _read_block(item), self.seed, self.batch_size)


# ---------------------------------------------------------------------------------------------
# Driver

class AugmentError(RuntimeError):
    pass


def _example_files(cfg: JobConfig, split: str) -> list[tuple[str, int]]:
    """The split's ingested Parquet files with their row counts (from the footers)."""
    path = examples_dir(cfg, split)
    if not storage.exists(path):
        raise AugmentError(f"{path}: no ingested examples for split {split!r}; run `pipeline ingest` first")
    files = storage.parquet_row_counts(path)
    if not files:
        raise AugmentError(f"{path}: no Parquet files; run `pipeline ingest` first")
    return files


def _read_examples(cfg: JobConfig, files: list[tuple[str, int]], num_blocks: int | None, slots: int):
    """A split's planned blocks (``files`` from :func:`_example_files`, for ``slots`` workers) as a
    dataset of work items, one row each: the task (or actor call) that takes an item reads its rows
    itself (``_read_block``)."""
    import json

    import ray.data

    count = num_blocks or blocks.plan_blocks(sum(n for _, n in files), slots, cfg.augment.block_rows)
    plan = blocks.plan_reads(files, count)
    return ray.data.from_items([{"pieces": json.dumps(pieces)} for pieces in plan], override_num_blocks=len(plan))


def _read_block(item: pa.Table) -> pa.Table:
    """The examples of the one work item in ``item``."""
    import json

    (pieces,) = item.column("pieces").to_pylist()
    return storage.read_row_pieces([tuple(p) for p in json.loads(pieces)])


def _tang_params(cfg: JobConfig):
    from .tang import TangParams

    t = cfg.augment.tang
    return TangParams(n_iter=cfg.tang_n_iter, p_mask=t.p_mask, p_pos=t.p_pos, p_ng=t.p_ng,
                      max_ngram=t.max_ngram, mask_token=t.mask_token)


def _tinybert_params(cfg: JobConfig):
    from .tinybert import TinyBertParams

    t = cfg.augment.tinybert
    # batch_tokens None is resolved per device by the MLM actor (GloVe-only mode does not use it)
    return TinyBertParams(n_aug=cfg.tinybert_n, p=t.p, top_k=t.top_k, mlm_input=t.mlm_input,
                          max_seq_length=t.max_seq_length, batch_tokens=t.batch_tokens, do_lower_case=t.do_lower_case)


def _slots(workers: int | None) -> int:
    """CPU tasks that run at once: ``workers``, else one per CPU of the cluster."""
    return workers or cluster_cpus()


def _tasks(workers: int | None):
    """CPU tasks, at most ``workers`` at a time (None: as many as the cluster's CPUs allow)."""
    import ray.data

    return ray.data.TaskPoolStrategy(size=workers) if workers else None


class _TangPlan:
    """Tags each split once; the train split's counts give the unigram table."""

    def __init__(self, cfg: JobConfig, num_blocks: int | None):
        self.cfg, self.num_blocks, self._tagged = cfg, num_blocks, {}

    def tagged(self, split: str):
        if split not in self._tagged:
            t = self.cfg.augment.tang
            ds = _read_examples(self.cfg, _example_files(self.cfg, split), self.num_blocks,
                                _slots(t.workers)).map_batches(
                _tag_block, fn_kwargs={"model": t.spacy_model, "attr": t.tag_attr, "batch_size": t.batch_size},
                batch_size=1, batch_format="pyarrow", compute=_tasks(t.workers))
            self._tagged[split] = ds.materialize()
        return self._tagged[split]

    @functools.cached_property
    def unigram_ref(self) -> _Ref:
        """The train split's unigram-by-tag counts, counted once and put in the object store."""
        import ray

        blocks = self.tagged("train").iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0)
        return _Ref((ray.put(unigram_counts(list(blocks))),))


def _glove_ref(cfg: JobConfig) -> _Ref:
    import ray

    from .glove import GloveVectors, default_glove_path

    g = cfg.augment.tinybert.glove
    glove = GloveVectors.load(g.path or default_glove_path(), g.format, g.rows)
    return _Ref((ray.put((glove.words, glove.matrix)),))


_TYPE_PARTS = 4  # the driver scans a split for word types in parts and sends each part's new types at once


def _neighbour_table(files: list[tuple[str, int]], params, glove_ref: _Ref, slots: int) -> _Ref | None:
    """GloVe neighbours of the word types of a split (its ``files``), computed once by parallel
    tasks (``slots`` per part of the split, the first ones running while the driver scans the
    next parts; Ray hands them to whichever worker is free) and shared with every block through the
    object store.

    Without it each worker's memo computes the common types again (the search costs about 0.1 ms
    per type on one core, about half the work of GloVe-only augmentation); with one slot there is
    nothing to share, and the worker's memo does the same work without the extra pass. The driver
    finds the types with a regular expression (:meth:`WordSplitter.likely_eligible`); a type it
    misses is computed by the block that meets it, so the output never depends on this table.
    """
    import itertools

    import ray

    from .words import WordSplitter

    if slots < 2:
        return None

    columns = ["text_a", "text_b"]
    table = storage.read_row_pieces([(path, 0, n) for path, n in files], columns)
    texts = [t for t in itertools.chain.from_iterable(table.column(c).to_pylist() for c in columns) if t]
    splitter, seen, pending = WordSplitter(params.do_lower_case), set(), []
    task = ray.remote(_neighbour_chunk).options(num_cpus=1)
    step = max(1, -(-len(texts) // _TYPE_PARTS))
    for start in range(0, len(texts), step):  # the first tasks start while later parts are scanned
        new = sorted(splitter.likely_eligible(texts[start : start + step]) - seen)
        seen.update(new)
        chunks = (new[i::slots] for i in range(slots))
        pending += [task.remote(glove_ref, chunk, params.top_k) for chunk in chunks if chunk]
    if not pending:
        return None
    # the blocks read the parts themselves: the driver neither unpickles nor merges nor puts them
    ray.wait(pending, num_returns=len(pending), fetch_local=False)
    return _Ref(pending)


def _augment_split(cfg: JobConfig, split: str, method: str, tang: _TangPlan | None, glove_ref: _Ref | None,
                   num_blocks: int | None):
    import ray.data

    seed = cfg.seed
    if method == "tang":
        t = cfg.augment.tang
        ds = tang.tagged(split).map_batches(
            _tang_batch, fn_kwargs={"params": _tang_params(cfg), "unigram_ref": tang.unigram_ref, "seed": seed},
            batch_size=t.batch_size, batch_format="pyarrow",
            compute=_tasks(t.workers))
        return ds
    t = cfg.augment.tinybert
    params = _tinybert_params(cfg)
    if t.mlm is None:
        slots, files = _slots(t.workers), _example_files(cfg, split)
        ds = _read_examples(cfg, files, num_blocks, slots)
        table_ref = _neighbour_table(files, params, glove_ref, slots)
        return ds.map_batches(_tinybert_block, fn_kwargs={"params": params, "glove_ref": glove_ref, "seed": seed,
                                                          "batch_size": t.batch_size or CPU_BATCH_SIZE,
                                                          "table_ref": table_ref},
                              batch_size=1, batch_format="pyarrow", compute=_tasks(t.workers))
    gpus = cluster_gpus() if t.device != "cpu" else 0
    layout = mlm_actor_layout(cluster_cpus(), gpus, t.workers, t.actors_per_gpu)
    ds = _read_examples(cfg, _example_files(cfg, split), num_blocks, layout.actors)
    return ds.map_batches(
        TinyBertMlmWorker,
        fn_constructor_args=(params, t.mlm, t.device, t.dtype, layout.threads, glove_ref, seed, t.batch_size),
        batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=layout.actors),
        num_gpus=layout.gpus_each, num_cpus=layout.cpus_each)


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


# Settings that do not change the output (tested): left out of the completion key.
_PERFORMANCE_ONLY = {"workers", "actors_per_gpu", "batch_size"}  # (augment.block_rows, not a method setting, is not in the key either)


def completion_key(cfg: JobConfig, split: str, method: str) -> tuple[str, str]:
    """(settings hash, input fingerprint) of one (split, method) output."""
    params = getattr(cfg.augment, method).model_dump(mode="json", exclude=_PERFORMANCE_ONLY)
    tries = cfg.tang_n_iter if method == "tang" else cfg.tinybert_n
    settings = {"stage": "augment", "split": split, "method": method, "seed": cfg.seed, "tries": tries,
                "params": params, "shard_rows": cfg.augment.shard_rows}
    inputs = {split: completion.fingerprint_dir(examples_dir(cfg, split))}
    if method == "tang":  # the unigram-by-tag table comes from the train split
        inputs["train"] = inputs.get("train") or completion.fingerprint_dir(examples_dir(cfg, "train"))
    return completion.digest(settings), completion.digest(inputs)


def run_augment(cfg: JobConfig, methods: list[str] | None = None, num_blocks: int | None = None) -> dict:
    """Augment every split of ``cfg.augment.splits`` with each method; ``num_blocks`` overrides
    Ray's choice of input blocks (the output does not depend on it)."""
    methods = methods or list(cfg.augment.methods)
    tang = _TangPlan(cfg, num_blocks) if "tang" in methods else None
    glove = functools.cache(lambda: _glove_ref(cfg))  # loaded only when some output is (re)written
    results = {}
    for split in cfg.augment.splits:
        for method in methods:
            started = time.perf_counter()
            out_dir = augmented_dir(cfg, split, method)
            if not storage.exists(examples_dir(cfg, split)):
                raise AugmentError(f"{examples_dir(cfg, split)}: no ingested examples for split {split!r}; "
                                   f"run `pipeline ingest` first")
            key = completion_key(cfg, split, method)
            if completion.finished(out_dir, *key):
                summary = storage.read_json(storage.join(out_dir, "_summary.json"))
                results[(split, method)] = {**summary, "reused": True}
                print_summary(f"augment {split} {method}", [
                    ("examples in", summary["examples_in"]), ("rows out", summary["rows_out"]), ("output", out_dir),
                    ("up to date", "finished by an earlier run with the same examples and settings; not redone")])
                continue
            completion.start(out_dir)
            ds = _augment_split(cfg, split, method, tang, glove() if method == "tinybert" else None, num_blocks)
            # two shards encoded at once in the background: the rows of the blocks that finish
            # last (with several workers, most of the output) are written side by side
            writer = storage.ShardWriter(out_dir, AUGMENTED_SCHEMA, cfg.augment.shard_rows, writers=2,
                                         use_dictionary=_DICTIONARY_COLUMNS)
            progress = Progress(f"augment {split} {method}")
            parents = rows = 0
            # prefetch_batches=0: a finished block is written at once (with the default of 1 the
            # iterator holds each block back until the next one is ready: measured, one worker's
            # first block of two reached the writer only when the second had finished)
            try:
                for table in ds.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0):
                    writer.write(table)
                    n_parents = pc.sum(pc.equal(table.column("variant"), 0)).as_py() or 0
                    parents += n_parents
                    rows += table.num_rows
                    progress.add(table.num_rows)
                shards = writer.close()
            except BaseException:
                writer.abort()  # no shard is still being written once the error is reported
                raise
            seconds = time.perf_counter() - started
            tries = cfg.tang_n_iter if method == "tang" else cfg.tinybert_n
            summary = {"split": split, "method": method, "examples_in": parents, "rows_out": rows,
                       "variants": rows - parents, "tries_per_example": tries, "seconds": round(seconds, 3),
                       "examples_per_s": round(parents / max(seconds, 1e-9), 2), "shards": shards}
            if method == "tinybert":
                summary["mlm"] = cfg.augment.tinybert.mlm or "none (GloVe neighbours for every eligible word)"
            storage.write_json(storage.join(out_dir, "_summary.json"), summary)
            completion.mark_finished(out_dir, *key, [storage.join(out_dir, s["file"]) for s in shards]
                                     + [storage.join(out_dir, "_summary.json")])
            results[(split, method)] = summary
            print_summary(f"augment {split} {method}", [
                ("examples in", parents), ("rows out", rows),
                ("variants per example", round((rows - parents) / max(parents, 1), 2)),
                ("tries per example", tries),
                *([("mlm", summary["mlm"])] if method == "tinybert" else []),
                ("examples / s", summary["examples_per_s"]), ("output", out_dir), ("seconds", seconds)])
    return results
