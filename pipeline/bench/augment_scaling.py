"""Ray scaling of the augment stage: the same job with 1 and 2 workers, same output.

    python -m pipeline.bench.augment_scaling --sentences 10233 --methods tang tinybert

Ingests the first N Rotten Tomatoes training sentences once. Then, per method and per worker
count (``workers: 1``, ``workers: 2``), it starts a fresh local Ray and runs the augment stage
twice into fresh output folders:

- cold: the first run, in new Ray worker processes that still have to import and load their
  models (spaCy, GloVe), as for the first stage of a job;
- warm: the same stage again in the same Ray, whose worker processes keep their models, as for
  every later split or method of a job. Per-run work (GloVe neighbours, tagging, writing) is
  all done again.

Prints input sentences/s, output rows/s, the 2-worker speed-up of each and whether every run's
output files are byte-identical. The time counted is the stage's wall-clock with Ray
scheduling, the driver's reads and writes included.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from .scaling_common import add_arguments, augment_config, base_job, timed_augment

PHASES = ("cold", "warm")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    args = ap.parse_args(argv)

    import ray

    from ..ingest.stage import run_ingest
    from ..ray_env import init_ray

    with tempfile.TemporaryDirectory() as tmp:
        base = base_job(args, "scaling")
        examples = f"{tmp}/ingest"
        results = {}
        for method in args.methods:
            for workers in (1, 2):
                print(f"[scaling] {method}, {workers} worker(s): {init_ray(num_cpus=os.cpu_count())}", flush=True)
                if not os.path.exists(f"{examples}/examples"):
                    run_ingest(augment_config(base, examples, method, args.n))
                for phase in PHASES:
                    out = f"{tmp}/{method}-w{workers}-{phase}"
                    os.makedirs(out)
                    os.symlink(f"{examples}/examples", f"{out}/examples")
                    run = timed_augment(augment_config(base, out, method, args.n, workers), method, args.blocks)
                    results[(method, workers, phase)] = run
                    print(f"[scaling] {method}, {workers} worker(s), {phase}: {run.seconds:.2f} s", flush=True)
                ray.shutdown()
        print()
        for method in args.methods:
            digests = {results[(method, w, p)].digest for w in (1, 2) for p in PHASES}
            for phase in PHASES:
                one, two = results[(method, 1, phase)], results[(method, 2, phase)]
                print(f"[scaling] {method} {phase}: 1 worker {one.sentences_per_s:,.1f} sentences/s "
                      f"({one.rows_per_s:,.0f} rows/s); 2 workers {two.sentences_per_s:,.1f} sentences/s "
                      f"({two.rows_per_s:,.0f} rows/s); speed-up {two.sentences_per_s / one.sentences_per_s:.2f}x")
            print(f"[scaling] {method}: identical output in all {len(PHASES) * 2} runs: {len(digests) == 1}")


if __name__ == "__main__":
    main()
