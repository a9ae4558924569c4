"""Ray scaling of the augment stage: the same job with 1 and 2 workers, same output.

    python -m pipeline.bench.augment_scaling --sentences 2000 --methods tang tinybert

Ingests the first N Rotten Tomatoes training sentences once, then runs the augment stage per
method with ``workers: 1`` and ``workers: 2`` on a local Ray, printing input sentences/s, output
rows/s, the speed-up and whether the output files are byte-identical. The time counted is the
stage's own wall-clock, model loading and Ray scheduling included.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from ..augment.stage import augmented_dir, run_augment
from ..config import parse_config
from ..ingest.stage import run_ingest
from ..ray_env import init_ray

ROOT = Path(__file__).resolve().parents[2]


def _digest(directory: str) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        if name.endswith(".parquet"):
            h.update(Path(directory, name).read_bytes())
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(ROOT / "data/rt-polarity/train.tsv"))
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--methods", nargs="+", default=["tang", "tinybert"], choices=["tang", "tinybert"])
    ap.add_argument("--n", type=int, default=20, help="TinyBERT N and Tang n_iter")
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=None, help="rows per Ray batch (default: the job config's)")
    args = ap.parse_args(argv)

    print(f"[scaling] {init_ray(num_cpus=os.cpu_count())}")
    with tempfile.TemporaryDirectory() as tmp:
        base = {"name": "scaling", "task": "sst2", "seed": 1, "labels": ["negative", "positive"],
                "inputs": {"train": {"path": args.input, "limit": args.sentences,
                                     "columns": {"text_a": "sentence", "label": "label"}}}}
        ingest_cfg = parse_config({**base, "output_dir": f"{tmp}/w1"}, "bench")
        run_ingest(ingest_cfg)
        for method in args.methods:
            seen = {}
            for workers in (1, 2):
                out = f"{tmp}/w{workers}"
                if workers == 2:
                    os.makedirs(out, exist_ok=True)
                    if not os.path.exists(f"{out}/examples"):
                        os.symlink(f"{tmp}/w1/examples", f"{out}/examples")
                m = {"workers": workers, **({"batch_size": args.batch_size} if args.batch_size else {})}
                cfg = parse_config({**base, "output_dir": out, "augment": {
                    "methods": [method], "tinybert": {**m, "n_aug": args.n}, "tang": {**m, "n_iter": args.n}}}, "bench")
                started = time.perf_counter()
                res = run_augment(cfg, num_blocks=args.blocks)[("train", method)]
                seconds = time.perf_counter() - started
                seen[workers] = (res["examples_in"] / seconds, res["rows_out"] / seconds, _digest(augmented_dir(cfg, "train", method)))
            (s1, r1, d1), (s2, r2, d2) = seen[1], seen[2]
            print(f"\n[scaling] {method}: 1 worker {s1:,.1f} sentences/s ({r1:,.0f} rows/s); "
                  f"2 workers {s2:,.1f} sentences/s ({r2:,.0f} rows/s); speed-up {s2 / s1:.2f}x; "
                  f"identical output: {d1 == d2}")


if __name__ == "__main__":
    main()
