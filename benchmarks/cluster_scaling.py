"""Augmentation throughput on a local multi-node Ray cluster: 1 worker node vs 2 worker nodes.

    python -m benchmarks.cluster_scaling --sentences 2000 --methods tang tinybert

Starts a cluster on this machine (``pipeline.cluster.local``: a head node with no CPUs, worker
nodes of ``--cpus-per-node`` CPUs each, every node its own raylet and object store), ingests the
first N Rotten Tomatoes training sentences once, then runs the augment stage per method on 1 and
then 2 worker nodes (a fresh cluster each), the driver joining as with ``--address``. Prints input
sentences/s, output rows/s, the speed-up and whether the output files are byte-identical. The
time counted is the stage's wall-clock with Ray scheduling included, the best of ``--repeats``
runs on the same cluster (the first also loads the models into fresh worker processes); the
driver (which only plans and gathers metadata: the tasks write the output) runs on the same cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from benchmarks.scaling_common import add_arguments, augment_config, base_job, import_driver_modules, timed_augment


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--cpus-per-node", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="runs per configuration; the best counts")
    args = ap.parse_args(argv)
    import_driver_modules()

    import ray

    from pipeline.cluster.local import LocalCluster
    from pipeline.ingest.stage import run_ingest
    from pipeline.runtime.ray_env import init_ray

    with tempfile.TemporaryDirectory() as tmp:
        base = base_job(args, "cluster-scaling")
        seen: dict[str, dict[int, tuple[float, float]]] = {m: {} for m in args.methods}
        digests: dict[str, set[str]] = {m: set() for m in args.methods}  # every run's output
        for nodes in (1, 2):
            with LocalCluster(workers=nodes, cpus_per_worker=args.cpus_per_node, dashboard=False) as cluster:
                print(f"[cluster-scaling] {init_ray(cluster.address)}", flush=True)
                for method in args.methods:
                    for repeat in range(args.repeats):  # a fresh output each time: nothing to skip
                        out = f"{tmp}/nodes{nodes}-{method}-{repeat}"
                        cfg = augment_config(base, out, method, args.n)
                        if not os.path.exists(f"{tmp}/examples"):
                            run_ingest(cfg)
                            shutil.copytree(f"{out}/examples", f"{tmp}/examples")
                        else:
                            shutil.copytree(f"{tmp}/examples", f"{out}/examples")
                        run = timed_augment(cfg, method)
                        print(
                            f"[cluster-scaling] {method}, {nodes} worker node(s), run {repeat + 1}: "
                            f"{run.seconds:.2f} s",
                            flush=True,
                        )
                        digests[method].add(run.digest)
                        best = seen[method].get(nodes)
                        if best is None or run.sentences_per_s > best[0]:
                            seen[method][nodes] = (run.sentences_per_s, run.rows_per_s)
                ray.shutdown()
        for method in args.methods:
            (s1, r1), (s2, r2) = seen[method][1], seen[method][2]
            print(
                f"\n[cluster-scaling] {method}: 1 worker node {s1:,.1f} sentences/s ({r1:,.0f} rows/s); "
                f"2 worker nodes {s2:,.1f} sentences/s ({r2:,.0f} rows/s); speed-up {s2 / s1:.2f}x; "
                f"identical output in all {2 * args.repeats} runs: {len(digests[method]) == 1}"
            )


if __name__ == "__main__":
    main()
