"""What a stage's tasks need, declared once and turned into Ray arguments in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    """The claims of one task or actor, and how many run at once.

    ``cpus`` / ``gpus`` are Ray's logical claims of one task (or actor); ``workers`` caps the tasks
    running at once (None: as many as the claims allow), or is the size of the actor pool;
    ``threads`` is how many torch / BLAS threads one of them uses (not a Ray claim).
    """

    cpus: float = 1.0
    gpus: float = 0.0
    workers: int | None = None
    threads: int = 1
    actors: bool = False  # an actor pool (a model loaded once per actor) rather than stateless tasks

    def ray_remote_options(self) -> dict:
        """For ``ray.remote(...).options(...)`` of one task."""
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}

    def ray_data_options(self) -> dict:
        """For ``Dataset.map_batches``: the claims and the compute strategy."""
        import ray.data

        if self.actors:
            compute = ray.data.ActorPoolStrategy(size=max(1, self.workers or 1))
        else:
            compute = ray.data.TaskPoolStrategy(size=self.workers) if self.workers else None
        return {"num_cpus": self.cpus, "num_gpus": self.gpus, "compute": compute}
