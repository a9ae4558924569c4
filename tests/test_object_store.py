"""Object storage as a job's home, against a real S3 API (moto's server on 127.0.0.1, started by
the tests): the demo-shaped job with its inputs and outputs in a bucket equals a local run byte for
byte, a re-run reuses every task, a damaged shard is found and recomputed, and the output folder's
lock holds across runs and processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline import storage
from pipeline.cli import main

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
BUCKET = "kd-jobs"
# files whose bytes hold paths, timings or the host (and the task markers, which hold paths):
# compared by presence only
VOLATILE = (
    *("_summary.json", "_complete.json", "manifest.json", "README.md"),
    *("metrics.json", "finetune_metrics.json", "results.json", "results.md"),  # they hold speeds
)


def demo_job(inputs: str, output_dir: str) -> dict:
    """jobs/demo.yaml made small: 40 / 30 / 30 sentences, fewer tries and epochs."""
    job = yaml.safe_load((ROOT / "jobs/demo.yaml").read_text(encoding="utf-8"))
    for split in ("train", "dev", "test"):
        job["inputs"][split]["path"] = storage.join(inputs, f"{split}.tsv")
        job["inputs"][split].pop("limit", None)
    job["augment"]["tinybert"]["n_aug"] = 2
    job["augment"]["tang"]["n_iter"] = 2
    job["teacher"]["finetune"]["epochs"] = 1
    job["student"]["bilstm"]["epochs"] = 1
    job["output_dir"] = output_dir
    return job


def write_inputs(folder: str) -> None:
    storage.makedirs(folder)
    for split, n in (("train", 41), ("dev", 31), ("test", 31)):
        lines = (ROOT / f"data/rt-polarity/{split}.tsv").read_text(encoding="utf-8").splitlines()[:n]
        storage.write_bytes(storage.join(folder, f"{split}.tsv"), ("\n".join(lines) + "\n").encode())


def tree(folder: str) -> dict[str, bytes | None]:
    """Every file under ``folder`` by relative name: its bytes, or None for a volatile one."""
    return {
        name: None
        if name.rsplit("/", 1)[-1] in VOLATILE or "/_tasks/" in name
        else storage.read_bytes(storage.join(folder, name))
        for name, _ in storage.list_files(folder, recursive=True)
    }


def run_cli(*args: str, env: dict | None = None) -> None:
    """``pipeline ARGS`` in a fresh process: the runs compared byte for byte must not inherit this
    test process's torch settings, which earlier tests may have changed."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, s3_server, ray_local):
    """The job run once on S3 (Ray tasks) and once on a local disk (one process), each in a process
    of its own."""
    s3_server.reset()
    s3_server.bucket(BUCKET)
    tmp = tmp_path_factory.mktemp("object-store")
    remote_inputs, local_inputs = f"s3://{BUCKET}/data", str(tmp / "data")
    write_inputs(remote_inputs)
    write_inputs(local_inputs)
    remote = tmp / "remote.yaml"
    remote.write_text(yaml.safe_dump(demo_job(remote_inputs, f"s3://{BUCKET}/out")), encoding="utf-8")
    local = tmp / "local.yaml"
    local.write_text(yaml.safe_dump(demo_job(local_inputs, str(tmp / "out"))), encoding="utf-8")
    run_cli("run", str(remote))
    run_cli("run", str(local), "--executor", "local")
    return {"remote": remote, "local": local, "local_out": str(tmp / "out"), "tmp": tmp}


def test_demo_job_on_s3_equals_a_local_run(runs, s3_server):
    remote, local = tree(f"s3://{BUCKET}/out"), tree(runs["local_out"])
    assert set(remote) == set(local)
    assert {n for n in remote if n.endswith(".parquet")} >= {
        "examples/train/part-00000.parquet",
        "augmented/train/tinybert/part-00000.parquet",
        "augmented/train/tang/part-00000.parquet",
        "teacher/augmented/train/tinybert/shard-00000.parquet",
    }
    assert {"report.html", "student/results.md", "student/curves.png", "teacher/model/model.safetensors"} <= set(remote)
    differ = sorted(n for n in remote if remote[n] != local[n] and not n.endswith(".html"))
    assert differ == [], [(n, len(remote[n] or b""), len(local[n] or b"")) for n in differ]
    keys = s3_server.keys(BUCKET, "out/")
    assert not [k for k in keys if k.endswith("/") or ".tmp" in k or k.endswith(".pipeline.lock")], keys


def test_rerun_on_s3_reuses_every_task_and_recomputes_a_damaged_shard(runs, capsys):
    capsys.readouterr()
    assert main(["run", str(runs["remote"])]) == 0
    out = capsys.readouterr().out
    computed = re.findall(r"tasks computed / reused +(\d+) /", out)
    assert out.count("finished by an earlier run") == 5 and len(computed) == 3 and set(computed) == {"0"}, out
    shard = f"s3://{BUCKET}/out/teacher/augmented/train/tinybert/shard-00000.parquet"
    good = storage.read_bytes(shard)
    storage.write_bytes(shard, good[: len(good) // 2])  # damaged in the bucket: half the object
    assert main(["teacher", str(runs["remote"]), "--input", "augmented/train/tinybert"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"tasks computed / reused +1 / 0", out), out
    assert storage.read_bytes(shard) == good


def test_a_second_run_on_an_s3_folder_is_refused_and_a_dead_lease_taken_over(runs, s3_server, capsys, monkeypatch):
    out = f"s3://{BUCKET}/out"
    env = {**os.environ, "PIPELINE_LOCK_LEASE_S": "2"}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from pipeline.runtime.lock import output_lock\n"
                f"with output_lock({out!r}, 'pipeline run job.yaml'):\n"
                "    print('held', flush=True); time.sleep(120)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        time.sleep(3)  # longer than the term: only the holder's renewals keep it
        started = time.perf_counter()
        assert main(["ingest", str(runs["remote"])]) == 2
        err = capsys.readouterr().err
        assert f"error: {out} is in use by another run: host " in err and f"pid {holder.pid}" in err, err
        assert "(pipeline run job.yaml)" in err and time.perf_counter() - started < 10
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f"out/{'.pipeline.lock'}" in s3_server.keys(BUCKET, "out/.pipeline")  # a killed holder leaves its lease
    # a holder on another host that stopped renewing: taken over once its term is over
    s3_server.client().put_object(
        Bucket=BUCKET,
        Key="out/.pipeline.lock",
        Body=b'{"host": "node-7", "pid": 1, "started": "then", "command": "pipeline run x", "lease_s": 1}',
    )
    assert main(["ingest", str(runs["remote"])]) == 2
    assert "host node-7, pid 1" in capsys.readouterr().err
    time.sleep(2.5)
    assert main(["ingest", str(runs["remote"])]) == 0
    assert "took over the expired lock of host node-7" in capsys.readouterr().err
    assert s3_server.keys(BUCKET, "out/.pipeline") == []  # released at the end


def test_a_store_without_exclusive_create_fails_closed(tmp_path, capsys):
    from pipeline.runtime.lock import OutputLocked, output_lock

    refused = r"hdfs:// store cannot create a file exclusively.*--unlocked"
    with pytest.raises(OutputLocked, match=refused), output_lock("hdfs://namenode:8020/kd/out"):
        pass
    with output_lock("hdfs://namenode:8020/kd/out", unlocked=True) as path:
        assert path is None


def test_permanent_errors_are_one_line_naming_the_uri(runs, tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(demo_job(f"s3://{BUCKET}/data", "s3://no-such-bucket/out")), encoding="utf-8")
    assert main(["ingest", str(job), "--executor", "local"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: s3://no-such-bucket/out") and "NoSuchBucket" in err and "Traceback" not in err, err
    assert "testing" not in err  # no credential


def test_every_cache_reader_reads_a_cache_in_the_bucket(runs, capsys):
    """open_cache, the PyTorch datasets, the Hugging Face loader and the check: the same rows from
    the bucket as from the local run's cache."""
    import torch
    from torch.utils.data import DataLoader

    from pipeline.cache import CacheDataset, CacheMapDataset, load_cache_dataset, open_cache
    from pipeline.cache.check import main as check

    name = "teacher/examples/dev"
    remote, local = f"s3://{BUCKET}/out/{name}", storage.join(runs["local_out"], name)
    assert open_cache(remote, verify="checksum").read_table().equals(open_cache(local).read_table())
    want = open_cache(local).read_table(columns=["example_id", "row", "logits"]).to_pylist()
    batches = list(DataLoader(CacheDataset(remote, columns=["row", "logits"], batch_size=8), batch_size=None))
    assert torch.cat([b["row"] for b in batches]).tolist() == [r["row"] for r in want]
    logits = torch.cat([b["logits"] for b in batches])
    assert logits.tolist() == [r["logits"] for r in want]
    mapped = CacheMapDataset(remote, columns=["example_id"])
    assert len(mapped) == len(want) and mapped[3].column("example_id")[0].as_py() == want[3]["example_id"]
    ds = load_cache_dataset(remote, cache_dir=str(runs["tmp"] / "hf"))
    assert ds["example_id"] == [r["example_id"] for r in want] and ds.features["hidden_2"].feature.dtype == "float16"
    stream = list(load_cache_dataset(remote, streaming=True))
    assert [r["logits"] for r in stream] == [r["logits"] for r in want]
    capsys.readouterr()
    assert check([remote]) == 0 and '"ok": true' in capsys.readouterr().out
    assert main(["validate", str(runs["remote"])]) == 0


def _job_at(runs, prefix: str, name: str) -> Path:
    """The remote job with its outputs under ``s3://BUCKET/<prefix>``."""
    job = yaml.safe_load(runs["remote"].read_text(encoding="utf-8"))
    job["output_dir"] = f"s3://{BUCKET}/{prefix}"
    path = runs["tmp"] / name
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    return path


def test_a_store_that_throttles_and_drops_connections_still_gives_the_same_outputs(runs, s3_server):
    """503 SlowDown on a fifth of the requests and a tenth of the connections dropped (before or
    after the store answered): retried with backoff, the job ends with a clean run's bytes."""
    from tests.s3_proxy import FaultProxy

    job = _job_at(runs, "out-faults", "faults.yaml")
    with FaultProxy(s3_server.endpoint, fail_rate=0.2, drop_rate=0.1, seed=7) as proxy:
        run_cli("run", str(job), "--executor", "local", env={**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint})
        faults = proxy.stats()["faults"]
    assert faults["slowdown"] > 20 and faults["drop_before"] + faults["drop_after"] > 10, faults
    remote, local = tree(f"s3://{BUCKET}/out-faults"), tree(runs["local_out"])
    assert set(remote) == set(local)
    assert sorted(n for n in remote if remote[n] != local[n] and not n.endswith(".html")) == []


def test_a_run_killed_in_the_middle_of_an_upload_leaves_no_partial_object(runs, s3_server):
    """A run killed (SIGKILL) while an object's bytes are on their way (the fine-tuned teacher's
    weights, a multipart upload slowed to 2 MB/s): nothing appears under that name (the upload stays
    unfinished, for the bucket's lifecycle rule to remove), every object that did appear is whole,
    and the same command then finishes with a clean run's bytes."""
    from tests.s3_proxy import FaultProxy

    job = _job_at(runs, "out-killed", "killed.yaml")
    client = s3_server.client()
    with FaultProxy(s3_server.endpoint, throttle_bytes_per_s=2_000_000) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint}
        run = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", str(job), "--executor", "local"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            uploading: list[str] = []
            while not uploading and time.monotonic() < deadline and run.poll() is None:
                time.sleep(0.05)
                weights = "out-killed/teacher/model/model.safetensors"
                found = client.list_multipart_uploads(Bucket=BUCKET, Prefix=weights).get("Uploads", [])
                uploading = [u["Key"] for u in found]
            assert uploading, "no upload was seen in progress"
            time.sleep(1.0)  # some of its parts are sent (90 MB at 2 MB/s: far from done)
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait()
    keys = s3_server.keys(BUCKET, "out-killed/")
    assert not set(uploading) & set(keys), uploading
    pending = client.list_multipart_uploads(Bucket=BUCKET, Prefix="out-killed/").get("Uploads", [])
    assert {u["Key"] for u in pending} >= set(uploading)
    local = tree(runs["local_out"])
    for key in keys:  # what is there is whole: a finished task's file or marker, byte for byte
        name = key.removeprefix("out-killed/")
        if name.endswith(".parquet"):
            assert storage.read_bytes(f"s3://{BUCKET}/{key}") == local[name], name
    run_cli("run", str(job), "--executor", "local")
    remote = tree(f"s3://{BUCKET}/out-killed")
    assert set(remote) == set(local)
    assert sorted(n for n in remote if remote[n] != local[n] and not n.endswith(".html")) == []
