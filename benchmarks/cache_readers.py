"""Benchmark: reading a teacher cache with the DataLoader reader against plain pyarrow.

On the cached Rotten Tomatoes train split with hidden states (the layout of jobs/rt-polarity.yaml:
logits, hidden states 0, 2, 4, 6 and attentions 2, 4, 6 of the 6-layer MiniLM teacher). Without
``--cache``, the cache is built first (the bundled MiniLM encoder with an untrained two-label head:
reading does not depend on what the numbers mean) under ``--work``; a finished job's cache can be
given instead (``--cache out/rt-polarity/teacher/examples/train``).

The contenders read every row of every column, in turns, ``--repeats`` rounds, the best round each:

1. pyarrow: ``ParquetFile.iter_batches`` over the shards (decoded Arrow batches, nothing more);
2. pyarrow + NumPy: the same, and each list column flattened to a NumPy array (the values usable);
3. ``CacheDataset`` in a ``DataLoader`` with 0 workers (padded torch tensors, hidden states
   [batch, tokens, hidden], attentions [batch, heads, tokens, tokens]) in float32 and float16;
4. the same with 2 workers;
5. with ``--step-ms`` (default 30): pyarrow and the DataLoader (float16) while the main process
   computes for that long per batch, as a training step would: what workers are for is reading
   while the model trains, which a pure read cannot show.

Then the bytes per stored float16 value with each ``teacher.float16_encoding`` (the shards written
again, row group by row group, with the stage's Parquet options).

Rows/s, real tokens/s, stored float values/s and the ratio to pyarrow are printed, measured side by
side in one run. Free page cache between rounds is not forced: every contender reads warm files.

    python -m benchmarks.cache_readers
    python -m benchmarks.cache_readers --columns logits,hidden_6 --no-encodings   # what a student reads
    python -m benchmarks.cache_readers --cache out/rt-polarity/teacher/examples/train --batch-size 64
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def build_cache(work: Path, threads: int) -> str:
    """The teacher stage on the Rotten Tomatoes train split, in this process."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.config import parse_config
    from pipeline.teacher import TeacherConfig
    from pipeline.teacher.settings import bundled_model_path
    from pipeline.teacher.stage import run_teacher
    from pipeline.testing import write_examples

    out = work / "out"
    cache = out / "teacher" / "examples" / "train"
    if (cache / "manifest.json").exists():
        return str(cache)
    model_dir = work / "minilm-2-labels"
    if not (model_dir / "config.json").exists():
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(bundled_model_path(), num_labels=2)
        model.save_pretrained(model_dir)
        AutoTokenizer.from_pretrained(bundled_model_path()).save_pretrained(model_dir)
    with open(ROOT / "data" / "rt-polarity" / "train.tsv", encoding="utf-8") as fh:
        rows = [
            {"text_a": r["sentence"], "label": r["label"], "label_id": int(r["label"] == "positive")}
            for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        ]
    write_examples(out / "examples" / "train", rows)
    cfg = parse_config(
        {
            "name": "cache-readers",
            "task": "rt-polarity",
            "output_dir": str(out),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": "data/rt-polarity/train.tsv", "columns": {"text_a": "sentence"}}},
        },
        check_files=False,
    )
    tc = TeacherConfig(
        model=str(model_dir),
        student_layers=3,
        attentions=[2, 4, 6],
        cpu_threads=threads,
        finetune={"enabled": False},
    )
    started = time.perf_counter()
    run_teacher(cfg, tc, inputs=["examples/train"], use_ray=False)
    print(f"cache built in {time.perf_counter() - started:.0f} s: {cache}")
    return str(cache)


def float_values(table_or_batch) -> int:
    return sum(
        len(table_or_batch.column(name).combine_chunks().flatten())
        for name in table_or_batch.column_names
        if name.startswith(("hidden_", "attention_", "logits"))
    )


def read_pyarrow(files: list[str], batch_size: int, to_numpy: bool, columns: list[str] | None) -> tuple[int, int]:
    rows = tokens = 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
            rows += batch.num_rows
            tokens += int(np.asarray(batch.column("num_tokens")).sum())
            if to_numpy:
                for column in batch.columns:
                    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
                        np.asarray(column.flatten())
    return rows, tokens


def busy(ms: float) -> None:
    """``ms`` of single-threaded compute in this process, standing in for a training step."""
    import torch

    a = torch.ones(128, 128)
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        a @ a


def read_pyarrow_step(files: list[str], batch_size: int, step_ms: float, columns: list[str] | None) -> tuple[int, int]:
    rows = tokens = 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
            rows += batch.num_rows
            tokens += int(np.asarray(batch.column("num_tokens")).sum())
            busy(step_ms)
    return rows, tokens


def read_loader(
    cache: str, batch_size: int, workers: int, half: bool, columns: list[str] | None, step_ms: float = 0
) -> tuple[int, int]:
    import torch
    from torch.utils.data import DataLoader

    from pipeline.cache import CacheDataset

    rows = tokens = 0
    ds = CacheDataset(cache, columns, batch_size=batch_size, hidden_dtype=torch.float16 if half else None)
    for batch in DataLoader(ds, batch_size=None, num_workers=workers):
        rows += len(batch["row"])
        tokens += int(batch["attention_mask"].sum())
        if step_ms:
            busy(step_ms)
    return rows, tokens


def encoding_sizes(files: list[str], work: Path) -> dict[str, float]:
    """Compressed bytes per stored float16 value (hidden states and attentions) of the shards
    written again, row group by row group, with each float16 encoding and the stage's options."""
    from pipeline.cache.columns import float_columns
    from pipeline.cache.shards import parquet_options

    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, float] = {}
    for encoding in ("plain", "byte_stream_split"):
        compressed = values = 0
        for i, path in enumerate(files):
            source = pq.ParquetFile(path)
            schema = source.schema_arrow
            half = [f.name for f in schema if pa.types.is_list(f.type) and f.type.value_type == pa.float16()]
            target = work / f"{encoding}-{i}.parquet"
            with pq.ParquetWriter(target, schema, **parquet_options(schema, float_columns(schema), encoding)) as w:
                for g in range(source.metadata.num_row_groups):
                    group = source.read_row_group(g)
                    values += sum(len(group.column(n).combine_chunks().flatten()) for n in half)
                    w.write_table(group)
            meta = pq.ParquetFile(target).metadata
            wanted = {f"{n}.list.element" for n in half}
            compressed += sum(
                meta.row_group(g).column(c).total_compressed_size
                for g in range(meta.num_row_groups)
                for c in range(meta.num_columns)
                if meta.row_group(g).column(c).path_in_schema in wanted
            )
            target.unlink()
        out[encoding] = compressed / max(values, 1)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cache_readers", description=__doc__.split("\n")[0])
    p.add_argument("--cache", help="an existing cache folder (default: build one under --work)")
    p.add_argument("--work", default=str(ROOT / ".bench" / "cache_readers"), help="where the built cache goes")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads to build the cache")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-encodings", action="store_true", help="skip the bytes-per-value comparison")
    p.add_argument("--columns", help="comma-separated columns read (default: all; num_tokens and row always)")
    p.add_argument(
        "--step-ms",
        type=float,
        default=30,
        help="also time the readers with this much compute per batch in the main process, as a training "
        "step would take (workers overlap it); 0 = not",
    )
    args = p.parse_args(argv)

    import torch

    from pipeline.cache import open_cache

    cache_dir = args.cache or build_cache(Path(args.work), args.threads)
    cache = open_cache(cache_dir, verify="footer")
    m = cache.manifest
    files = list(cache.files)
    groups = sum(pq.ParquetFile(f).metadata.num_row_groups for f in files)
    columns = None if not args.columns else list(dict.fromkeys(["num_tokens", "row", *args.columns.split(",")]))
    values = sum(float_values(pq.read_table(f, columns=columns)) for f in files)
    print(
        f"cache: {cache_dir}\n  {m['rows']:,} rows, {m['tokens']:,} real tokens, layers {m['layers']}, "
        f"attentions {m['attentions']}, {len(files)} shards, {groups} row groups, "
        f"{m['bytes'] / 1e6:,.0f} MB on disk, {values:,} stored float values; "
        f"float16 encoding {m['encoding'].get('float16_encoding')}; columns read: {columns or 'all'}"
    )
    torch.set_num_threads(1)  # the workers' share of the cores; the loader's collation is single-threaded
    step = args.step_ms
    contenders = {
        "pyarrow iter_batches": lambda: read_pyarrow(files, args.batch_size, False, columns),
        "pyarrow + NumPy": lambda: read_pyarrow(files, args.batch_size, True, columns),
        "DataLoader 0 w, fp32": lambda: read_loader(cache_dir, args.batch_size, 0, False, columns),
        "DataLoader 2 w, fp32": lambda: read_loader(cache_dir, args.batch_size, 2, False, columns),
        "DataLoader 0 w, fp16": lambda: read_loader(cache_dir, args.batch_size, 0, True, columns),
        "DataLoader 2 w, fp16": lambda: read_loader(cache_dir, args.batch_size, 2, True, columns),
    }
    if step:
        contenders.update(
            {
                f"pyarrow + {step:g} ms step": lambda: read_pyarrow_step(files, args.batch_size, step, columns),
                f"DL 0 w, fp16 + {step:g} ms": lambda: read_loader(cache_dir, args.batch_size, 0, True, columns, step),
                f"DL 2 w, fp16 + {step:g} ms": lambda: read_loader(cache_dir, args.batch_size, 2, True, columns, step),
            }
        )
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            started = time.perf_counter()
            rows, tokens = run()
            seconds = time.perf_counter() - started
            if rows != m["rows"] or tokens != m["tokens"]:
                raise SystemExit(
                    f"{name}: read {rows} rows / {tokens} tokens, the cache has {m['rows']} / {m['tokens']}"
                )
            best[name] = min(best.get(name, seconds), seconds)
    print(f"\nbatch size {args.batch_size}, best of {args.repeats} rounds, {os.cpu_count()} CPUs")
    print(f"  {'reader':<27}{'seconds':>9}{'rows/s':>11}{'tokens/s':>12}{'M values/s':>12}{'vs pyarrow':>12}")
    for name, seconds in best.items():
        base = best[f"pyarrow + {step:g} ms step"] if "ms" in name else best["pyarrow iter_batches"]
        print(
            f"  {name:<27}{seconds:>9.2f}{m['rows'] / seconds:>11,.0f}{m['tokens'] / seconds:>12,.0f}"
            f"{values / seconds / 1e6:>12,.1f}{base / seconds:>11.2f}x"
        )
    if args.no_encodings:
        return 0
    sizes = encoding_sizes(files, Path(args.work) / "encodings")
    print("\nbytes per stored float16 value (hidden states and attentions, zstd, the same row groups):")
    for encoding, size in sizes.items():
        print(f"  {encoding:<18}{size:.3f}")
    print(f"  byte_stream_split / plain: {sizes['byte_stream_split'] / sizes['plain']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
