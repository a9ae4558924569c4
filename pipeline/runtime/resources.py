"""What a stage's tasks need, declared once and turned into Ray arguments in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    """The claims of one task or actor, and how many run at once.

    ``cpus`` / ``gpus`` are Ray's logical claims of one task (or actor); ``workers`` caps the tasks
    running at once (None: as many as the claims allow), or is the size of the actor pool;
    ``threads`` is how many torch / BLAS threads one of them uses (not a Ray claim); ``actors``: an
    actor pool (a model loaded once per actor) rather than stateless tasks; ``model``: it runs a
    model, so its worker process starts with the pinned numerics (``numerics.py``), also on a
    cluster the driver did not start.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    workers: int | None = None
    threads: int = 1
    actors: bool = False
    model: bool = False

    def ray_options(self) -> dict:
        """For ``ray.remote(...).options(...)`` of a task or an actor."""
        options: dict = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.model:  # Ray merges these variables into the job's own runtime environment
            from .numerics import PINNED_ENV

            options["runtime_env"] = {"env_vars": dict(PINNED_ENV)}
        return options

    def in_flight(self, cluster_cpus: int) -> int:
        """Tasks submitted at once: ``workers``, else twice as many as the cluster's CPUs hold (so
        that a worker that finishes finds the next task already queued)."""
        return self.workers or 2 * max(1, int(cluster_cpus // max(self.cpus, 0.01)))

    def pool_size(self, calls: int) -> int:
        """Actors in a pool for ``calls`` calls: ``workers`` (default one), never more than calls."""
        return max(1, min(self.workers or 1, calls))
