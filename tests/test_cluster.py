"""A real multi-node Ray cluster on this machine: a head node (GCS, dashboard, job server on
127.0.0.1, no CPUs) and two worker nodes, each its own raylet, object store and worker processes.

A clean run of a small job is the reference. Then the same job survives a worker node killed
while an augmentation task runs on it and another killed while a teacher shard is being computed
on it, and a driver killed mid-job (SIGKILL) followed by re-runs that skip finished work; each
ends with the reference's output, every row exactly once. Jobs also go through Ray Jobs with
``pipeline submit`` / ``status`` / ``logs`` / ``stop``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import storage
from pipeline.cache import open_cache
from pipeline.cluster.local import LocalCluster
from pipeline.runtime.markers import MARKER
from pipeline.testing import random_teacher

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "rt-polarity"
AUG_TASKS = ("glove_only_task", "tang_task", "tag_task")
TEACHER_INPUTS = ["augmented/train/tang"]
# A teacher heavy enough that a shard takes a moment (4 layers x 256), light enough for 2 cores.
TEACHER_SHAPE = dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024)


def _job(out: Path, model: str) -> dict:
    col = {"text_a": "sentence", "label": "label"}
    return {
        "name": "cluster",
        "task": "sst2",
        "seed": 21,
        "output_dir": str(out),
        "labels": ["negative", "positive"],
        "inputs": {
            "train": {"path": str(DATA / "train.tsv"), "limit": 150, "columns": col},
            "dev": {"path": str(DATA / "dev.tsv"), "limit": 40, "columns": col},
        },
        "ingest": {"chunk_bytes": 4096},  # several example files
        "augment": {
            "methods": ["tinybert", "tang"],
            "shard_rows": 25,  # six tasks per method, on both nodes
            "tinybert": {"mlm": "none", "n_aug": 4, "batch_size": 16, "glove": {"rows": 20000}},
            "tang": {"n_iter": 4, "batch_size": 16},
        },
        "teacher": {
            "model": model,
            "inputs": TEACHER_INPUTS,
            "finetune": {"enabled": False},
            "layers": [0, 4],
            "max_length": 48,
            "shard_rows": 30,
            "cpu_threads": 1,
            "workers": 2,
        },  # many shards: kills land mid-inference
    }


def _write_job(tmp: Path, model: str) -> Path:
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(_job(tmp / "out", model)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cluster(s3_server, tmp_path_factory):
    """Started after the S3 server, so that its nodes see AWS_ENDPOINT_URL; each worker node has
    a working directory and a scratch folder of its own."""
    # Ray Jobs runs `python` from the head node's PATH: this interpreter, as in the Docker image
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{path}"
    try:
        with LocalCluster(workers=2, cpus_per_worker=1, node_dirs=str(tmp_path_factory.mktemp("nodes"))) as c:
            yield c
    finally:
        os.environ["PATH"] = path


@pytest.fixture(scope="module")
def teacher_model(tmp_path_factory):
    return random_teacher(
        tmp_path_factory.mktemp("teacher") / "model", TEACHER_SHAPE, num_labels=2, seed=4, max_position_embeddings=64
    )


class Driver:
    """``python -m pipeline run JOB --address GCS`` in its own process; output kept in files."""

    def __init__(self, job: Path, address: str, tag: str):
        self.log = job.parent / f"driver-{tag}"
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.out, self.err = open(f"{self.log}.out", "w"), open(f"{self.log}.err", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", str(job), "--address", address],
            stdout=self.out,
            stderr=self.err,
            env=env,
            cwd=str(job.parent),
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.out.close()
            self.err.close()

    def output(self) -> str:
        return Path(f"{self.log}.out").read_text() + Path(f"{self.log}.err").read_text()


def _wait_for(what: str, condition, driver: Driver, timeout: float = 180, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if not driver.alive():
            pytest.fail(f"the job ended before {what}:\n{driver.output()[-3000:]}")
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}")


def _state(listing, cluster: LocalCluster, state: str) -> list:
    """Ray's state API ``listing`` (list_tasks, list_actors) in ``state``; [] while it is unavailable,
    as it briefly is right after a node dies."""
    try:
        return listing(
            address=cluster.dashboard_url,
            filters=[("state", "=", state)],
            limit=10_000,
            timeout=10,
            raise_on_missing_output=False,
        )
    except Exception:
        return []


def _running_on_worker(cluster: LocalCluster, names: tuple[str, ...]):
    """A worker node with a running task whose name contains one of ``names``, else None."""
    from ray.util.state import list_tasks

    for task in _state(list_tasks, cluster, "RUNNING"):
        node = cluster.worker_by_id(task.node_id) if any(n in task.name for n in names) else None
        if node is not None:
            return node, task.name
    return None


def _actor_on_worker(cluster: LocalCluster, name: str):
    """A worker node with a live actor whose class name contains ``name``, else None."""
    from ray.util.state import list_actors

    for actor in _state(list_actors, cluster, "ALIVE"):
        node = cluster.worker_by_id(actor.node_id) if name in actor.class_name else None
        if node is not None:
            return node
    return None


def _outputs(out: Path) -> dict:
    """Everything a job produced, comparable across runs: file bytes for ingest / augment,
    Parquet contents for the teacher caches (whose manifests hold creation times)."""
    files = {}
    for pattern in ("examples/*/part-*.parquet", "rejects/*/*.jsonl", "augmented/*/*/part-*.parquet"):
        for p in sorted(out.glob(pattern)):
            files[str(p.relative_to(out))] = hashlib.sha256(p.read_bytes()).hexdigest()
    caches = {name: open_cache(str(out / "teacher" / name)).read_table() for name in TEACHER_INPUTS}
    return {"files": files, "caches": caches}


def _assert_same_output(out: Path, reference: dict) -> None:
    got = _outputs(out)
    assert got["files"] == reference["files"]
    for name, table in reference["caches"].items():
        assert got["caches"][name].equals(table), name
    for d in out.glob("augmented/*/*"):  # every augmented row exactly once
        ids = pq.read_table(d).column("example_id").to_pylist()
        assert len(ids) == len(set(ids)) > 0
    for table in got["caches"].values():  # every input row exactly once, in order
        assert table.column("row").to_pylist() == list(range(table.num_rows))


@pytest.fixture(scope="module")
def reference(cluster, teacher_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    driver = Driver(_write_job(tmp, teacher_model), cluster.address, "clean")
    assert driver.wait() == 0, driver.output()[-5000:]
    out = tmp / "out"
    assert len(list(out.glob("augmented/train/*/part-*.parquet"))) >= 8
    assert len(list(out.glob("teacher/augmented/train/tang/shard-*.parquet"))) >= 5
    return _outputs(out)


@pytest.mark.isolated
def test_submit_status_logs_stop_through_ray_jobs(cluster, tmp_path):
    from pipeline.cli import main

    work = tmp_path / "project"
    work.mkdir()
    lines = (DATA / "dev.tsv").read_text(encoding="utf-8").splitlines()[:31]
    (work / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    job = {
        "name": "submitted",
        "task": "sst2",
        "output_dir": "out/submitted",
        "labels": ["negative", "positive"],
        "inputs": {"train": {"path": "dev.tsv", "columns": {"text_a": "sentence", "label": "label"}}},
    }
    (work / "job.yaml").write_text(yaml.safe_dump(job), encoding="utf-8")
    address = ["--address", cluster.dashboard_url]
    out = tmp_path / "shared-out"

    # a relative output_dir is refused before anything is sent
    assert main(["submit", str(work / "job.yaml"), *address, "--working-dir", str(work)]) == 2

    # submitted from a fresh process, as a user does (this test process may hold a local Ray of its own)
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "submit",
            str(work / "job.yaml"),
            *address,
            "--working-dir",
            str(work),
            "--stage",
            "ingest",
            "--output-dir",
            str(out),
            "--submission-id",
            "kd-ingest-1",
            "--follow",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    summary = yaml.safe_load((out / "examples/train/_summary.json").read_text())
    assert summary["rows_in"] == 30 == summary["kept"] + summary["rejected"]
    assert (out / "examples/train" / MARKER).exists()

    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["status", "kd-ingest-1", *address]) == 0
        assert main(["logs", "kd-ingest-1", *address]) == 0
    text = buf.getvalue()
    assert "SUCCEEDED" in text and "python -m pipeline.cluster.entrypoint ingest job.yaml" in text
    assert "== ingest train ==" in text and "30 in = " in text

    # a second job, stopped while it runs
    assert (
        main(
            [
                "submit",
                str(work / "job.yaml"),
                *address,
                "--working-dir",
                str(work),
                "--output-dir",
                str(tmp_path / "stopped"),
                "--submission-id",
                "kd-stop-1",
            ]
        )
        == 0
    )
    assert main(["stop", "kd-stop-1", *address]) == 0
    assert main(["status", "kd-stop-1", "--wait", *address]) == 1
    from ray.job_submission import JobSubmissionClient

    assert str(JobSubmissionClient(cluster.dashboard_url).get_job_status("kd-stop-1")) == "STOPPED"


def _remote_outputs(out: str) -> dict:
    """:func:`_outputs` of an output folder on S3."""
    files = {
        name: hashlib.sha256(storage.read_bytes(storage.join(out, name))).hexdigest()
        for name, _ in storage.list_files(out, recursive=True)
        if fnmatch.fnmatch(name, "examples/*/part-*.parquet")
        or fnmatch.fnmatch(name, "rejects/*/*.jsonl")
        or fnmatch.fnmatch(name, "augmented/*/*/part-*.parquet")
    }
    caches = {name: open_cache(storage.join(out, "teacher", name)).read_table() for name in TEACHER_INPUTS}
    return {"files": files, "caches": caches}


def test_worker_nodes_killed_during_augment_and_teacher_outputs_on_s3(
    cluster, reference, teacher_model, tmp_path, s3_server
):
    """The cluster's nodes share no output folder: inputs, teacher and outputs are in a bucket, each
    node has its own working directory and scratch folder. Two worker nodes are killed mid-stage;
    the output equals the clean run's on a shared disk, and nothing is written outside the bucket
    but the nodes' own asset caches."""
    s3_server.reset()
    bucket = s3_server.bucket("cluster-jobs")
    job = _job(Path("unused"), storage.join(bucket, "models", "teacher"))
    for split, spec in job["inputs"].items():
        spec["path"] = storage.join(bucket, "data", f"{split}.tsv")
        storage.upload(str(DATA / f"{split}.tsv"), spec["path"])
    storage.upload_tree(teacher_model, job["teacher"]["model"])
    out = job["output_dir"] = storage.join(bucket, "out")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    nodes = Path(cluster.node_dirs or "")
    before = {p for p in nodes.rglob("*")}
    driver = Driver(path, cluster.address, "node-kill")

    def keys(prefix: str) -> list[str]:
        return s3_server.keys("cluster-jobs", f"out/{prefix}")

    # each kill lands while its stage still runs: the condition is checked just before the kill
    # (a check after it would race with the retried tasks, which may finish the stage at once)
    node, _task = _wait_for(
        "an augmentation task runs on a worker node",
        lambda: None if keys("teacher/") or not keys("augmented/") else _running_on_worker(cluster, AUG_TASKS),
        driver,
        poll=0.2,
    )
    cluster.kill_worker(node)
    cluster.add_worker()  # as an autoscaler would replace the lost machine

    # timed by the cache itself (a shard written, the manifest not yet), aimed at a live teacher actor
    cache = "teacher/augmented/train/tang/"
    node = _wait_for(
        "a teacher shard is computed on a worker node",
        lambda: (
            None
            if keys(cache + "manifest.json") or not [k for k in keys(cache) if "/shard-" in k]
            else _actor_on_worker(cluster, "ShardWorker")
        ),
        driver,
        poll=0.05,
    )
    cluster.kill_worker(node)
    cluster.add_worker()

    assert driver.wait() == 0, driver.output()[-5000:]
    got = _remote_outputs(out)
    assert got["files"] == reference["files"]
    for name, table in reference["caches"].items():
        assert got["caches"][name].equals(table), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["job.yaml", *(p.name for p in tmp_path.glob("driver-*"))]
    )
    written = sorted(str(p.relative_to(nodes)) for p in nodes.rglob("*") if p not in before and p.is_file())
    assert all(re.fullmatch(r"node-\d+/scratch/.+", w) for w in written), written  # each node's own scratch
    # beside the fetched teacher, at most the staged uploads of the two killed nodes' processes
    assert len([w for w in written if "/kd-assets/" not in w]) <= 2, written


def test_driver_killed_mid_job_then_resumed(cluster, reference, teacher_model, tmp_path):
    job = _write_job(tmp_path, teacher_model)
    out = tmp_path / "out"
    tang = out / "augmented/train/tang"

    # 1. killed as soon as the TinyBERT output is finished, while Tang augmentation starts
    first = Driver(job, cluster.address, "first")
    _wait_for(
        "TinyBERT output is finished", lambda: (out / "augmented/train/tinybert" / MARKER).exists(), first, poll=0.02
    )
    first.proc.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert (out / "augmented/train/tinybert" / MARKER).exists() and not (tang / MARKER).exists()

    # 2. the same job again, killed once the teacher has finished a shard
    second = Driver(job, cluster.address, "second")
    cache = out / "teacher/augmented/train/tang"
    _wait_for("a teacher shard is written", lambda: list(cache.glob("shard-*.parquet")), second, poll=0.02)
    second.proc.send_signal(signal.SIGKILL)
    assert second.wait() == -signal.SIGKILL
    log = second.output()
    # ingest train, dev; augment tinybert (and Tang's tagging when the first run finished it)
    assert log.count("finished by an earlier run") in (3, 4), log[-4000:]
    assert "== augment train tang ==" in log and (tang / MARKER).exists()  # done this time
    assert not (cache / "manifest.json").exists()
    finished = {p.name: p.stat().st_mtime_ns for p in cache.glob("shard-*.parquet")}

    # 3. once more, to the end: everything finished is skipped
    third = Driver(job, cluster.address, "third")
    assert third.wait() == 0, third.output()[-5000:]
    log = third.output()
    assert log.count("finished by an earlier run") == 4, log[-4000:]
    reused = int(log.split("shards computed / reused")[1].split("/")[1].split()[0])
    assert reused >= len(finished) > 0
    assert {
        n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in cache.glob("shard-*.parquet")) if n in finished
    } == finished  # finished shards were not rewritten
    assert not list(out.glob("augmented/*/*/.*.tmp"))
    _assert_same_output(out, reference)
