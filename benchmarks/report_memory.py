"""The report's driver memory from 1x to 40x an augmented corpus.

    python -m benchmarks.report_memory                          # Rotten Tomatoes train, x1 x10 x40
    python -m benchmarks.report_memory --scales 1,4 --sentences 2000
    python -m benchmarks.report_memory --checkout /tmp/other    # another checkout's report, same corpora

First the job's real stages run once (``--executor local``): ingest of the train split and both
augmentations at ``--n`` tries (TinyBERT with GloVe neighbours, Tang with the bundled tagger).
Then, for each scale k, an output folder holds that ingest and k copies of every augmented part
file, each copy's ``example_id`` and ``parent_id`` suffixed with its number (so k times the
originals, each with its own real variants; a corpus of 40x Rotten Tomatoes train at 20 tries is
about 16 M rows). ``python -m pipeline report`` runs on each folder in a process of its own,
which reports its peak resident memory (``VmHWM`` of /proc, not ``ru_maxrss``, which Linux carries
over an exec from the parent) and its wall time. Prints per scale: rows, originals, peak RSS, seconds,
and the variants per example the page shows (exact: the same mean at every scale).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("tinybert", "tang")

_REPORT = """
import json, sys, time
started = time.perf_counter()
from pipeline.cli import main
rc = main(["report", *sys.argv[2:]])
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": rc, "peak_rss_mb": hwm / 1024, "wall_s": time.perf_counter() - started}, fh)
sys.exit(rc)
"""


def _job(path: Path, train: Path, sentences: int, out: Path, n: int) -> Path:
    job = {
        "name": "report-memory",
        "task": "sst2",
        "seed": 1,
        "output_dir": str(out),
        "labels": ["negative", "positive"],
        "inputs": {
            "train": {"path": str(train), "columns": {"text_a": "sentence", "label": "label"}, "limit": sentences}
        },
        "augment": {"methods": list(METHODS), "tinybert": {"n_aug": n}, "tang": {"n_iter": n}},
    }
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    return path


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> None:
    proc = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-3000:]}")


def _scaled(base: Path, dest: Path, k: int) -> int:
    """``dest``: ``base``'s ingest and k suffixed copies of its augmented corpora; returns the rows."""
    shutil.copytree(base / "examples", dest / "examples")
    rows = 0
    for method in METHODS:
        src, out = base / "augmented/train" / method, dest / "augmented/train" / method
        out.mkdir(parents=True)
        shutil.copy(src / "_summary.json", out / "_summary.json")
        for part in sorted(src.glob("part-*.parquet")):
            table = pq.read_table(part)
            for c in range(k):
                suffix = pa.scalar(f"~{c}")
                copy = table.set_column(0, "example_id", pc.binary_join_element_wise(table["example_id"], suffix, ""))
                copy = copy.set_column(1, "parent_id", pc.binary_join_element_wise(copy["parent_id"], suffix, ""))
                pq.write_table(copy, out / f"{part.stem}-{c:03d}.parquet")
                rows += copy.num_rows
    return rows


def _report(folder: Path, job: Path, checkout: Path, result: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cmd = [sys.executable, "-c", _REPORT, str(result), str(job), "--output-dir", str(folder)]
    _run(cmd, checkout, env)
    return json.loads(result.read_text())


def _page_figures(page: str) -> list[str]:
    """ "<method> <variants / example>" of each row of the page's row-flow table."""
    flow = page.split("<h3>Augmentation</h3>", 1)[1].split("</table>", 1)[0]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", flow)]
    return [f"{c[1]} {c[-1]}" for c in cells if c]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(ROOT / "data/rt-polarity/train.tsv"))
    ap.add_argument("--sentences", type=int, default=10_233, help="train sentences of the x1 corpus")
    ap.add_argument("--n", type=int, default=20, help="TinyBERT N and Tang n_iter")
    ap.add_argument("--scales", default="1,10,40", help="comma-separated copies of the corpus")
    ap.add_argument("--checkout", default=str(ROOT), help="the checkout whose report runs (default: this one)")
    args = ap.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",")]

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "x1-run"
        job = _job(tmp / "job.yaml", Path(args.input).resolve(), args.sentences, base, args.n)
        for stage in ("ingest", "augment"):
            _run([sys.executable, "-m", "pipeline", stage, str(job), "--executor", "local"], ROOT)
        print(
            f"report of {args.sentences:,} sentences x scale, both methods at {args.n} tries; checkout {args.checkout}"
        )
        print(f"{'scale':>5} {'rows':>12} {'originals':>10} {'peak RSS MB':>12} {'seconds':>8}  variants / example")
        for k in scales:
            folder = tmp / f"x{k}"
            rows = _scaled(base, folder, k)
            got = _report(folder, job, Path(args.checkout), tmp / f"x{k}.json")
            page = (folder / "report.html").read_text(encoding="utf-8")
            originals = k * json.loads((base / "examples/train/_summary.json").read_text())["kept"]
            per = ", ".join(_page_figures(page))
            print(
                f"{k:>5} {rows:>12,} {originals:>10,} {got['peak_rss_mb']:>12,.0f} {got['wall_s']:>8.1f}  {per}",
                flush=True,
            )
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
