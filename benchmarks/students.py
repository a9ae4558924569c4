"""Benchmark: inference speed of a job's teacher and trained students, side by side in one process.

The student stage times each run's test pass in the process that trained it; when runs were
trained in parallel processes those figures are not comparable. This loads the teacher and each
run's first-seed student and times test-split predictions in turn (best of ``--repeats``), with
the same torch threads for all.

    python -m benchmarks.students jobs/rt-polarity.yaml
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from pipeline.cache import open_cache
from pipeline.config import load_config
from pipeline.metrics import accuracy_f1
from pipeline.student.evaluate import predict_bilstm, predict_transformer, read_split
from pipeline.teacher.stage import cache_dir


def _bilstm(folder: str):
    from pipeline.student.bilstm import BiLstmClassifier
    from pipeline.student.words import Vocab

    ckpt = torch.load(os.path.join(folder, "model.pt"), weights_only=True, map_location="cpu")
    st, s = ckpt["state_dict"], ckpt["settings"]
    model = BiLstmClassifier(
        st["embed.weight"].numpy(),
        s["hidden"],
        s["mlp"],
        len(ckpt["labels"]),
        s["dropout"],
        ckpt["pair"],
        s.get("pair_head") == "siamese",
    )
    model.load_state_dict(st)
    vocab = Vocab(ckpt["vocab"])
    return lambda data: predict_bilstm(model, vocab, data, s["max_words"], torch.device("cpu")), model


def _transformer(folder: str, max_length: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    return lambda data: predict_transformer(model, tok, data, torch.device("cpu"), max_length), model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.students", description=__doc__.split("\n")[0])
    p.add_argument("job")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.job, check_files=False)
    sc = cfg.student
    test = read_split(os.path.join(cfg.output_dir, "examples", sc.test_split))
    first = open_cache(cache_dir(cfg, sc.runs[0].data), verify="footer")
    max_length = int(first.manifest["max_length"])
    models = {"teacher": _transformer(first.manifest["teacher"]["path"], max_length)}
    for run in sc.runs:
        folder = os.path.join(cfg.output_dir, "student", f"{run.name}-seed{sc.seeds[0]}")
        models[run.name] = _bilstm(folder) if run.model == "bilstm" else _transformer(folder, max_length)
    print(
        f"{len(test)} test sentences, {args.threads} torch thread(s), best of {args.repeats}; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(f"{'model':<22}{'params':>10}{'sentences/s':>14}{'test accuracy':>15}")
    for name, (predict, model) in models.items():
        predict(test)  # warm-up
        best = 0.0
        for _ in range(args.repeats):
            started = time.perf_counter()
            logits = predict(test)
            best = max(best, len(test) / (time.perf_counter() - started))
        acc = accuracy_f1(logits.argmax(-1), test.labels, logits.shape[1])["accuracy"]
        params = sum(x.numel() for x in model.parameters())
        print(f"{name:<22}{params / 1e6:>9.2f}M{best:>14,.0f}{100 * acc:>14.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
