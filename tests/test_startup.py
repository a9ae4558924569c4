"""Ray is started when a stage first has work for it: a re-run whose outputs are all reused (and
checked against their checksums) does not start it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]


def test_a_reused_run_does_not_start_ray(tmp_path):
    data = ROOT / "data/rt-polarity"
    job = {
        "name": "startup",
        "task": "sst2",
        "seed": 1,
        "output_dir": str(tmp_path / "out"),
        "labels": ["negative", "positive"],
        "inputs": {
            "train": {"path": str(data / "train.tsv"), "columns": {"text_a": "sentence", "label": "label"}, "limit": 40}
        },
        "augment": {"methods": ["tang"], "tang": {"n_iter": 2}},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}

    def run():
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stderr

    first = run()
    assert "[startup] local Ray: " in first  # the first run has work: Ray starts
    part = next((tmp_path / "out/augmented/train/tang").glob("part-*.parquet"))
    original = part.read_bytes()
    second = run()
    assert "local Ray" not in second and "[startup] run finished" in second
    # reuse is still verified: a damaged file is found without Ray, then its task is redone on Ray
    part.write_bytes(original[:-8] + b"XXXXXXXX")
    third = run()
    assert "[startup] local Ray: " in third
    assert part.read_bytes() == original
