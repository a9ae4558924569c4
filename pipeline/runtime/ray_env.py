"""Starting or joining Ray."""

from __future__ import annotations

import logging
import os

_WATCHERS: list = []  # the local Ray's watchers (runtime/reaper.py): their pipes close only when this process ends


def init_ray(address: str | None = None, num_cpus: int | None = None, verbose: bool = False) -> str:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray with all CPUs
    (``address="local"`` or ``RAY_ADDRESS=local`` also ask for a local Ray).

    Workers' own output stays in the Ray logs unless ``verbose``: a task's error reaches the driver
    as an exception anyway, and a driver that relays every worker's lines spends CPU all the while
    (measured: an idle driver 0.0038 CPU-s per second with it, 0.0019 without).

    Returns a one-line description of where the job runs.
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        if address:
            _join(address, verbose)
        else:
            from .ray_auth import quiet_local_default
            from .reaper import children, watch

            quiet_local_default(verbose)
            before = children(os.getpid()) if os.path.isdir("/proc") else set()
            # address="local": always a fresh instance of our own, never a cluster that someone
            # started with `ray start` on the same machine (plain ray.init() would join that one)
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                configure_logging=True,
                log_to_driver=verbose,
            )
            if os.path.isdir("/proc"):  # so that the local Ray dies with this process, even by SIGKILL
                _WATCHERS.append(watch(children(os.getpid()) - before))
    res = ray.cluster_resources()
    where = f"Ray cluster at {address}" if address else "local Ray"
    return f"{where}: {int(res.get('CPU', 0))} CPUs, {int(res.get('GPU', 0))} GPUs, {len(ray.nodes())} node(s)"


_DEFERRED: dict = {}  # how to start Ray when a stage first needs it (defer)


def defer(address: str | None, num_cpus: int | None, verbose: bool, announce=None) -> None:
    """Start Ray only when a stage first has work for it (``ensure``): a re-run whose outputs are
    all reused, or a stage run in process, does not pay Ray's start (about 6 s on 2 cores).
    ``announce`` receives the one-line description of where the job runs."""
    _DEFERRED.clear()
    _DEFERRED.update(address=address, num_cpus=num_cpus, verbose=verbose, announce=announce)


def ensure() -> None:
    """Ray started or joined as ``defer`` said (a local Ray with every CPU when nothing was said)."""
    import ray

    if ray.is_initialized():
        return
    where = init_ray(_DEFERRED.get("address"), _DEFERRED.get("num_cpus"), _DEFERRED.get("verbose", False))
    if _DEFERRED.get("announce"):
        _DEFERRED["announce"](where)


def deferred() -> bool:
    """Whether ``defer`` said how to start Ray (the CLI does; a library caller may not)."""
    return bool(_DEFERRED)


def started() -> bool:
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def _join(address: str, verbose: bool) -> None:
    import ray
    from ray.exceptions import AuthenticationError

    from .ray_auth import HINT, RayAuthError, refused

    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=verbose)
    except AuthenticationError as exc:
        raise refused(f"the Ray cluster at {address}", exc) from None
    except ConnectionError as exc:  # Ray says no more when the cluster refused our token
        raise RayAuthError(
            f"cannot join the Ray cluster at {address} ({exc}); if it uses token authentication, {HINT}"
        ) from None


def cluster_gpus() -> int:
    import ray

    ensure()
    return int(ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> int:
    import ray

    ensure()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
