"""The driver out of the data path: its own CPU time and peak memory, from 1x to 4x the corpus.

    python -m benchmarks.driver_overhead                     # Rotten Tomatoes train, x1 and x4
    python -m benchmarks.driver_overhead --ingest-rows 1000000 --cluster-sentences 10233

On a local Ray cluster (``pipeline.cluster.local``: a head node without CPUs and one worker node
of ``--cpus`` CPUs), each stage runs as a user runs it, ``python -m pipeline <stage> JOB
--address GCS``, in a driver process of its own that reports its own counters when it ends
(``getrusage(RUSAGE_SELF)``: its user + system CPU seconds, every thread of it, no other
process; ``VmHWM``: its peak resident memory). Prints, for the augment stage with both
methods on the train split and on that split repeated 4 times:

- driver CPU-seconds per million output rows, marginal: (CPU at x4 - CPU at x1) / (rows at x4 -
  rows at x1), so that Python start-up, imports and joining the cluster cancel out (medians of
  ``--repeats`` runs each: the constant part varies by a few tenths of a second run to run);
- driver peak RSS at x1 and x4 and the growth;

- the driver's CPU time while the tasks ran (the runner's count, ``driver_cpu_s`` in each
  ``_summary.json``) per million output rows at x1 and x4: the same cost without the start-up;

the same for ingest (per million input rows, ``--ingest-rows`` against a quarter of it), and then
augment throughput of both methods on 1 and on 2 worker nodes (``benchmarks.cluster_scaling``,
best of 2 runs: the first also starts the workers and loads their models) with whether every
run's output files are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The peak comes from /proc (VmHWM, this process's own memory map), not from ru_maxrss, which Linux
# carries over an exec from the forking parent.
_DRIVER = """
import json, resource, sys, time
from pipeline.cli import main
started = time.perf_counter()
rc = main(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_SELF)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": rc, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": hwm / 1024,
               "wall_s": time.perf_counter() - started}, fh)
sys.exit(rc)
"""


def _corpus(source: Path, path: Path, rows: int) -> None:
    """The first ``rows`` data lines of ``source`` repeated as needed (each copy a line of its own,
    so every example gets its own id), with the header."""
    header, *lines = source.read_text(encoding="utf-8").splitlines()
    out = [header]
    while len(out) - 1 < rows:
        out += lines[: rows - (len(out) - 1)]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _job(path: Path, corpus: Path, out: Path, n: int, shard_rows: int) -> Path:
    job = {
        "name": "driver",
        "task": "sst2",
        "seed": 1,
        "output_dir": str(out),
        "labels": ["negative", "positive"],
        "inputs": {"train": {"path": str(corpus), "columns": {"text_a": "sentence", "label": "label"}}},
        "augment": {
            "methods": ["tinybert", "tang"],
            "shard_rows": shard_rows,
            "tinybert": {"n_aug": n},
            "tang": {"n_iter": n},
        },
    }
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    return path


def _driver(stage: str, job: Path, address: str, report: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(report), stage, str(job), "--address", address],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{proc.stderr[-3000:]}")
    return json.loads(report.read_text())


def _rows_out(out: Path) -> int:
    return sum(
        json.loads((out / f"augmented/train/{m}/_summary.json").read_text())["rows_out"] for m in ("tinybert", "tang")
    )


def _loop_cpu(out: Path) -> float:
    """The driver's CPU time while tasks ran, as the runner recorded it, summed over the augment
    stages and Tang's tagging."""
    paths = [out / "augmented/train/tinybert", out / "augmented/train/tang", out / "work/tang-tags/train"]
    return sum(json.loads((p / "_summary.json").read_text()).get("driver_cpu_s", 0.0) for p in paths)


def _median(runs: list[dict]) -> dict:
    import statistics

    return {k: statistics.median(r[k] for r in runs) for k in ("cpu_s", "peak_rss_mb", "wall_s", "loop_cpu_s")}


def _marginal(small: dict, large: dict, rows_small: int, rows_large: int) -> float:
    return (large["cpu_s"] - small["cpu_s"]) / max(rows_large - rows_small, 1) * 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(ROOT / "data/rt-polarity/train.tsv"))
    ap.add_argument("--sentences", type=int, default=10_233, help="the x1 corpus (x4 is four times as many)")
    ap.add_argument("--n", type=int, default=20, help="TinyBERT N and Tang n_iter")
    ap.add_argument("--shard-rows", type=int, default=1024, help="augment.shard_rows: examples per task")
    ap.add_argument("--ingest-rows", type=int, default=1_000_000)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the worker node")
    ap.add_argument("--repeats", type=int, default=3, help="augment runs per scale (the medians count)")
    ap.add_argument("--cluster-sentences", type=int, default=10_233, help="0: skip the 1 vs 2 node comparison")
    args = ap.parse_args(argv)

    from pipeline.cluster.local import LocalCluster

    source = Path(args.input)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with LocalCluster(workers=1, cpus_per_worker=args.cpus, dashboard=False) as cluster:
            runs: dict[int, list[dict]] = {1: [], 4: []}
            rows_out: dict[int, int] = {}
            for scale in (1, 4):
                _corpus(source, tmp / f"x{scale}.tsv", args.sentences * scale)
            for repeat in range(args.repeats):  # x1 and x4 take turns
                for scale in (1, 4):
                    out = tmp / f"out-x{scale}-{repeat}"
                    job = _job(tmp / f"x{scale}.yaml", tmp / f"x{scale}.tsv", out, args.n, args.shard_rows)
                    _driver("ingest", job, cluster.address, tmp / "r.json")
                    run = _driver("augment", job, cluster.address, tmp / "r.json")
                    rows_out[scale] = _rows_out(out)
                    runs[scale].append({**run, "loop_cpu_s": _loop_cpu(out)})
                    print(
                        f"[driver] augment x{scale}, run {repeat + 1}: {args.sentences * scale:,} sentences -> "
                        f"{rows_out[scale]:,} rows in {run['wall_s']:.1f} s; driver {run['cpu_s']:.2f} CPU-s "
                        f"({runs[scale][-1]['loop_cpu_s']:.2f} while tasks ran), peak RSS "
                        f"{run['peak_rss_mb']:.0f} MB",
                        flush=True,
                    )
            aug = {scale: (_median(runs[scale]), rows_out[scale]) for scale in (1, 4)}
            ing: dict[int, tuple[dict, int]] = {}
            for rows in (args.ingest_rows // 4, args.ingest_rows):
                corpus = tmp / f"ingest-{rows}.tsv"
                _corpus(source, corpus, rows)
                job = _job(tmp / f"ingest-{rows}.yaml", corpus, tmp / f"ingest-{rows}", args.n, args.shard_rows)
                run = _driver("ingest", job, cluster.address, tmp / "r.json")
                ing[rows] = (run, rows)
                print(
                    f"[driver] ingest {rows:,} rows in {run['wall_s']:.1f} s: driver {run['cpu_s']:.2f} CPU-s, "
                    f"peak RSS {run['peak_rss_mb']:.0f} MB",
                    flush=True,
                )

        (a1, r1), (a4, r4) = aug[1], aug[4]
        print(
            f"\n[driver] augment (TinyBERT GloVe-only + Tang, N={args.n}; medians of {args.repeats} runs: driver "
            f"{a1['cpu_s']:.2f} / {a4['cpu_s']:.2f} CPU-s at x1 / x4): marginal driver CPU "
            f"{_marginal(a1, a4, r1, r4):.3f} s per million output rows ({r1:,} -> {r4:,} rows); "
            f"peak RSS {a1['peak_rss_mb']:.0f} MB -> {a4['peak_rss_mb']:.0f} MB "
            f"(+{a4['peak_rss_mb'] - a1['peak_rss_mb']:.0f} MB)"
        )
        print(
            f"[driver] augment: driver CPU while the tasks ran {a1['loop_cpu_s'] / r1 * 1e6:.3f} s per million "
            f"output rows at x1, {a4['loop_cpu_s'] / r4 * 1e6:.3f} at x4, marginal "
            f"{(a4['loop_cpu_s'] - a1['loop_cpu_s']) / max(r4 - r1, 1) * 1e6:.3f} (medians; the runner's own count, "
            f"without the start-up whose run-to-run spread of several tenths of a second swamps the marginal above)"
        )
        (i1, n1), (i4, n4) = ing[args.ingest_rows // 4], ing[args.ingest_rows]
        print(
            f"[driver] ingest: driver CPU {i4['cpu_s'] / n4 * 1e6:.2f} s per million input rows at {n4:,} rows "
            f"(start-up included), marginal {_marginal(i1, i4, n1, n4):.3f} s per million ({n1:,} -> {n4:,}); "
            f"peak RSS {i1['peak_rss_mb']:.0f} MB -> {i4['peak_rss_mb']:.0f} MB "
            f"(+{i4['peak_rss_mb'] - i1['peak_rss_mb']:.0f} MB)",
            flush=True,
        )

    if args.cluster_sentences:
        from benchmarks import cluster_scaling

        print("\n[driver] augment throughput on 1 and 2 worker nodes (1 CPU each):", flush=True)
        cluster_scaling.main(["--sentences", str(args.cluster_sentences), "--n", str(args.n), "--repeats", "2"])


if __name__ == "__main__":
    main()
