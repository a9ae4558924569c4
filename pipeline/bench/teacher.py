"""Benchmark: teacher inference end to end against model-only and a plain padded loop.

One process, no Ray (the Ray adapter only schedules the same per-shard function on actors), on
Rotten Tomatoes review sentences (``data/rt-polarity/train.tsv``) plus simple seeded variants
(word dropout, one adjacent swap) standing in for an augmented corpus. For each teacher:

1. end to end, logits only: read the Parquet corpus, tokenize, infer, build Arrow rows and
   write zstd Parquet shards (``ShardComputer.compute_many``, exactly what an actor runs);
2. the same with 5 hidden layers (the TinyBERT mapping) stored as float16 with the stage's
   default precision (``hidden_mantissa_bits: 7``);
3. model only, for 1 and 2: the very same padded batches through the model, nothing else
   (tokenized and collated beforehand, not timed);
4. a plain loop: HF tokenizer with ``padding="max_length"`` (max_length), batch of 32, input order;

real (unpadded) tokens per second for each, the ratios, and the bytes per stored hidden value
(compressed hidden columns over tokens × hidden × layers) with 7 mantissa bits (the timed run's
shards) and exact (one more, untimed, end-to-end pass with ``hidden_mantissa_bits: 10``). The
contenders take turns (as many shards per turn as the stage's Ray actor takes per call: 2 on a
CPU, where one shard's file is finished while the next is computed) for ``--repeats`` rounds
and the best round of each counts, which damps interference from other processes; load averages
and this process's CPU use are printed, and the run is flagged when other processes took the
cores.

    python -m pipeline.bench.teacher                       # MiniLM (real weights) + BERT-base shape
    python -m pipeline.bench.teacher --models minilm --rows-minilm 2000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from pipeline.teacher import shards as sh
from pipeline.teacher.batching import collate, plan_batches
from pipeline.teacher.compute import InferenceSpec, ShardComputer
from pipeline.teacher.layers import tinybert_layers
from pipeline.teacher.settings import bundled_model_path
from pipeline.teacher.stage import CPU_SHARDS_PER_CALL
from pipeline.teacher.testing import random_teacher, write_augmented

ROOT = Path(__file__).resolve().parents[2]


def sentences(path: Path, n: int, variants: int, seed: int) -> list[str]:
    """Review sentences, each followed by ``variants`` seeded variants; the first ``n`` rows."""
    with open(path, encoding="utf-8", newline="") as fh:
        base = [r["sentence"] for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    rng = np.random.default_rng(seed)
    out = []
    for s in base:
        out.append(s)
        words = s.split()
        for _ in range(variants):
            w = [x for x in words if rng.random() > 0.1] or words[:1]
            if len(w) > 2:
                i = int(rng.integers(0, len(w) - 1))
                w[i], w[i + 1] = w[i + 1], w[i]
            out.append(" ".join(w))
        if len(out) >= n:
            break
    return out[:n]


class Contender:
    def __init__(self, name: str):
        self.name, self.runs = name, []  # (real tokens, seconds, cpu seconds)

    def add(self, tokens: int, seconds: float, cpu: float) -> None:
        self.runs.append((tokens, seconds, cpu))

    @property
    def best(self) -> tuple[int, float, float]:
        return max(self.runs, key=lambda r: r[0] / r[1])

    @property
    def rate(self) -> float:
        t, s, _ = self.best
        return t / s


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    tokens = fn()
    return tokens, time.perf_counter() - w0, time.process_time() - c0


def bench_model(label: str, model_dir: str, corpus: str, work: Path, args, layers: list[int]) -> dict:
    spec_kw = dict(max_length=args.max_length, token_budget=args.token_budget, device=args.device, dtype=args.dtype,
                   threads=args.threads, row_group_bytes=args.row_group_bytes)
    files = sh.list_input_files(corpus)
    specs = {"logits": InferenceSpec(model=model_dir, cache_key="bench", **spec_kw),
             "hidden": InferenceSpec(model=model_dir, cache_key="bench", layers=tuple(layers), **spec_kw)}
    computers = {k: ShardComputer(s) for k, s in specs.items()}
    model = computers["logits"].model  # the same weights; the hidden computer holds its own copy
    out_dirs = {k: work / f"{label}-{k}" for k in specs}
    tasks = {k: sh.plan_shards(files, args.shard_rows, str(d)) for k, d in out_dirs.items()}

    # the very batches each end-to-end run makes (row groups differ: they are sized by bytes), collated
    # beforehand, per shard
    prepared = {kind: [] for kind in specs}
    shard_texts = []
    for kind in specs:
        for task in tasks[kind]:
            meta, enc, ranges, _ = computers[kind].prepare(task)
            batches = []
            for a, b in ranges:
                part = enc.slice(a, b)
                for rows, length in plan_batches(part.lengths, args.token_budget, args.max_length):
                    batches.append((collate(part, rows, length, model.pad_id), int(part.lengths[rows].sum())))
            prepared[kind].append(batches)
            if kind == "logits":
                shard_texts.append(meta.column("text_a").to_pylist())

    # each contender takes a list of shard indices: one Ray actor call's shards per turn on a CPU,
    # every shard of the round in one turn on a GPU (where the stage reads and tokenizes ahead)
    def e2e(kind):
        def run(idx):
            return sum(r.tokens for r in computers[kind].compute_many([tasks[kind][i] for i in idx]))
        return run

    def model_only(kind):
        m = computers[kind].model

        def run(idx):
            total = 0
            for i in idx:
                for batch, real in prepared[kind][i]:
                    result = m.forward(batch, hidden=kind == "hidden", attentions=False)
                    total += real
            if m.device.type == "cuda":
                result.logits.float().cpu()  # wait for the queued kernels
            return total
        return run

    def padded(idx):  # plain fp32, whatever --dtype says: the baseline a user would write first
        tok, total = model.tokenizer, 0
        device = next(model.model.parameters()).device
        with torch.inference_mode():
            for i in idx:
                texts = shard_texts[i]
                for k in range(0, len(texts), 32):
                    enc = tok(texts[k:k + 32], padding="max_length", truncation=True, max_length=args.max_length,
                              return_tensors="pt")
                    model.model(**{key: v.to(device) for key, v in enc.items()}).logits.float().cpu().numpy()
                    total += int(enc["attention_mask"].sum())
        return total

    for d in out_dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    fns = {"e2e logits": e2e("logits"), "model-only logits": model_only("logits"), "e2e 5 hidden": e2e("hidden"),
           "model-only 5 hidden": model_only("hidden"), "padded loop": padded}
    contenders = {name: Contender(name) for name in fns}
    for name, fn in fns.items():  # warm-up on the first shard (allocator, kernels, page cache), not counted
        if name != "padded loop":  # same model as model-only: already warm
            fn([0])
    n_shards = len(tasks["logits"])
    per_turn = n_shards if args.device == "cuda" else CPU_SHARDS_PER_CALL
    turns = [list(range(i, min(n_shards, i + per_turn))) for i in range(0, n_shards, per_turn)]
    for r in range(args.repeats):
        # contenders take turns (rotating who goes first), so a burst of load from
        # another process hits all of them alike
        totals = {name: [0, 0.0, 0.0] for name in fns}
        for i, idx in enumerate(turns):
            names = list(fns)
            names = names[(i + r) % len(names):] + names[:(i + r) % len(names)]
            for name in names:
                if name == "padded loop" and r >= args.padded_repeats:
                    continue
                tokens, wall, cpu = timed(lambda: fns[name](idx))
                totals[name][0] += tokens
                totals[name][1] += wall
                totals[name][2] += cpu
        for name, (tokens, wall, cpu) in totals.items():
            if tokens:
                contenders[name].add(tokens, wall, cpu)
                print(f"    {label} round {r + 1}: {name:<20} {tokens / wall:>9,.0f} real tokens/s "
                      f"(cpu {cpu / wall:.2f})", file=sys.stderr, flush=True)

    # bytes per stored hidden value: the timed run's shards (the default 7 mantissa bits), then one
    # untimed pass storing exact float16
    exact_spec = InferenceSpec(model=model_dir, cache_key="bench", layers=tuple(layers), mantissa_bits=10, **spec_kw)
    exact_dir = work / f"{label}-exact"
    exact_dir.mkdir(parents=True, exist_ok=True)
    list(ShardComputer(exact_spec, model=computers["hidden"].model).compute_many(
        sh.plan_shards(files, args.shard_rows, str(exact_dir))))
    width = model.hidden_size
    rounded, exact = _hidden_bytes(out_dirs["hidden"], layers), _hidden_bytes(exact_dir, layers)
    values = rounded["tokens"] * width * len(layers)
    e = {k: c.rate for k, c in contenders.items()}
    return {
        "model": label, "layers": layers, "rows": rounded["rows"], "real_tokens": rounded["tokens"],
        "tokens_per_s": {k: round(v, 1) for k, v in e.items()},
        "cpu_utilisation": {k: round(c.best[2] / c.best[1], 2) for k, c in contenders.items()},
        "e2e_over_model_logits": e["e2e logits"] / e["model-only logits"],
        "e2e_over_model_hidden": e["e2e 5 hidden"] / e["model-only 5 hidden"],
        "e2e_over_padded": e["e2e logits"] / e["padded loop"],
        "e2e_hidden_over_padded": e["e2e 5 hidden"] / e["padded loop"],
        "bytes_per_hidden_value_7bit": rounded["hidden_bytes"] / values,
        "file_bytes_per_hidden_value_7bit": rounded["file_bytes"] / values,
        "bytes_per_hidden_value_exact": exact["hidden_bytes"] / values,
        "padded_fraction": sum(int(b["attention_mask"].numel()) for s in prepared["hidden"] for b, _ in s)
        / max(1, sum(r for s in prepared["hidden"] for _, r in s)),
    }


def _hidden_bytes(directory: Path, layers: list[int]) -> dict:
    """Rows, real tokens, compressed bytes of the hidden columns and whole-file bytes of a cache folder."""
    files = sorted(directory.glob("shard-*.parquet"))
    wanted = {f"hidden_{l}.list.element" for l in layers}
    rows = tokens = hidden = 0
    for p in files:
        meta = pq.ParquetFile(p).metadata
        rows += meta.num_rows
        tokens += int(pq.read_table(p, columns=["num_tokens"]).column(0).to_numpy().sum())
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            hidden += sum(rg.column(c).total_compressed_size for c in range(rg.num_columns)
                          if rg.column(c).path_in_schema in wanted)
    return {"rows": rows, "tokens": tokens, "hidden_bytes": hidden, "file_bytes": sum(p.stat().st_size for p in files)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.bench.teacher", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="minilm,base", help="comma list of: minilm (bundled weights), base "
                                                           "(BERT-base shape, random from_config)")
    p.add_argument("--rows-minilm", type=int, default=960, help="corpus rows for the MiniLM teacher")
    p.add_argument("--rows-base", type=int, default=480, help="corpus rows for the BERT-base-shaped teacher")
    p.add_argument("--variants", type=int, default=3, help="variants per review sentence")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--token-budget", type=int, default=4096, help="padded tokens per batch")
    p.add_argument("--shard-rows", type=int, default=240, help="rows per shard (contenders alternate by shard)")
    p.add_argument("--row-group-bytes", type=int, default=8 << 20,
                   help="scaled down from the stage's 64 MiB with the corpus, so that a shard has several row groups "
                        "(writes overlap the next row group's inference) as a default 4096-row shard does")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the teacher runs")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                   help="compute dtype of the end-to-end and model-only runs (the padded loop stays fp32)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the best round of each contender counts")
    p.add_argument("--padded-repeats", type=int, default=1, help="rounds of the (slow) padded loop")
    p.add_argument("--data", default=str(ROOT / "data/rt-polarity/train.tsv"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(ROOT / ".bench/teacher.json"), help="where to write the figures")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    command = "python -m pipeline.bench.teacher " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    load_before = os.getloadavg()
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-teacher-") as tmp:
        work = Path(tmp)
        for label in [m.strip() for m in args.models.split(",") if m.strip()]:
            if label == "minilm":
                source = work / "minilm"  # the bundled encoder with a (random, seeded) 2-label head
                torch.manual_seed(args.seed)
                from transformers import AutoModelForSequenceClassification

                AutoModelForSequenceClassification.from_pretrained(bundled_model_path(), num_labels=2).save_pretrained(source)
                from pipeline.teacher.testing import save_tokenizer

                save_tokenizer(source)
                n_rows, n_layers = args.rows_minilm, 6
            elif label == "base":
                source = Path(random_teacher(work / "base", "base", num_labels=2, seed=args.seed))
                n_rows, n_layers = args.rows_base, 12
            else:
                p.error(f"unknown model {label!r}")
            corpus = work / f"corpus-{label}"
            write_augmented(corpus, [{"text_a": s} for s in sentences(Path(args.data), n_rows, args.variants, args.seed)],
                            part_rows=max(1, n_rows // 3))
            print(f"  {label}: {n_rows} rows, {args.threads} torch thread(s)", file=sys.stderr, flush=True)
            results.append(bench_model(label, str(source), str(corpus), work, args, tinybert_layers(n_layers)))
    load_after = os.getloadavg()
    seconds = time.perf_counter() - started

    print(f"\nteacher inference benchmark, one process, no Ray (the Ray adapter schedules this same per-shard "
          f"function on actors); {args.device}, {args.dtype}, {args.threads} torch thread(s), max_length {args.max_length}, "
          f"token budget {args.token_budget}")
    print(f"command: {command}")
    util = min(u for r in results for u in r["cpu_utilisation"].values()) if results else 0.0
    quiet = util >= 0.8 * args.threads or args.device == "cuda"  # on a GPU the host threads mostly wait
    print(f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min); "
          f"{os.cpu_count()} CPUs; {seconds:.0f} s")
    print(f"machine quiet: {'yes' if quiet else 'NO'} (lowest CPU use of this process {util:.2f} of "
          f"{args.threads} thread(s){'' if quiet else ': other processes took the cores, rerun when quiet'})")
    header = f"{'model':<8}{'contender':<22}{'real tokens/s':>14}{'cpu util':>10}"
    for r in results:
        print(f"\n{r['model']} (layers {r['layers']}, {r['rows']} rows, {r['real_tokens']:,} real tokens, "
              f"padded/real tokens in the batches {r['padded_fraction']:.3f})")
        print(header)
        for k, v in r["tokens_per_s"].items():
            print(f"{r['model']:<8}{k:<22}{v:>14,.1f}{r['cpu_utilisation'][k]:>10.2f}")
        print(f"  e2e / model-only, logits:     {r['e2e_over_model_logits']:.3f}   (target >= 0.85)")
        print(f"  e2e / model-only, 5 hidden:   {r['e2e_over_model_hidden']:.3f}   (target >= 0.85)")
        print(f"  e2e logits / padded loop:     {r['e2e_over_padded']:.2f}x  (target >= 3x)")
        print(f"  e2e 5 hidden / padded loop:   {r['e2e_hidden_over_padded']:.2f}x")
        print(f"  bytes per hidden value:       {r['bytes_per_hidden_value_7bit']:.3f} with 7 mantissa bits, the "
              f"stage's default ({r['file_bytes_per_hidden_value_7bit']:.3f} whole files; target <= 1.4); "
              f"{r['bytes_per_hidden_value_exact']:.3f} exact float16")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"command": command, "load_before": load_before, "load_after": load_after,
                                           "threads": args.threads, "quiet": quiet, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
