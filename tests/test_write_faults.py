"""Write errors: a full disk part-way through a stage, a read-only directory.

Each case must end with a clear error naming the output path and the reason, no partial file
under a final name, everything written before intact, and a re-run that finishes the job with the
output of a clean run.
"""

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import faults
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import storage
from pipeline.augment.stage import augmented_dir, run_augment
from pipeline.cli import main
from pipeline.config import parse_config
from pipeline.ingest.stage import examples_dir, run_ingest
from pipeline.runtime.markers import MARKER

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "rt-polarity" / "train.tsv"


def _job(out: Path, **augment) -> dict:
    return {
        "name": "f",
        "task": "sst2",
        "seed": 7,
        "output_dir": str(out),
        "labels": ["negative", "positive"],
        "inputs": {"train": {"path": str(TRAIN), "limit": 120, "columns": {"text_a": "sentence", "label": "label"}}},
        "ingest": {"chunk_bytes": 4096},
        "augment": {"methods": ["tang"], "shard_rows": 20, "tang": {"n_iter": 4}, **augment},
    }


def _digests(directory) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(directory).iterdir())
        if p.is_file() and p.suffix == ".parquet"
    }


def _assert_no_partial_files(directory):
    names = os.listdir(directory)
    assert not [n for n in names if n.endswith(".tmp")], names
    for name in names:
        if name.endswith(".parquet"):
            pq.ParquetFile(os.path.join(directory, name)).read()  # a whole file, footer included


@pytest.mark.ray
def test_disk_full_during_augment(tmp_path, ray_local, monkeypatch, capsys):
    clean = parse_config(_job(tmp_path / "clean"), "test")
    run_ingest(clean)
    run_augment(clean)
    expected = _digests(augmented_dir(clean, "train", "tang"))
    assert len(expected) == 6  # 120 examples, 20 per task

    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(_job(tmp_path / "out")), encoding="utf-8")
    cfg = parse_config(_job(tmp_path / "out"), "test")
    run_ingest(cfg)
    examples_before = _digests(examples_dir(cfg, "train"))
    out_dir = augmented_dir(cfg, "train", "tang")

    # the disk fills up after the first two tasks' files and 1000 bytes: the third task finds it
    # full (tasks run in this process here, one after the other, so that the fault reaches them)
    space = sum((Path(augmented_dir(clean, "train", "tang")) / n).stat().st_size for n in sorted(expected)[:2]) + 1000
    fs = faults.install(monkeypatch, "/tang/.part-", space=space)
    assert main(["augment", str(job), "--executor", "local"]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write {out_dir}/part-00002.parquet: No space left on device" in err, err
    assert "Traceback" not in err
    assert fs.failures and fs.budget.left == 0

    _assert_no_partial_files(out_dir)
    written = _digests(out_dir)
    assert sorted(written) == ["part-00000.parquet", "part-00001.parquet"]  # the tasks before
    assert written == {n: expected[n] for n in written}
    assert not os.path.exists(os.path.join(out_dir, MARKER))  # unfinished: a re-run resumes it
    assert _digests(examples_dir(cfg, "train")) == examples_before  # the earlier stage is untouched
    stamps = {n: os.stat(os.path.join(out_dir, n)).st_mtime_ns for n in written}

    monkeypatch.undo()
    result = run_augment(cfg)[("train", "tang")]
    assert not result.get("reused") and (result["tasks_reused"], result["tasks_computed"]) == (2, 4)
    assert _digests(out_dir) == expected
    assert {n: os.stat(os.path.join(out_dir, n)).st_mtime_ns for n in written} == stamps  # kept, not rewritten


def test_read_only_output_names_the_path(tmp_path, monkeypatch):
    cfg = parse_config(_job(tmp_path / "out"), "test")
    faults.install(monkeypatch, "/examples/", read_only=True)
    with pytest.raises(storage.OutputError) as info:
        run_ingest(cfg, executor="local")
    assert info.value.errno == errno.EROFS
    assert str(info.value).startswith(
        f"cannot write {os.path.join(cfg.output_dir, 'examples', 'train', 'part-00000.parquet')}: Read-only file system"
    )
    d = examples_dir(cfg, "train")
    assert os.listdir(d) == ["_tasks"] and os.listdir(os.path.join(d, "_tasks")) == []  # nothing under a final name


def test_disk_full_during_teacher_keeps_finished_shards(tmp_path, monkeypatch, torch_one_thread):
    from pipeline.cache import open_cache
    from pipeline.teacher import TeacherConfig
    from pipeline.teacher.stage import run_teacher
    from pipeline.testing import random_teacher, write_augmented

    name = "augmented/train/tang"
    rows = [
        {"example_id": f"e{i}", "text_a": f"a small test sentence number {i}", "label": "positive", "label_id": 1}
        for i in range(40)
    ]
    model = random_teacher(tmp_path / "tiny", "tiny", num_labels=2, seed=3, max_position_embeddings=64)
    tc = TeacherConfig(
        model=model, layers=[0, 3], max_length=32, shard_rows=10, cpu_threads=1, finetune={"enabled": False}
    )
    cfgs = {}
    for which in ("clean", "out"):
        write_augmented(tmp_path / which / name, rows)
        cfgs[which] = parse_config(
            {
                **_job(tmp_path / which),
                "inputs": {"train": {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}},
            },
            "test",
            check_files=False,
        )
    run_teacher(cfgs["clean"], tc, inputs=[name], use_ray=False)
    clean = open_cache(str(tmp_path / "clean/teacher" / name)).read_table()

    cache = tmp_path / "out/teacher" / name
    fs = faults.install(monkeypatch, "shard-00002", space=0)
    with pytest.raises(
        storage.OutputError, match=rf"cannot write {cache}/shard-00002.parquet: No space left on device"
    ):
        run_teacher(cfgs["out"], tc, inputs=[name], use_ray=False)
    assert fs.failures
    _assert_no_partial_files(cache)
    assert sorted(p.name for p in cache.iterdir() if p.is_file()) == ["shard-00000.parquet", "shard-00001.parquet"]
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.is_file()}  # (no manifest)

    monkeypatch.undo()
    again = run_teacher(cfgs["out"], tc, inputs=[name], use_ray=False)["inputs"][name]
    assert (again["shards_reused"], again["shards_computed"]) == (2, 2)
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in cache.iterdir()) if n in stamps} == stamps
    assert open_cache(str(cache)).read_table().equals(clean)


_READ_ONLY_SCRIPT = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from pipeline import storage
    try:
        storage.write_parquet(sys.argv[1] + "/part-00000.parquet", pa.table({"x": list(range(25))}))
    except storage.OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
""")


def test_read_only_directory_for_real(tmp_path):
    """A directory without write permission. Root ignores permissions, so as root the writer runs
    without the capabilities that let it (``setpriv``), as an ordinary user would."""
    prefix = []
    if os.geteuid() == 0:
        import shutil

        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: a read-only directory cannot be enforced")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable"]
    target = tmp_path / "examples"
    target.mkdir()
    (target / "part-00000.parquet").write_bytes(b"written earlier")
    os.chmod(target, 0o555)
    try:
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", _READ_ONLY_SCRIPT, str(target)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert f"error: cannot write {target}/part-00000.parquet: Permission denied" in proc.stderr, proc.stderr
        assert sorted(os.listdir(target)) == ["part-00000.parquet"]
        assert (target / "part-00000.parquet").read_bytes() == b"written earlier"  # nothing lost
    finally:
        os.chmod(target, 0o755)


def test_read_only_output_dir_through_the_cli(tmp_path):
    """`pipeline ingest` with an output folder it may not write to: one line and exit 2, through the
    whole command (the lock, then the stage), as an ordinary user (see above for root)."""
    prefix = []
    if os.geteuid() == 0:
        import shutil

        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: a read-only directory cannot be enforced")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable"]
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\na fine film\tpositive\n", encoding="utf-8")
    job = tmp_path / "job.yaml"
    job.write_text(
        f"name: t\ntask: sst2\noutput_dir: {tmp_path / 'out'}\nlabels: [negative, positive]\n"
        f"inputs:\n  train: {{path: {train}, columns: {{text_a: sentence, label: label}}}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o555)
    try:
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "pipeline", "ingest", str(job), "--executor", "local"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"error: cannot write {out}" in proc.stderr and "Permission denied" in proc.stderr, proc.stderr
        assert os.listdir(out) == []
    finally:
        os.chmod(out, 0o755)
