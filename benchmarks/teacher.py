"""Benchmark: teacher inference end to end against model-only and a plain padded loop.

No Ray: worker processes stand in for the stage's actors, each with its own teacher and torch
threads, laid out as the stage lays out its actors on these CPUs (on a CPU one single-threaded
actor per core by default: ``teacher.workers`` / ``teacher.cpu_threads``, here ``--actors`` /
``--actor-threads``). On Rotten Tomatoes review sentences (``data/rt-polarity/train.tsv``) plus
simple seeded variants (word dropout, one adjacent swap) standing in for an augmented corpus.
For each teacher:

1. end to end, logits only: read the Parquet corpus, tokenize, infer, build Arrow rows and
   write zstd Parquet shards (``ShardComputer.compute_many``, exactly what an actor runs);
2. the same with 5 hidden layers (the TinyBERT mapping) stored as float16 with the stage's
   default precision (``hidden_mantissa_bits: 7``);
3. model only, for 1 and 2: the very same padded batches through the model, nothing else
   (tokenized and collated beforehand, not timed), in the stage's layout and in one process
   with every thread; the faster of the two is the reference of the ratios;
4. a plain loop: HF tokenizer with ``padding="max_length"`` (max_length), batch of 32, input
   order, fp32, in both layouts (the faster counts);

real (unpadded) tokens per second for each, the ratios, and the bytes per stored hidden value
(compressed hidden columns over tokens × hidden × layers) with 7 mantissa bits (the timed run's
shards) and exact (one more, untimed, end-to-end pass with ``hidden_mantissa_bits: 10``). The
contenders take turns (each turn the same shards: one per actor on a CPU, every shard on a GPU)
for ``--repeats`` rounds and the best round of each counts, which damps interference from other
processes; load averages and the processes' CPU use are printed, and the run is flagged when
other processes took the cores.

    python -m benchmarks.teacher                       # MiniLM (real weights) + BERT-base shape
    python -m benchmarks.teacher --models minilm --rows-minilm 2000
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
from transformers import AutoConfig

from pipeline.cache.layers import tinybert_layers
from pipeline.teacher import shards as sh
from pipeline.teacher.batching import collate, plan_batches
from pipeline.teacher.compute import InferenceSpec, ShardComputer
from pipeline.teacher.settings import bundled_model_path
from pipeline.teacher.stage import CPU_SHARDS_PER_CALL, cpu_inference_layout
from pipeline.testing import random_teacher, write_augmented

ROOT = Path(__file__).resolve().parents[1]


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


class _Worker:
    """One process of the benchmark, like one actor of the stage: its own teacher copies, ``threads``
    torch threads; runs a contender on given shards when told."""

    def __init__(
        self,
        model_dir: str,
        corpus: str,
        out_dirs: dict[str, str],
        layers: list[int],
        spec_kw: dict,
        threads: int,
        shard_rows: int,
        max_length: int,
        token_budget: int,
    ):
        torch.set_num_threads(threads)
        self.max_length = max_length
        files = sh.list_input_files(corpus)
        specs = {
            "logits": InferenceSpec(model=model_dir, cache_key="bench", threads=threads, **spec_kw),
            "hidden": InferenceSpec(
                model=model_dir, cache_key="bench", layers=tuple(layers), threads=threads, **spec_kw
            ),
        }
        self.computers = {k: ShardComputer(s) for k, s in specs.items()}
        self.model = self.computers["logits"].model  # the same weights; the hidden computer holds its own copy
        self.tasks = {k: sh.plan_shards(files, shard_rows, out_dirs[k]) for k in specs}
        self.exact = ShardComputer(
            InferenceSpec(
                model=model_dir, cache_key="bench", layers=tuple(layers), mantissa_bits=10, threads=threads, **spec_kw
            ),
            model=self.computers["hidden"].model,
        )
        self.exact_tasks = sh.plan_shards(files, shard_rows, out_dirs["exact"])
        # the very batches each end-to-end run makes (row groups differ: they are sized by bytes),
        # collated beforehand, per shard
        self.prepared = {kind: [] for kind in specs}
        self.texts = []
        for kind in specs:
            for task in self.tasks[kind]:
                meta, enc, ranges, _ = self.computers[kind].prepare(task)
                batches = []
                for a, b in ranges:
                    part = enc.slice(a, b)
                    for rows, length in plan_batches(part.lengths, token_budget, max_length):
                        batches.append((collate(part, rows, length, self.model.pad_id), int(part.lengths[rows].sum())))
                self.prepared[kind].append(batches)
                if kind == "logits":
                    self.texts.append(meta.column("text_a").to_pylist())
        self.padded_fraction = sum(
            int(b["attention_mask"].numel()) for s in self.prepared["hidden"] for b, _ in s
        ) / max(1, sum(r for s in self.prepared["hidden"] for _, r in s))

    def run(self, name: str, idx: list[int]) -> int:
        kind = "hidden" if "hidden" in name else "logits"
        if name.startswith("e2e"):
            return sum(r.tokens for r in self.computers[kind].compute_many([self.tasks[kind][i] for i in idx]))
        if name.startswith("model-only"):
            m, total = self.computers[kind].model, 0
            for i in idx:
                for batch, real in self.prepared[kind][i]:
                    result = m.forward(batch, hidden=kind == "hidden", attentions=False)
                    total += real
            if m.device.type == "cuda":
                result.logits.float().cpu()  # wait for the queued kernels
            return total
        if name == "exact":  # untimed: bytes per value of exact float16
            return sum(r.tokens for r in self.exact.compute_many([self.exact_tasks[i] for i in idx]))
        # the plain padded loop: fp32, whatever --dtype says, the baseline a user would write first
        tok, total, model = self.model.tokenizer, 0, self.model
        device = next(model.model.parameters()).device
        with torch.inference_mode():
            for i in idx:
                texts = self.texts[i]
                for k in range(0, len(texts), 32):
                    enc = tok(
                        texts[k : k + 32],
                        padding="max_length",
                        truncation=True,
                        max_length=self.max_length,
                        return_tensors="pt",
                    )
                    model.model(**{key: v.to(device) for key, v in enc.items()}).logits.float().cpu().numpy()
                    total += int(enc["attention_mask"].sum())
        return total


def _serve(init: dict, commands, answers) -> None:
    """A benchmark process: build the worker, then run (name, shard indices) commands until None."""
    try:
        worker = _Worker(**init)
        answers.put(("ready", worker.padded_fraction))
        while (command := commands.get()) is not None:
            name, idx = command
            c0, w0 = time.process_time(), time.perf_counter()
            tokens = worker.run(name, idx)
            answers.put(("done", (tokens, w0, time.perf_counter(), time.process_time() - c0)))
    except BaseException as exc:  # the driver reports it
        import traceback

        answers.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class _Group:
    """``processes`` benchmark processes of ``threads`` torch threads each (a layout of the stage's actors)."""

    def __init__(self, label: str, processes: int, threads: int, init: dict):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # fresh interpreters, as Ray actors are
        self.label, self.threads = label, threads
        self.queues = [(ctx.Queue(), ctx.Queue()) for _ in range(processes)]
        self.procs = [
            ctx.Process(target=_serve, args=({**init, "threads": threads}, q, a), daemon=True) for q, a in self.queues
        ]
        for proc in self.procs:
            proc.start()

    def wait_ready(self) -> list[float]:
        """Each process's padded / real tokens of the batches."""
        return [self._answer(answers) for _, answers in self.queues]

    def _answer(self, answers):
        kind, value = answers.get()
        if kind == "error":
            raise RuntimeError(f"benchmark process ({self.label}) failed: {value}")
        return value

    def run(self, name: str, turn: list[int]) -> tuple[int, float, float]:
        """The turn's shards spread over the processes, all at once: (real tokens, wall s, cpu s)."""
        parts = [turn[i :: len(self.procs)] for i in range(len(self.procs))]
        busy = [(q, a) for (q, a), part in zip(self.queues, parts) if part]
        for (q, _), part in zip(busy, [p for p in parts if p]):
            q.put((name, part))
        done = [self._answer(a) for _, a in busy]
        return (sum(d[0] for d in done), max(d[2] for d in done) - min(d[1] for d in done), sum(d[3] for d in done))

    def close(self) -> None:
        for q, _ in self.queues:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=60)


def bench_model(label: str, model_dir: str, corpus: str, work: Path, args, layers: list[int]) -> dict:
    spec_kw = dict(
        max_length=args.max_length,
        token_budget=args.token_budget,
        device=args.device,
        dtype=args.dtype,
        row_group_bytes=args.row_group_bytes,
    )
    n_shards = len(sh.plan_shards(sh.list_input_files(corpus), args.shard_rows, str(work)))
    out_dirs = {k: str(work / f"{label}-{k}") for k in ("logits", "hidden", "exact")}
    for d in out_dirs.values():
        Path(d).mkdir(parents=True, exist_ok=True)
    init = dict(
        model_dir=model_dir,
        corpus=corpus,
        out_dirs=out_dirs,
        layers=layers,
        spec_kw=spec_kw,
        shard_rows=args.shard_rows,
        max_length=args.max_length,
        token_budget=args.token_budget,
    )
    # the stage's layout of actors for these shards, and one process with every thread (a plain loop's)
    if args.device == "cuda":
        groups = {"stage": _Group("stage", 1, args.threads, init)}
        per_turn = n_shards  # a GPU actor reads ahead and overlaps writes over all its shards
    else:
        actors, threads = cpu_inference_layout(args.threads, n_shards, args.actors, args.actor_threads)
        groups = {"stage": _Group("stage", actors, threads, init)}
        if (actors, threads) != (1, args.threads):
            groups["one"] = _Group("one", 1, args.threads, init)
        per_turn = actors * CPU_SHARDS_PER_CALL
    try:
        ready = [f for g in groups.values() for f in g.wait_ready()]
        names = {
            "e2e logits": "stage",
            "model-only logits": "stage",
            "e2e 5 hidden": "stage",
            "model-only 5 hidden": "stage",
            "padded loop": "stage",
        }
        if "one" in groups:
            names.update(
                {
                    "model-only logits, 1 process": "one",
                    "model-only 5 hidden, 1 process": "one",
                    "padded loop, 1 process": "one",
                }
            )
        layouts = {k: f"{len(g.procs)} x {g.threads}" for k, g in groups.items()}
        turns = [list(range(i, min(n_shards, i + per_turn))) for i in range(0, n_shards, per_turn)]
        for name, group in names.items():  # warm-up (allocator, kernels, page cache), not counted
            if not name.startswith("padded"):
                groups[group].run(name, turns[0])
        contenders = {name: Contender(name) for name in names}
        for r in range(args.repeats):
            # contenders take turns (rotating who goes first), so a burst of load from another
            # process hits all of them alike
            totals = {name: [0, 0.0, 0.0] for name in names}
            for i, idx in enumerate(turns):
                order = list(names)
                order = order[(i + r) % len(order) :] + order[: (i + r) % len(order)]
                for name in order:
                    if name.startswith("padded") and r >= args.padded_repeats:
                        continue
                    tokens, wall, cpu = groups[names[name]].run(name, idx)
                    totals[name][0] += tokens
                    totals[name][1] += wall
                    totals[name][2] += cpu
            for name, (tokens, wall, cpu) in totals.items():
                if tokens:
                    contenders[name].add(tokens, wall, cpu)
                    print(
                        f"    {label} round {r + 1}: {name:<32} {tokens / wall:>9,.0f} real tokens/s "
                        f"(cpu {cpu / wall:.2f})",
                        file=sys.stderr,
                        flush=True,
                    )
        # bytes per stored hidden value: the timed run's shards (the default 7 mantissa bits), then
        # one untimed pass storing exact float16
        groups["stage"].run("exact", list(range(n_shards)))
    finally:
        for g in groups.values():
            g.close()
    width = AutoConfig.from_pretrained(model_dir).hidden_size
    rounded, exact = _hidden_bytes(Path(out_dirs["hidden"]), layers), _hidden_bytes(Path(out_dirs["exact"]), layers)
    values = rounded["tokens"] * width * len(layers)
    e = {k: c.rate for k, c in contenders.items()}
    best = {kind: max(v for k, v in e.items() if k.startswith(f"model-only {kind}")) for kind in ("logits", "5 hidden")}
    padded = max(v for k, v in e.items() if k.startswith("padded"))
    return {
        "model": label,
        "layers": layers,
        "rows": rounded["rows"],
        "real_tokens": rounded["tokens"],
        "layouts": layouts,
        "contender_layout": {k: layouts[g] for k, g in names.items()},
        "tokens_per_s": {k: round(v, 1) for k, v in e.items()},
        "cpu_utilisation": {k: round(c.best[2] / c.best[1], 2) for k, c in contenders.items()},
        "e2e_over_model_logits": e["e2e logits"] / best["logits"],
        "e2e_over_model_hidden": e["e2e 5 hidden"] / best["5 hidden"],
        "e2e_over_model_logits_same_layout": e["e2e logits"] / e["model-only logits"],
        "e2e_over_model_hidden_same_layout": e["e2e 5 hidden"] / e["model-only 5 hidden"],
        "e2e_over_padded": e["e2e logits"] / padded,
        "e2e_hidden_over_padded": e["e2e 5 hidden"] / padded,
        "bytes_per_hidden_value_7bit": rounded["hidden_bytes"] / values,
        "file_bytes_per_hidden_value_7bit": rounded["file_bytes"] / values,
        "bytes_per_hidden_value_exact": exact["hidden_bytes"] / values,
        "padded_fraction": ready[0],
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
            hidden += sum(
                rg.column(c).total_compressed_size
                for c in range(rg.num_columns)
                if rg.column(c).path_in_schema in wanted
            )
    return {"rows": rows, "tokens": tokens, "hidden_bytes": hidden, "file_bytes": sum(p.stat().st_size for p in files)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.teacher", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--models",
        default="minilm,base",
        help="comma list of: minilm (bundled weights), base (BERT-base shape, random from_config)",
    )
    p.add_argument("--rows-minilm", type=int, default=960, help="corpus rows for the MiniLM teacher")
    p.add_argument("--rows-base", type=int, default=480, help="corpus rows for the BERT-base-shaped teacher")
    p.add_argument("--variants", type=int, default=3, help="variants per review sentence")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--token-budget", type=int, default=4096, help="padded tokens per batch")
    p.add_argument("--shard-rows", type=int, default=240, help="rows per shard (contenders alternate by shard)")
    p.add_argument(
        "--row-group-bytes",
        type=int,
        default=8 << 20,
        help="scaled down from the stage's 64 MiB with the corpus, so that a shard has several row groups "
        "as a default 4096-row shard does",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="CPUs to use: the one-process contenders' torch threads, and the CPUs the stage's layout "
        "of actors is planned for",
    )
    p.add_argument("--actors", type=int, default=None, help="the stage's teacher.workers (default: its own choice)")
    p.add_argument(
        "--actor-threads",
        type=int,
        default=None,
        help="the stage's teacher.cpu_threads (default: its own choice, 1 per actor)",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the teacher runs")
    p.add_argument(
        "--dtype",
        choices=["fp32", "bf16"],
        default="fp32",
        help="compute dtype of the end-to-end and model-only runs (the padded loop stays fp32)",
    )
    p.add_argument("--repeats", type=int, default=3, help="rounds; the best round of each contender counts")
    p.add_argument("--padded-repeats", type=int, default=1, help="rounds of the (slow) padded loop")
    p.add_argument("--data", default=str(ROOT / "data/rt-polarity/train.tsv"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(ROOT / ".bench/teacher.json"), help="where to write the figures")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    command = "python -m benchmarks.teacher " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
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

                AutoModelForSequenceClassification.from_pretrained(bundled_model_path(), num_labels=2).save_pretrained(
                    source
                )
                from pipeline.testing import save_tokenizer

                save_tokenizer(source)
                n_rows, n_layers = args.rows_minilm, 6
            elif label == "base":
                source = Path(random_teacher(work / "base", "base", num_labels=2, seed=args.seed))
                n_rows, n_layers = args.rows_base, 12
            else:
                p.error(f"unknown model {label!r}")
            corpus = work / f"corpus-{label}"
            write_augmented(
                corpus,
                [{"text_a": s} for s in sentences(Path(args.data), n_rows, args.variants, args.seed)],
                part_rows=max(1, n_rows // 3),
            )
            print(f"  {label}: {n_rows} rows, {args.threads} torch thread(s)", file=sys.stderr, flush=True)
            results.append(bench_model(label, str(source), str(corpus), work, args, tinybert_layers(n_layers)))
    load_after = os.getloadavg()
    seconds = time.perf_counter() - started

    print(
        f"\nteacher inference benchmark, worker processes standing in for the stage's Ray actors (each runs "
        f"the actor's per-shard function); {args.device}, {args.dtype}, {args.threads} CPU(s), max_length "
        f"{args.max_length}, token budget {args.token_budget}"
    )
    print(f"command: {command}")
    util = min(u for r in results for u in r["cpu_utilisation"].values()) if results else 0.0
    quiet = util >= 0.8 * args.threads or args.device == "cuda"  # on a GPU the host threads mostly wait
    print(
        f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min); "
        f"{os.cpu_count()} CPUs; {seconds:.0f} s"
    )
    print(
        f"machine quiet: {'yes' if quiet else 'NO'} (lowest CPU use of the benchmark processes {util:.2f} of "
        f"{args.threads}{'' if quiet else ': other processes took the cores, rerun when quiet'})"
    )
    header = f"{'model':<8}{'contender':<34}{'processes x threads':>20}{'real tokens/s':>14}{'cpu util':>10}"
    for r in results:
        print(
            f"\n{r['model']} (layers {r['layers']}, {r['rows']} rows, {r['real_tokens']:,} real tokens, "
            f"padded/real tokens in the batches {r['padded_fraction']:.3f}; the stage's layout: "
            f"{r['layouts']['stage']})"
        )
        print(header)
        for k, v in r["tokens_per_s"].items():
            print(f"{r['model']:<8}{k:<34}{r['contender_layout'][k]:>20}{v:>14,.1f}{r['cpu_utilisation'][k]:>10.2f}")
        print(
            f"  e2e / model-only, logits:     {r['e2e_over_model_logits']:.3f}   (target >= 0.85; against the faster "
            f"model-only layout; same layout {r['e2e_over_model_logits_same_layout']:.3f})"
        )
        print(
            f"  e2e / model-only, 5 hidden:   {r['e2e_over_model_hidden']:.3f}   (target >= 0.85; against the faster "
            f"model-only layout; same layout {r['e2e_over_model_hidden_same_layout']:.3f})"
        )
        print(
            f"  e2e logits / padded loop:     {r['e2e_over_padded']:.2f}x  (target >= 3x; against the faster "
            f"padded layout)"
        )
        print(f"  e2e 5 hidden / padded loop:   {r['e2e_hidden_over_padded']:.2f}x")
        print(
            f"  bytes per hidden value:       {r['bytes_per_hidden_value_7bit']:.3f} with 7 mantissa bits, the "
            f"stage's default ({r['file_bytes_per_hidden_value_7bit']:.3f} whole files; target <= 1.4); "
            f"{r['bytes_per_hidden_value_exact']:.3f} exact float16"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps(
            {
                "command": command,
                "load_before": load_before,
                "load_after": load_after,
                "threads": args.threads,
                "quiet": quiet,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
