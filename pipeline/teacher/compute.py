"""One shard, start to finish, in one process: read rows, tokenize, infer, write (no Ray).

The Ray adapter (``stage.py``) runs a :class:`ShardComputer` in each actor of a pool; a local
run or a test runs one in-process. Either way one call computes and writes one whole shard.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa

from . import shards as sh
from .manifest import local_model_dir, weights_sha256
from .model import TeacherModel
from .rows import build_table, float_columns, output_schema, row_bytes


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
    float16_encoding: str = "byte_stream_split"
    row_group_bytes: int = 64 << 20
    mlm_model: str = ""          # masked-LM teacher for the top-k logits ("" = none)
    mlm_weights_sha256: str = ""
    mlm_top_k: int = 0


class ShardComputer:
    """Loads the teacher once; ``compute(task)`` writes one shard and returns its result."""

    def __init__(self, spec: InferenceSpec, model: TeacherModel | None = None):
        self.spec = spec
        if model is None:
            folder = local_model_dir(spec.model)
            if spec.weights_sha256 and weights_sha256(folder) != spec.weights_sha256:
                raise RuntimeError(f"teacher {spec.model!r} on this worker ({folder}) has other weights than the "
                                   f"driver's (sha256 {spec.weights_sha256[:16]}…)")
            mlm_folder = local_model_dir(spec.mlm_model) if spec.mlm_top_k else None
            if mlm_folder and spec.mlm_weights_sha256 and weights_sha256(mlm_folder) != spec.mlm_weights_sha256:
                raise RuntimeError(f"masked-LM teacher {spec.mlm_model!r} on this worker ({mlm_folder}) has other "
                                   f"weights than the driver's (sha256 {spec.mlm_weights_sha256[:16]}…)")
            model = TeacherModel.load(folder, layers=spec.layers, attentions=spec.attentions, device=spec.device,
                                      dtype=spec.dtype, token_budget=spec.token_budget, max_length=spec.max_length,
                                      threads=spec.threads, mlm=mlm_folder, mlm_top_k=spec.mlm_top_k)
        self.model = model
        self.token_types = "token_type_ids" in getattr(self.model.tokenizer, "model_input_names", [])

    def schema(self, input_schema: pa.Schema) -> pa.Schema:
        m = self.model
        return output_schema(input_schema, m.num_labels, m.layers, m.attention_layers, self.token_types,
                             m.mlm_top_k)

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
        sizes = row_bytes(enc.lengths, m.hidden_size, len(m.layers), m.num_heads, len(m.attention_layers),
                          m.num_labels, text_bytes)
        return meta, enc, sh.row_group_ranges(sizes, self.spec.row_group_bytes), self.schema(meta.schema)

    def compute_many(self, tasks: list[sh.ShardTask]) -> Iterator[sh.ShardResult]:
        """Compute shards in turn while a thread reads and tokenizes the next one (so that a GPU
        does not wait for the host between shards)."""
        if not tasks:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-reader") as reader:
            following = reader.submit(self.prepare, tasks[0])
            for k, task in enumerate(tasks):
                prepared = following.result()
                following = reader.submit(self.prepare, tasks[k + 1]) if k + 1 < len(tasks) else None
                yield self.compute(task, prepared)

    def compute(self, task: sh.ShardTask, prepared=None) -> sh.ShardResult:
        """Compute one shard and write it (temporary name, then rename); ``prepared``: what
        :meth:`prepare` returned for this task, when it was read ahead."""
        started = time.perf_counter()
        spec, m = self.spec, self.model
        meta, enc, ranges, schema = prepared if prepared is not None else self.prepare(task)
        options = sh.parquet_options(schema, float_columns(schema), spec.float16_encoding)
        result = sh.ShardResult(task.name, task.first_row, task.rows, 0, 0, "", computed=True)
        with sh.shard_file(task.out_path, schema, options, sh.shard_metadata(spec.cache_key, task)) as sink:
            # row group k is encoded and written (Arrow's C++ writer, no GIL) while row group k+1 is computed
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer") as writer:
                pending = None
                whole = m.infer(enc) if m.needs_whole_shard() else None
                for start, stop in ranges:
                    part = enc.slice(start, stop)
                    out = m.infer(part) if whole is None else whole.slice(start, stop, enc.lengths)
                    if whole is None or start == 0:
                        counted = out if whole is None else whole
                        result.model_seconds += counted.model_seconds
                        result.padded_tokens += counted.padded_tokens
                        result.nonfinite += counted.nonfinite
                    table = build_table(meta.slice(start, stop - start), task.first_row + start, part, out, schema,
                                        spec.mantissa_bits)
                    if pending is not None:
                        pending.result()  # at most one row group waits; a write error surfaces here
                    pending = writer.submit(sink.write, table)
                if pending is not None:
                    pending.result()
        result.tokens = sink.tokens
        filesystem, p = sh.storage.resolve(task.out_path)
        result.bytes = filesystem.get_file_info(p).size
        result.sha256 = sh.file_sha256(task.out_path)
        result.seconds = time.perf_counter() - started
        return result
