"""Re-runs: ingest and augment skip finished outputs and redo unfinished or outdated ones cleanly."""

import hashlib
import os
from pathlib import Path

import pytest

from pipeline.augment.stage import augmented_dir, run_augment
from pipeline.config import parse_config
from pipeline.ingest.stage import examples_dir, run_ingest
from pipeline.runtime.markers import MARKER

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]


def _job(tmp_path, train, **tang):
    return parse_config(
        {
            "name": "r",
            "task": "sst2",
            "seed": 3,
            "output_dir": str(tmp_path / "out"),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": str(train), "columns": {"text_a": "sentence", "label": "label"}}},
            "ingest": {"chunk_bytes": 1024},
            "augment": {
                "shard_rows": 12,
                "tinybert": {"n_aug": 3, "glove": {"rows": 20000}},
                "tang": {"n_iter": 3, **tang},
            },
        },
        "test",
    )


def _state(directory) -> dict[str, tuple[str, int]]:
    """Every file of a directory: (content hash, modification time)."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(Path(directory).iterdir())
        if p.is_file()
    }


def _content(directory) -> dict[str, str]:
    return {n: h for n, (h, _) in _state(directory).items() if n.endswith(".parquet")}


def test_rerun_skips_finished_and_redoes_unfinished(tmp_path, ray_local):
    lines = (ROOT / "data/rt-polarity/train.tsv").read_text(encoding="utf-8").splitlines()[:61]
    train = tmp_path / "train.tsv"
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = _job(tmp_path, train)
    first_ingest = run_ingest(cfg)["train"]
    first = run_augment(cfg)
    assert not first_ingest.reused and not any(r.get("reused") for r in first.values())
    dirs = {
        "examples": examples_dir(cfg, "train"),
        "tinybert": augmented_dir(cfg, "train", "tinybert"),
        "tang": augmented_dir(cfg, "train", "tang"),
    }
    before = {k: _state(d) for k, d in dirs.items()}
    assert all(MARKER in s for s in before.values())
    assert len([n for n in before["tang"] if n.endswith(".parquet")]) >= 3

    # everything finished: nothing is rewritten
    again_ingest = run_ingest(cfg)["train"]
    again = run_augment(cfg)
    assert again_ingest.reused and again_ingest.kept == first_ingest.kept
    assert all(r["reused"] for r in again.values())
    assert {k: _state(d) for k, d in dirs.items()} == before

    # an interrupted run of tang: marker gone, one task's file missing, a stray file outside the
    # plan and a temporary file: the re-run computes only the missing task and cleans up
    tang = Path(dirs["tang"])
    (tang / MARKER).unlink()
    (tang / "part-00001.parquet").unlink()
    (tang / "part-00099.parquet").write_bytes(b"left over")
    (tang / ".part-00002.parquet.0123abcd.tmp").write_bytes(b"half")
    third = run_augment(cfg)
    assert third[("train", "tinybert")]["reused"] and not third[("train", "tang")].get("reused")
    assert (third[("train", "tang")]["tasks_computed"], third[("train", "tang")]["tasks_reused"]) == (1, 4)
    assert _state(dirs["tinybert"]) == before["tinybert"]
    assert sorted(os.listdir(tang)) == sorted([*before["tang"], "_tasks"])  # stray and temporary files are gone
    assert _content(tang) == {n: h for n, (h, _) in before["tang"].items() if n.endswith(".parquet")}
    after_resume = _state(tang)
    assert {n: s for n, s in after_resume.items() if n != "part-00001.parquet" and n.endswith(".parquet")} == {
        n: s for n, s in before["tang"].items() if n != "part-00001.parquet" and n.endswith(".parquet")
    }  # not rewritten

    # a task marker that does not match its file (the file replaced) redoes that task only
    (tang / MARKER).unlink()
    (tang / "part-00003.parquet").write_bytes(b"not the task's file")
    fourth = run_augment(cfg)[("train", "tang")]
    assert (fourth["tasks_computed"], fourth["tasks_reused"]) == (1, 4)
    assert _content(tang) == {n: h for n, (h, _) in before["tang"].items() if n.endswith(".parquet")}

    # a changed setting redoes only what it decides
    changed = run_augment(_job(tmp_path, train, n_iter=4))
    assert changed[("train", "tinybert")]["reused"] and not changed[("train", "tang")].get("reused")

    # a changed input file redoes the ingest, and then the augmentation of its examples
    train.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    redone = run_ingest(cfg)["train"]
    assert not redone.reused and redone.rows_in == first_ingest.rows_in - 1
    assert (tmp_path / "out" / "rejects" / "train").is_dir()
    after = run_augment(cfg)
    assert not any(r.get("reused") for r in after.values())


def test_file_uri_output_dir(tmp_path, ray_local):
    """Outputs through a pyarrow.fs URI (file://, the code path of s3:// and gs://) equal local ones
    and resume the same way."""
    lines = (ROOT / "data/rt-polarity/train.tsv").read_text(encoding="utf-8").splitlines()[:31]
    train = tmp_path / "train.tsv"
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    local = _job(tmp_path / "local", train)
    uri = parse_config(
        {
            **local.model_dump(mode="json"),
            "output_dir": f"file://{tmp_path}/uri",
            "augment": {**local.augment.model_dump(mode="json"), "methods": ["tang"]},
        },
        "test",
    )
    local = parse_config({**uri.model_dump(mode="json"), "output_dir": str(tmp_path / "local")}, "test")
    for cfg in (local, uri):
        run_ingest(cfg)
        run_augment(cfg)
    assert _content(tmp_path / "uri/examples/train") == _content(tmp_path / "local/examples/train")
    assert _content(tmp_path / "uri/augmented/train/tang") == _content(tmp_path / "local/augmented/train/tang")
    assert run_ingest(uri)["train"].reused and run_augment(uri)[("train", "tang")]["reused"]
