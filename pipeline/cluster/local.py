"""A multi-node Ray cluster on this machine, for tests and benchmarks (``ray.cluster_utils.Cluster``).

The head node runs the GCS, the dashboard and the job server (bound to 127.0.0.1) and takes no
work (0 CPUs); each worker node is its own raylet, object store and worker processes, so killing
one loses its running tasks, its actors and the objects it stored, as losing a machine would.
Node failures are detected within about a second (health checks every 300 ms) instead of Ray's
default of several seconds.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray._private.node import Node

FAST_FAILURE_DETECTION = {
    "health_check_period_ms": 300,
    "health_check_failure_threshold": 3,
    "health_check_initial_delay_ms": 0,
    "health_check_timeout_ms": 300,
}


def read_ray_address() -> str | None:
    from ray._private.utils import read_ray_address as read

    return read()


def _restore_ray_address(previous: str | None, ours: str) -> None:
    import os

    from ray._private.utils import get_ray_address_file

    path = get_ray_address_file(None)
    if read_ray_address() != ours:
        return
    if previous:
        with open(path, "w") as fh:
            fh.write(previous)
    else:
        os.remove(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """``with LocalCluster(workers=2) as c:`` ... ``c.address`` (GCS), ``c.dashboard_url`` (Ray Jobs)."""

    def __init__(
        self,
        workers: int = 2,
        cpus_per_worker: int = 1,
        object_store_mb: int = 200,
        dashboard: bool = True,
        node_dirs: str | None = None,
    ):
        """``node_dirs``: each worker node gets ``<node_dirs>/node-<k>/`` as its working directory
        and ``.../scratch`` as its scratch folder (``PIPELINE_SCRATCH_DIR``), as separate machines
        have; a file a stage writes there, or anywhere but its outputs, belongs to that node only."""
        from ray.cluster_utils import Cluster

        self.cpus_per_worker, self.object_store = cpus_per_worker, object_store_mb << 20
        self.node_dirs, self._started = node_dirs, 0
        # Every port chosen here: Ray's defaults (6379, 8265, the agent's 52365) collide with any
        # other Ray running on the machine, and the job server then finds no agent on the head.
        head = dict(
            num_cpus=0,
            gcs_server_port=free_port(),
            include_dashboard=dashboard,
            dashboard_agent_listen_port=free_port(),
            object_store_memory=self.object_store,
            _system_config=FAST_FAILURE_DETECTION,
        )
        if dashboard:
            head.update(dashboard_host="127.0.0.1", dashboard_port=free_port())
        previous = read_ray_address()
        self._cluster = Cluster(initialize_head=True, head_node_args=head)
        # Starting a head records its address for plain `ray.init()` on this machine to join; a
        # private test cluster must not catch other programs' drivers: put the record back.
        _restore_ray_address(previous, self._cluster.address)
        self.workers: list[Node] = []
        try:
            for _ in range(workers):
                self.add_worker()
        except BaseException:
            self.shutdown()
            raise

    @property
    def address(self) -> str:
        """The GCS address, for ``ray.init(address=...)`` and ``pipeline run --address``."""
        return self._cluster.address

    @property
    def dashboard_url(self) -> str:
        return f"http://{self._cluster.webui_url}"

    def add_worker(self):
        import os

        self._started += 1
        if not self.node_dirs:
            node = self._cluster.add_node(num_cpus=self.cpus_per_worker, object_store_memory=self.object_store)
        else:  # the node's processes inherit the working directory and the variable
            home = os.path.join(self.node_dirs, f"node-{self._started}")
            os.makedirs(os.path.join(home, "scratch"), exist_ok=True)
            cwd, old = os.getcwd(), os.environ.get("PIPELINE_SCRATCH_DIR")
            os.environ["PIPELINE_SCRATCH_DIR"] = os.path.join(home, "scratch")
            os.chdir(home)
            try:
                node = self._cluster.add_node(num_cpus=self.cpus_per_worker, object_store_memory=self.object_store)
            finally:
                os.chdir(cwd)
                if old is None:
                    os.environ.pop("PIPELINE_SCRATCH_DIR", None)
                else:
                    os.environ["PIPELINE_SCRATCH_DIR"] = old
        self.workers.append(node)
        return node

    def kill_worker(self, node) -> None:
        """SIGKILL every process of a worker node: raylet, object store, workers, actors."""
        self._cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def worker_by_id(self, node_id: str):
        for node in self.workers:
            if node.node_id == node_id:
                return node
        return None

    def wait_for_cpus(self, cpus: int, timeout: float = 60) -> None:
        """Until the cluster's live nodes offer ``cpus`` CPUs."""

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [n for n in self._cluster.global_state.node_table() if n["Alive"]]
            if sum(n["Resources"].get("CPU", 0) for n in alive) == cpus:
                return
            time.sleep(0.1)
        raise TimeoutError(f"the cluster did not reach {cpus} CPUs in {timeout} s")

    def shutdown(self) -> None:
        self._cluster.shutdown()
        self.workers = []

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
