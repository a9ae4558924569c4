"""What the two augmentation scaling benchmarks share: the job, a timed stage run, the digest."""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--input", default=str(ROOT / "data/rt-polarity/train.tsv"))
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--methods", nargs="+", default=["tang", "tinybert"], choices=["tang", "tinybert"])
    ap.add_argument("--n", type=int, default=20, help="TinyBERT N and Tang n_iter")


def base_job(args: argparse.Namespace, name: str) -> dict:
    """The job of every run, less its output folder and augment section."""
    return {
        "name": name,
        "task": "sst2",
        "seed": 1,
        "labels": ["negative", "positive"],
        "inputs": {
            "train": {"path": args.input, "limit": args.sentences, "columns": {"text_a": "sentence", "label": "label"}}
        },
    }


def augment_config(base: dict, out: str, method: str, n: int, workers: int | None = None):
    from pipeline.config import parse_config

    m = {"workers": workers} if workers else {}
    return parse_config(
        {
            **base,
            "output_dir": out,
            "augment": {"methods": [method], "tinybert": {**m, "n_aug": n}, "tang": {**m, "n_iter": n}},
        },
        "bench",
    )


@dataclass
class Timed:
    examples: int
    rows: int
    seconds: float
    digest: str

    @property
    def sentences_per_s(self) -> float:
        return self.examples / self.seconds

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def import_driver_modules() -> None:
    """Import what the stage's driver imports (torch with GloVe, spaCy's wrapper) before any timed
    run: else the first timed run alone pays for it in this process, which is not a worker's cost."""
    import importlib

    for module in ("glove", "pos", "stage", "tinybert"):
        importlib.import_module(f"pipeline.augment.{module}")


def timed_augment(cfg, method: str) -> Timed:
    """One augment stage run (models loaded and Ray scheduling included) and its output's digest."""
    from pipeline.augment.stage import augmented_dir, run_augment

    started = time.perf_counter()
    res = run_augment(cfg, [method])[("train", method)]
    seconds = time.perf_counter() - started
    return Timed(res["examples_in"], res["rows_out"], seconds, digest(augmented_dir(cfg, "train", method)))


def digest(directory: str) -> str:
    """SHA-256 over the Parquet files of ``directory``, in name order."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        if name.endswith(".parquet"):
            h.update(Path(directory, name).read_bytes())
    return h.hexdigest()[:16]
