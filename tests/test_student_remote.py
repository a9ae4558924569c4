"""Object stores as first-class paths: ``pipeline init`` on a folder in a bucket, GloVe and teacher
models named by s3:// URI (copied once per node), and every output of the student stage written to
S3 (moto's real S3 server, the ``s3`` fixture)."""

import gzip
import io
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline import assets, storage
from pipeline.cli import main
from pipeline.config import load_config, parse_config
from pipeline.student.stage import run_student
from tests import test_student
from tests.test_glove import WORDS, write_text

# the student tests' finished teacher stage (examples, two caches, a GloVe file), built once here
built = test_student.built


def _upload_tree(local, uri: str) -> list[str]:
    """Every file under the local folder ``local`` copied to ``uri``; their relative names."""
    names = []
    for root, _, files in os.walk(local):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), local).replace(os.sep, "/")
            storage.upload(os.path.join(root, name), storage.join(uri, rel))
            names.append(rel)
    return sorted(names)


@pytest.fixture
def asset_cache(tmp_path, monkeypatch):
    """An empty asset cache for this test: what a node that never fetched anything has."""
    folder = tmp_path / "asset-cache"
    monkeypatch.setenv("PIPELINE_ASSET_CACHE", str(folder))
    return folder


# --- pipeline init --------------------------------------------------------------------------------
def test_init_on_a_bucket_folder_writes_the_local_job(s3, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    pairs = [("how do i cook rice", "how to cook rice", 1), ("what is ai", "who is al", 0)] * 3
    pq.write_table(
        pa.table({k: [r[i] for r in pairs] for i, k in enumerate(["question1", "question2", "is_duplicate"])}),
        data / "train.parquet",
    )
    with gzip.open(data / "validation.tsv.gz", "wt", encoding="utf-8") as fh:
        fh.write("question1\tquestion2\tis_duplicate\na\tb\t0\nc\td\t1\n")
    (data / "test.jsonl").write_text(json.dumps({"question1": "x", "question2": "y"}) + "\n", encoding="utf-8")
    (data / "README.md").write_text("not a split\n", encoding="utf-8")
    (data / "old").mkdir()  # a sub-folder's files are not the folder's
    (data / "old" / "train.tsv").write_text("sentence\tlabel\na\tb\n", encoding="utf-8")
    remote = storage.join(s3.bucket("corpora"), "qqp")
    _upload_tree(data, remote)

    texts = {}
    for name, folder in (("local", str(data)), ("remote", remote)):
        out = tmp_path / f"{name}.yaml"
        assert main(["init", "qqp", "--data", folder, "--out", str(out)]) == 0, capsys.readouterr().err
        texts[name] = out.read_text(encoding="utf-8").replace(folder, "<DATA>")
    assert texts["remote"] == texts["local"]
    cfg = load_config(tmp_path / "remote.yaml")  # its inputs exist: checked on S3
    assert cfg.inputs["train"].path == f"{remote}/train.parquet" and cfg.labels == ["0", "1"]
    assert cfg.inputs["dev"].path == f"{remote}/validation.tsv.gz" and cfg.inputs["test"].columns.label is None

    assert main(["init", "qqp", "--data", storage.join(remote, "missing"), "--out", str(tmp_path / "x.yaml")]) == 2
    assert "not a directory" in capsys.readouterr().err


# --- assets by URI ---------------------------------------------------------------------------------
def _cache_copies(cache) -> list[str]:
    return sorted(n for n in os.listdir(cache) if not n.endswith(".lock"))


def test_glove_by_uri_is_copied_once_and_again_when_changed(s3, tmp_path, asset_cache, job_dict):
    from pipeline.augment.glove import GloveVectors
    from pipeline.augment.tinybert_tasks import TinyBert
    from pipeline.runtime import runner

    vectors = np.random.default_rng(3).normal(size=(len(WORDS), 6)).astype(np.float32)
    local = tmp_path / "glove.txt.gz"  # the copy keeps the name, so the loader still sees a .gz file
    write_text(local, WORDS, vectors, gzip.open)
    uri = storage.join(s3.bucket("assets"), "vectors", "glove.txt.gz")
    storage.upload(str(local), uri)

    cfg = parse_config(job_dict(augment={"tinybert": {"glove": {"path": uri}}}), check_files=False)
    words, matrix = runner.get(TinyBert(cfg, "local").glove_ref())
    expected = GloveVectors.load(local)
    assert words == expected.words == WORDS and np.array_equal(matrix, expected.matrix)

    first = assets.local_copy(uri)
    [key] = _cache_copies(asset_cache)  # the augment's load above made the one copy
    before = os.stat(first)
    assert first == os.path.join(asset_cache, key, "glove.txt.gz")
    assert assets.local_copy(uri) == first and _cache_copies(asset_cache) == [key]
    after = os.stat(first)  # the same file, not downloaded again
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    # a replaced object (of another size: S3's modification times have whole seconds) is copied again
    write_text(local, [*WORDS, "extra"], np.vstack([vectors, vectors[:1]]), gzip.open)
    storage.upload(str(local), uri)
    changed = assets.local_copy(uri)
    assert changed != first and len(_cache_copies(asset_cache)) == 2
    assert GloveVectors.load(changed).words == [*WORDS, "extra"]


# --- the student stage on S3 -----------------------------------------------------------------------
RUNS = ["bilstm-kd-tang", "bert-kd"]  # GloVe + model.pt; the teacher's model + a save_pretrained folder


def _scores(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "sentences_per_s"}  # timings differ between runs


def _untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history]


def test_student_stage_writes_every_output_to_s3(built, s3, tmp_path, asset_cache, torch_one_thread):
    local = tmp_path / "out"
    shutil.copytree(built, local)
    bucket = s3.bucket("student")
    out = storage.join(bucket, "out")
    _upload_tree(built, out)
    # the caches as a teacher stage on another node writes them for a teacher named by URI: the
    # recorded path is that node's copy, absent here
    teacher = storage.join(bucket, "models", "teacher")
    _upload_tree(built.parent / "teacher", teacher)
    for cache in ("examples/train", "augmented/train/tang"):
        path = storage.join(out, "teacher", cache, "manifest.json")
        manifest = storage.read_json(path)
        manifest["teacher"].update(model=teacher, path=str(tmp_path / "elsewhere" / "teacher"))
        storage.write_json(path, manifest)

    spec = test_student._job(local, seeds=[1]).model_dump(mode="json")
    local_result = run_student(parse_config(spec, check_files=False), runs=RUNS)
    spec.update(output_dir=out)
    spec["student"]["bilstm"]["glove"] = storage.join(out, "glove.txt")
    remote_cfg = parse_config(spec, check_files=False)
    remote_result = run_student(remote_cfg, runs=RUNS)

    keys = set(s3.keys("student", "out/student/"))
    for name in ("results.json", "results.md", "curves.png", "bilstm-kd-tang-seed1/model.pt"):
        assert f"out/student/{name}" in keys
    student = local / "student"
    for run in RUNS:  # the same files in each run's folder as a local run writes
        names = {p.name for p in (student / f"{run}-seed1").iterdir()}
        assert {k.rsplit("/", 1)[1] for k in keys if k.startswith(f"out/student/{run}-seed1/")} == names
    assert {"metrics.json", "config.json", "model.safetensors", "tokenizer.json"} <= {
        k.rsplit("/", 1)[1] for k in keys if k.startswith("out/student/bert-kd-seed1/")
    }
    assert not any("/." in k or k.endswith(".tmp") for k in keys)  # no staging files left

    rows = storage.read_json(storage.join(out, "student", "results.json"))["rows"]
    local_rows = json.loads((student / "results.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["teacher", *RUNS]
    assert [_scores(r) for r in rows] == [_scores(r) for r in local_rows]
    for run in RUNS:
        metrics = storage.read_json(storage.join(out, "student", f"{run}-seed1", "metrics.json"))
        assert isinstance(metrics, dict) and metrics["key"] == remote_result["runs"][run][0]["key"]
        mine = local_result["runs"][run][0]
        assert _untimed(metrics["history"]) == _untimed(mine["history"]) and metrics["scores"] == mine["scores"]
    table = storage.read_text(storage.join(out, "student", "results.md"))
    assert all(f"| {run} |" in table for run in RUNS)
    assert storage.read_bytes(storage.join(out, "student", "curves.png"))[:8] == b"\x89PNG\r\n\x1a\n"

    saved = torch.load(
        io.BytesIO(storage.read_bytes(storage.join(out, "student", "bilstm-kd-tang-seed1", "model.pt"))),
        weights_only=True,
    )
    ours = torch.load(student / "bilstm-kd-tang-seed1" / "model.pt", weights_only=True)
    assert saved["vocab"] == ours["vocab"] and saved["state_dict"].keys() == ours["state_dict"].keys()
    assert all(torch.equal(saved["state_dict"][k], ours["state_dict"][k]) for k in ours["state_dict"])
    # the teacher and GloVe came by URI, each copied once into this node's empty cache
    assert len(_cache_copies(asset_cache)) == 2

    again = run_student(remote_cfg, runs=RUNS)  # finished runs are found on S3 and reused
    assert all(r.get("reused") for runs in again["runs"].values() for r in runs)
