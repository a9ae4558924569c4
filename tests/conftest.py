import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Test clusters live on loopback only. Ray 2.60 turns token authentication on for a Ray started by
# ray.init and records that in os.environ, so nodes and drivers started later from the same test
# process would disagree on it (runtime-env package downloads on worker nodes then fail): one mode
# for the whole session.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """One local Ray instance (2 CPUs) shared by every test that needs Ray; started after the S3
    server, so that its workers see AWS_ENDPOINT_URL."""
    import ray

    from pipeline.runtime.ray_env import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture
def job_dict(tmp_path):
    """A minimal valid job as a dict, with a small TSV train file."""
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\na fine film\tpositive\na dull film\tnegative\n", encoding="utf-8")

    def make(**overrides):
        job = {
            "name": "t",
            "task": "sst2",
            "seed": 1,
            "output_dir": str(tmp_path / "out"),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": str(train), "columns": {"text_a": "sentence", "label": "label"}}},
        }
        job.update(overrides)
        return job

    return make


@pytest.fixture
def torch_one_thread():
    """One torch thread for tests of tiny models; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on a free port of 127.0.0.1 for the whole session; AWS_ENDPOINT_URL and
    dummy credentials set in this process (and so in any Ray it starts afterwards)."""
    from tests.s3 import S3Server, apply_env, restore_env

    server = S3Server()
    old = apply_env(server.env())
    yield server
    restore_env(old)
    server.stop()


@pytest.fixture
def s3(s3_server):
    """The session's S3 server, emptied before the test."""
    s3_server.reset()
    return s3_server


@pytest.fixture(scope="session")
def gcs_server():
    """fake-gcs-server (a GCS JSON API) on a free port of 127.0.0.1 for the whole session;
    STORAGE_EMULATOR_HOST set in this process, so gs:// paths and the gs:// lock use it."""
    from tests.gcs import GcsServer
    from tests.s3 import apply_env, restore_env

    server = GcsServer()
    old = apply_env(server.env())
    yield server
    restore_env(old)
    server.stop()
