"""Ray scaling of the augment stage: the same job with 1 and 2 workers, same output.

    python -m benchmarks.augment_scaling --sentences 10233 --methods tang tinybert

Ingests the first N Rotten Tomatoes training sentences once. Then, per method:

- cold: for ``workers: 1`` and then ``workers: 2``, a fresh local Ray and one augment stage run,
  whose new Ray worker processes still have to import and load their models (spaCy, GloVe), as
  for the first stage of a job;
- warm: one fresh local Ray, an untimed run with 2 workers (so that every worker process holds
  the models: Ray may give a 1-worker stage either process), then timed runs with 1 and with 2
  workers, as for every later split or method of a job. Per-run work (GloVe neighbours,
  tagging, writing) is all done again each time.

Each pair of runs is repeated ``--repeats`` times, 1 and 2 workers taking turns to go first (run
to run, the same stage run varies by up to 10% on a small shared VM). Prints the median input
sentences/s and output rows/s of each, the speed-up of the medians and of each pair, and whether
every run's output files are byte-identical. The time counted is the stage's wall-clock with Ray
scheduling and the tasks' writes included (the driver's modules imported beforehand, untimed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from benchmarks.scaling_common import add_arguments, augment_config, base_job, import_driver_modules, timed_augment

PHASES = ("cold", "warm")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--repeats", type=int, default=3, help="pairs of runs (1 and 2 workers) per phase")
    args = ap.parse_args(argv)
    import_driver_modules()

    import ray

    from pipeline.ingest.stage import run_ingest
    from pipeline.runtime.ray_env import init_ray

    with tempfile.TemporaryDirectory() as tmp:
        base = base_job(args, "scaling")
        examples = f"{tmp}/ingest"
        results = {}

        def run(method: str, workers: int, name: str):
            out = f"{tmp}/{method}-w{workers}-{name.split()[0]}-{sum(map(len, results.values()))}"
            os.makedirs(out)
            os.symlink(f"{examples}/examples", f"{out}/examples")
            result = timed_augment(augment_config(base, out, method, args.n, workers), method)
            print(f"[scaling] {method}, {workers} worker(s), {name}: {result.seconds:.2f} s", flush=True)
            results.setdefault((method, workers, name.split()[0]), []).append(result)

        for method in args.methods:
            for r in range(args.repeats):
                for workers in (1, 2) if r % 2 == 0 else (2, 1):  # who goes first alternates
                    print(f"[scaling] {method}, cold: {init_ray(num_cpus=os.cpu_count())}", flush=True)
                    if not os.path.exists(f"{examples}/examples"):
                        run_ingest(augment_config(base, examples, method, args.n))
                    run(method, workers, "cold")
                    ray.shutdown()
            print(f"[scaling] {method}, warm: {init_ray(num_cpus=os.cpu_count())}", flush=True)
            run(method, 2, "warm-up (not counted)")
            for r in range(args.repeats):
                for workers in (1, 2) if r % 2 == 0 else (2, 1):
                    run(method, workers, "warm")
            ray.shutdown()
        print()
        for method in args.methods:
            digests = {t.digest for (m, _, _), runs in results.items() if m == method for t in runs}
            count = sum(len(runs) for (m, _, _), runs in results.items() if m == method)
            for phase in PHASES:
                one, two = results[(method, 1, phase)], results[(method, 2, phase)]
                m1, m2 = (statistics.median(t.sentences_per_s for t in runs) for runs in (one, two))
                rows1, rows2 = (statistics.median(t.rows_per_s for t in runs) for runs in (one, two))
                each = ", ".join(f"{b.sentences_per_s / a.sentences_per_s:.2f}" for a, b in zip(one, two))
                print(
                    f"[scaling] {method} {phase} (median of {len(one)}): 1 worker {m1:,.1f} sentences/s "
                    f"({rows1:,.0f} rows/s); 2 workers {m2:,.1f} sentences/s ({rows2:,.0f} rows/s); "
                    f"speed-up {m2 / m1:.2f}x (pairwise: {each})"
                )
            print(f"[scaling] {method}: identical output in all {count} runs: {len(digests) == 1}")


if __name__ == "__main__":
    main()
