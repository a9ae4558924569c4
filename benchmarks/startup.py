"""Start-up cost of the command line: what a small job pays before and around its work.

    python -m benchmarks.startup                 # jobs/demo.yaml's inputs, 3 repeats
    python -m benchmarks.startup --repeats 5

Each command runs as a user runs it, in a fresh process, timed from the outside (wall seconds,
median of ``--repeats``): importing the CLI, validating a job, starting and stopping a local Ray,
then the ingest and Tang augment stages of jobs/demo.yaml (300 + 200 + 200 rows) with Ray and with
``--executor local`` (no Ray, same files), each into a fresh output folder. The difference between
the two executors of a stage is what Ray's start and its workers' first imports cost on a small
input.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs/demo.yaml")


def _timed(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="kd-startup-"))
    pipeline = [py, "-m", "pipeline"]
    rows: list[tuple[str, list[float]]] = []

    def measure(name: str, make_argv, before=None) -> None:
        times = []
        for i in range(args.repeats):
            if before:
                before(i)
            times.append(_timed(make_argv(i), env))
        rows.append((name, times))
        print(
            f"[startup] {name}: median {statistics.median(times):.2f} s ({', '.join(f'{t:.2f}' for t in times)})",
            flush=True,
        )

    try:
        measure("python -c 'import pipeline.cli'", lambda i: [py, "-c", "import pipeline.cli"])
        measure("pipeline validate", lambda i: [*pipeline, "validate", JOB])
        measure(
            "local Ray start + stop",
            lambda i: [
                py,
                "-c",
                "from pipeline.runtime.ray_env import init_ray; init_ray(); import ray; ray.shutdown()",
            ],
        )
        for executor in ("local", "ray"):
            out = lambda i, e=executor: str(work / f"{e}-{i}")  # noqa: E731
            measure(
                f"pipeline ingest, --executor {executor}",
                lambda i, e=executor, o=out: [*pipeline, "ingest", JOB, "--output-dir", o(i), "--executor", e],
            )
            augment = lambda i, e=executor, o=out: [  # noqa: E731
                *pipeline,
                "augment",
                JOB,
                "--method",
                "tang",
                "--output-dir",
                o(i),
                "--executor",
                e,
            ]
            measure(f"pipeline augment --method tang, --executor {executor}", augment)
            measure(f"the same augment again (reused), --executor {executor}", augment)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| command | median wall s |\n| --- | --- |")
    for name, times in rows:
        print(f"| {name} | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
