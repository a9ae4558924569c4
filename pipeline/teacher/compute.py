"""One shard, start to finish, in one process: read rows, tokenize, infer, write (no Ray).

The Ray adapter (``inference.py``) runs a :class:`ShardComputer` in each actor of a pool; a local
run or a test runs one in-process. Either way a call computes and writes whole shards.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .. import storage
from ..cache import shards as shard_files
from ..cache.columns import float_columns, output_schema
from . import shards as sh
from .model import TeacherModel
from .model_files import local_model_dir, weights_sha256
from .rows import build_table, row_bytes


@dataclass(frozen=True)
class InferenceSpec:
    """Everything an actor needs to compute shards (picklable).

    ``model`` is the teacher as the driver names it (hub id, folder or URI): every actor resolves
    it to a local folder itself and checks the weights against ``weights_sha256`` when given.
    """

    model: str
    cache_key: str
    weights_sha256: str = ""
    layers: tuple[int, ...] = ()
    attentions: tuple[int, ...] = ()
    max_length: int = 128
    token_budget: int = 16384
    device: str = "auto"
    dtype: str = "fp32"
    threads: int | None = None
    mantissa_bits: int = 7  # the stage default (TeacherConfig.hidden_mantissa_bits)
    float16_encoding: str = "plain"
    row_group_bytes: int = 64 << 20
    mlm_model: str = ""  # masked-LM teacher for the top-k logits ("" = none)
    mlm_weights_sha256: str = ""
    mlm_top_k: int = 0


class ShardComputer:
    """Loads the teacher once; ``compute(task)`` writes one shard and returns its result."""

    def __init__(self, spec: InferenceSpec, model: TeacherModel | None = None, progress=None):
        self.spec, self.progress = spec, progress  # progress(rows) after each row group written
        if model is None:
            folder = local_model_dir(spec.model)
            if spec.weights_sha256 and weights_sha256(folder) != spec.weights_sha256:
                raise RuntimeError(
                    f"teacher {spec.model!r} on this worker ({folder}) has other weights than the "
                    f"driver's (sha256 {spec.weights_sha256[:16]}…)"
                )
            mlm_folder = local_model_dir(spec.mlm_model) if spec.mlm_top_k else None
            if mlm_folder and spec.mlm_weights_sha256 and weights_sha256(mlm_folder) != spec.mlm_weights_sha256:
                raise RuntimeError(
                    f"masked-LM teacher {spec.mlm_model!r} on this worker ({mlm_folder}) has other "
                    f"weights than the driver's (sha256 {spec.mlm_weights_sha256[:16]}…)"
                )
            model = TeacherModel.load(
                folder,
                layers=spec.layers,
                attentions=spec.attentions,
                device=spec.device,
                dtype=spec.dtype,
                token_budget=spec.token_budget,
                max_length=spec.max_length,
                threads=spec.threads,
                mlm=mlm_folder,
                mlm_top_k=spec.mlm_top_k,
            )
        self.model = model
        self.token_types = "token_type_ids" in getattr(self.model.tokenizer, "model_input_names", [])

    def schema(self, input_schema: pa.Schema) -> pa.Schema:
        m = self.model
        return output_schema(input_schema, m.num_labels, m.layers, m.attention_layers, self.token_types, m.mlm_top_k)

    def prepare(self, task: sh.ShardTask):
        """Read and tokenize a shard's rows; cut them into row groups by bytes.

        Returns (input rows, encoded rows, row-group ranges, output schema).
        """
        m = self.model
        meta = sh.read_rows(task.sources)
        if meta.num_rows != task.rows:
            raise RuntimeError(f"{task.name}: read {meta.num_rows} input rows, expected {task.rows}")
        texts_b = meta.column("text_b").to_pylist() if "text_b" in meta.column_names else None
        enc = m.encode(meta.column("text_a").to_pylist(), texts_b)
        text_bytes = np.full(len(enc), meta.nbytes // max(1, meta.num_rows), dtype=np.int64)
        sizes = row_bytes(
            enc.lengths, m.hidden_size, len(m.layers), m.num_heads, len(m.attention_layers), m.num_labels, text_bytes
        )
        return meta, enc, sh.row_group_ranges(sizes, self.spec.row_group_bytes), self.schema(meta.schema)

    def compute_many(self, tasks: list[sh.ShardTask]) -> Iterator[sh.ShardResult]:
        """Compute shards in turn, results in task order.

        On a CPU everything happens in this thread, one step after the other: read and tokenize a
        shard, then infer and write it row group by row group: work in a second thread would take a
        core from one of torch's threads, which then waits for it at every barrier. On a GPU, where
        the host mostly waits, a reader thread reads and tokenizes the next shard ahead, the calling
        thread only infers, and writer threads (:func:`gpu_writers`) write finished shards, each its
        own file, while the next ones are computed: Parquet encoding of stored hidden states is the
        slow step there. Figures: docs/performance.md.
        """
        if not tasks:
            return
        if not self.model.needs_whole_shard():
            for task in tasks:
                yield self.start(task, self.prepare(task)).result()
            return
        writers = gpu_writers()
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-reader") as reader,
            ThreadPoolExecutor(max_workers=writers, thread_name_prefix="shard-writer") as writer,
        ):
            following: Future | None = reader.submit(self.prepare, tasks[0])
            failed = threading.Event()  # a shard's writer failed: the later ones write nothing
            finishing: list[Future] = []
            last: Future | None = None  # the latest shard's job once it left ``finishing``
            for k, task in enumerate(tasks):
                while len(finishing) > writers:  # bounds the outputs held in memory
                    last = finishing.pop(0)
                    yield last.result()
                assert following is not None  # None only after the last task
                prepared = following.result()
                following = reader.submit(self.prepare, tasks[k + 1]) if k + 1 < len(tasks) else None
                try:
                    finishing.append(
                        self.start(task, prepared, writer, failed, after=finishing[-1] if finishing else last)
                    )
                except BaseException:
                    for future in finishing:  # the first error is the one to report
                        future.result()
                    raise
                while finishing and finishing[0].done():
                    last = finishing.pop(0)
                    yield last.result()
            for future in finishing:
                yield future.result()

    def compute(self, task: sh.ShardTask) -> sh.ShardResult:
        """Compute one shard and write it (temporary name, then rename)."""
        return next(iter(self.compute_many([task])))

    def start(
        self,
        task: sh.ShardTask,
        prepared,
        writer: ThreadPoolExecutor | None = None,
        failed: threading.Event | None = None,
        after: Future | None = None,
    ) -> Future:
        """Infer a shard and write its file; returns a future of its ShardResult.

        Without ``writer``, row group after row group in this thread (the future is done on return).
        With ``writer``, this thread infers and hands each row group to a job on ``writer`` that
        writes the file, and the future is that job's: an error here makes the job drop the file;
        an error of the job (a full disk) surfaces here at the next row group. The job renames its
        file into place only after ``after`` (the previous shard's job) succeeded, and drops it
        otherwise: with several writers, finished shards still form a prefix of the shard list,
        as they do with one.
        """
        started = time.perf_counter()
        result = sh.ShardResult(task.name, task.first_row, task.rows, 0, 0, "", computed=True)
        schema = prepared[3]
        groups = self._row_groups(task, prepared, result)
        if writer is None:
            done: Future = Future()
            done.set_result(self._write_shard_file(task, schema, groups, result, started))
            return done
        # a GPU computed the whole shard at the first row group; the rest are slices, handed over at
        # once, and the GPU goes on with the next shard while this one is written
        row_groups: queue.Queue = queue.Queue()
        job = writer.submit(
            self._write_shard,
            task,
            schema,
            iter(row_groups.get, _DONE),
            result,
            started,
            failed or threading.Event(),
            after,
        )
        try:
            for item in groups:
                _hand_over(row_groups, item, job)
            _hand_over(row_groups, _DONE, job)
        except BaseException:
            if not job.done():
                with contextlib.suppress(BaseException):
                    _hand_over(row_groups, _DROP, job)
            raise
        return job

    def _row_groups(self, task: sh.ShardTask, prepared, result: sh.ShardResult) -> Iterator[tuple]:
        """Infer a shard's row groups one by one (a GPU: the whole shard at the first), yielding the
        arguments of :func:`build_table` for each; counts model time and padding into ``result``."""
        m = self.model
        meta, enc, ranges, schema = prepared
        whole = m.infer(enc) if m.needs_whole_shard() else None
        for start, stop in ranges:
            part = enc.slice(start, stop)
            out = m.infer(part) if whole is None else whole.slice(start, stop, enc.lengths)
            if whole is None or start == 0:
                counted = out if whole is None else whole
                result.model_seconds += counted.model_seconds
                result.padded_tokens += counted.padded_tokens
                result.nonfinite += counted.nonfinite
            all_finite = (out if whole is None else whole).nonfinite == 0  # (a slice counts none)
            yield (
                meta.slice(start, stop - start),
                task.first_row + start,
                part,
                out,
                schema,
                self.spec.mantissa_bits,
                all_finite,
            )

    def _write_shard(
        self,
        task: sh.ShardTask,
        schema: pa.Schema,
        row_groups: Iterator,
        result: sh.ShardResult,
        started: float,
        failed: threading.Event,
        after: Future | None,
    ) -> sh.ShardResult:
        if failed.is_set():
            raise _Dropped(task.name)

        def commit_in_order():
            # a job starts only after every earlier one has started (one FIFO pool), so this wait
            # never waits on a job that waits on this one
            if after is not None and after.exception() is not None:
                raise _Dropped(task.name)

        try:
            return self._write_shard_file(task, schema, row_groups, result, started, commit_in_order)
        except BaseException:
            failed.set()
            raise

    def _write_shard_file(
        self,
        task: sh.ShardTask,
        schema: pa.Schema,
        row_groups: Iterator,
        result: sh.ShardResult,
        started: float,
        before_rename=None,
    ) -> sh.ShardResult:
        """Write the row groups to a temporary file, renamed when complete; an error in between (or
        ``_DROP`` from the inferring thread, or ``before_rename`` raising) removes the file."""
        options = shard_files.parquet_options(schema, float_columns(schema), self.spec.float16_encoding)
        with shard_files.shard_file(
            task.out_path, schema, options, shard_files.shard_metadata(self.spec.cache_key, task)
        ) as sink:
            for item in row_groups:
                if item is _DROP:
                    raise _Dropped(task.name)  # the temporary file goes, nothing appears
                table = build_table(*item)
                sink.write(table)
                if self.progress is not None:
                    self.progress(table.num_rows)
            if before_rename is not None:
                before_rename()
        result.tokens = sink.tokens
        record = storage.file_record(task.out_path)  # on an object store: from the staged copy, no read back
        result.bytes, result.sha256 = record["bytes"], record["sha256"]
        result.seconds = time.perf_counter() - started
        return result


_DONE, _DROP = object(), object()


def gpu_writers() -> int:
    """Shards a GPU actor writes at once, one thread each: up to 4, leaving 2 of the process's CPUs
    to inference and reading. Every shard in writing holds its outputs in host memory (about
    0.8 GB for 4,096 review-length rows with 5 hidden layers of a BERT-base teacher)."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus - 2))


class _Dropped(Exception):
    """The inferring thread failed: the writer drops the shard."""


def _hand_over(row_groups: queue.Queue, item, job: Future) -> None:
    """Put ``item`` for the writer job (the queue is unbounded: the whole shard is computed
    already), or raise the job's own error if it stopped first."""
    if job.done():
        job.result()  # raises the writer's error (a finished job takes no more items)
        raise RuntimeError("the shard writer finished before its last row group")
    row_groups.put(item)
