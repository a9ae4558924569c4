"""Write errors: a full disk part-way through a stage, a read-only directory.

Each case must end with a clear error naming the output path and the reason, no partial file
under a final name, everything written before intact, and a re-run that finishes the job with the
output of a clean run.
"""

import errno
import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

import faults
from pipeline import storage
from pipeline.augment.stage import augmented_dir, run_augment
from pipeline.cli import main
from pipeline.completion import MARKER
from pipeline.config import parse_config
from pipeline.ingest.stage import examples_dir, run_ingest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "rt-polarity" / "train.tsv"


def _job(out: Path, **augment) -> dict:
    return {"name": "f", "task": "sst2", "seed": 7, "output_dir": str(out), "labels": ["negative", "positive"],
            "inputs": {"train": {"path": str(TRAIN), "limit": 120, "columns": {"text_a": "sentence", "label": "label"}}},
            "ingest": {"shard_rows": 50},
            "augment": {"methods": ["tang"], "shard_rows": 100, "tang": {"n_iter": 4}, **augment}}


def _digests(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(directory).iterdir())
            if p.is_file() and p.suffix == ".parquet"}


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
    assert len(expected) >= 4

    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(_job(tmp_path / "out")), encoding="utf-8")
    cfg = parse_config(_job(tmp_path / "out"), "test")
    run_ingest(cfg)
    examples_before = _digests(examples_dir(cfg, "train"))
    out_dir = augmented_dir(cfg, "train", "tang")

    # the disk fills up after the first two augmented shards and 1000 bytes. The stage encodes two
    # shards at once, so the second or the third shard is the one that finds the disk full.
    sizes = sorted(expected.items())
    space = sum((Path(augmented_dir(clean, "train", "tang")) / n).stat().st_size for n, _ in sizes[:2]) + 1000
    fs = faults.install(monkeypatch, "/augmented/", space=space)
    assert main(["augment", str(job)]) == 2
    err = capsys.readouterr().err
    failed = re.search(rf"error: cannot write {re.escape(out_dir)}/part-(\d{{5}}).parquet: No space left on device", err)
    assert failed and int(failed.group(1)) in (1, 2), err
    assert fs.failures and fs.budget.left == 0

    _assert_no_partial_files(out_dir)
    written = _digests(out_dir)
    assert sorted(written) == [f"part-{k:05d}.parquet" for k in range(int(failed.group(1)))]  # the shards before
    assert written == {n: expected[n] for n in written}
    assert not os.path.exists(os.path.join(out_dir, MARKER))  # unfinished: a re-run redoes it
    assert _digests(examples_dir(cfg, "train")) == examples_before  # the earlier stage is untouched

    monkeypatch.undo()
    result = run_augment(cfg)[("train", "tang")]
    assert not result.get("reused")
    assert _digests(out_dir) == expected


@pytest.mark.ray
def test_read_only_output_names_the_path(tmp_path, ray_local, monkeypatch):
    cfg = parse_config(_job(tmp_path / "out"), "test")
    faults.install(monkeypatch, "/examples/", read_only=True)
    with pytest.raises(storage.OutputError) as info:
        run_ingest(cfg)
    assert info.value.errno == errno.EROFS
    assert str(info.value).startswith(f"cannot write {os.path.join(cfg.output_dir, 'examples', 'train', 'part-00000.parquet')}: "
                                      "Read-only file system")
    assert os.listdir(examples_dir(cfg, "train")) == []  # nothing under a final name, no temporary file


def test_disk_full_during_teacher_keeps_finished_shards(tmp_path, monkeypatch, torch_one_thread):
    from pipeline.teacher import TeacherConfig, open_cache
    from pipeline.teacher.stage import run_teacher
    from pipeline.teacher.testing import random_teacher, write_augmented

    name = "augmented/train/tang"
    rows = [{"example_id": f"e{i}", "text_a": f"a small test sentence number {i}", "label": "positive", "label_id": 1}
            for i in range(40)]
    model = random_teacher(tmp_path / "tiny", "tiny", num_labels=2, seed=3, max_position_embeddings=64)
    tc = TeacherConfig(model=model, layers=[0, 3], max_length=32, shard_rows=10, cpu_threads=1,
                       finetune={"enabled": False})
    cfgs = {}
    for which in ("clean", "out"):
        write_augmented(tmp_path / which / name, rows)
        cfgs[which] = parse_config({**_job(tmp_path / which), "inputs": {"train": {
            "path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}}}, "test", check_files=False)
    run_teacher(cfgs["clean"], tc, inputs=[name], use_ray=False)
    clean = open_cache(str(tmp_path / "clean/teacher" / name)).read_table()

    cache = tmp_path / "out/teacher" / name
    fs = faults.install(monkeypatch, "shard-00002", space=0)
    with pytest.raises(storage.OutputError, match=rf"cannot write {cache}/shard-00002.parquet: No space left on device"):
        run_teacher(cfgs["out"], tc, inputs=[name], use_ray=False)
    assert fs.failures
    _assert_no_partial_files(cache)
    assert sorted(p.name for p in cache.iterdir()) == ["shard-00000.parquet", "shard-00001.parquet"]  # no manifest
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}

    monkeypatch.undo()
    again = run_teacher(cfgs["out"], tc, inputs=[name], use_ray=False)["inputs"][name]
    assert (again["shards_reused"], again["shards_computed"]) == (2, 2)
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in cache.iterdir()) if n in stamps} == stamps
    assert open_cache(str(cache)).read_table().equals(clean)


_READ_ONLY_SCRIPT = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from pipeline import storage
    writer = storage.ShardWriter(sys.argv[1], pa.schema([("x", pa.int64())]), shard_rows=10)
    try:
        writer.write(pa.table({"x": list(range(25))}))
        writer.close()
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
        proc = subprocess.run([*prefix, sys.executable, "-c", _READ_ONLY_SCRIPT, str(target)], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"error: cannot write {target}/part-00000.parquet: Permission denied" in proc.stderr, proc.stderr
        assert sorted(os.listdir(target)) == ["part-00000.parquet"]
        assert (target / "part-00000.parquet").read_bytes() == b"written earlier"  # nothing lost
    finally:
        os.chmod(target, 0o755)


def _shard_stream(n: int = 9) -> list:
    import pyarrow as pa

    return [pa.table({"x": list(range(i * 37, (i + 1) * 37)), "s": [f"row {j}" for j in range(i * 37, (i + 1) * 37)]})
            for i in range(n)]


def test_background_shard_writes_give_the_same_files(tmp_path):
    tables = _shard_stream()
    results = {}
    for writers in (1, 2, 3):
        writer = storage.ShardWriter(str(tmp_path / f"w{writers}"), tables[0].schema, shard_rows=50, writers=writers)
        for table in tables:
            writer.write(table)
        results[writers] = (writer.close(), _digests(tmp_path / f"w{writers}"))
    assert results[2] == results[3] == results[1]
    assert [s["rows"] for s in results[1][0]] == [50] * 6 + [33]


def test_a_failed_background_write_is_raised_in_shard_order(tmp_path, monkeypatch):
    tables = _shard_stream()
    clean = storage.ShardWriter(str(tmp_path / "clean"), tables[0].schema, shard_rows=50)
    for table in tables:
        clean.write(table)
    clean.close()
    expected = _digests(tmp_path / "clean")

    out = tmp_path / "out"
    fs = faults.install(monkeypatch, "part-00002", space=0)
    writer = storage.ShardWriter(str(out), tables[0].schema, shard_rows=50, writers=2)
    with pytest.raises(storage.OutputError, match=rf"cannot write {out}/part-00002.parquet: No space left on device"):
        for table in tables:
            writer.write(table)
        writer.close()
    assert fs.failures
    assert writer._pool is None  # its threads ended with the failure
    _assert_no_partial_files(out)
    written = _digests(out)
    # the shards before the failed one, whole and right; the next shard, finished in the background
    # meanwhile, is removed again
    assert written == {n: expected[n] for n in ("part-00000.parquet", "part-00001.parquet")}


def test_abort_waits_for_the_shards_in_flight(tmp_path):
    tables = _shard_stream()
    writer = storage.ShardWriter(str(tmp_path), tables[0].schema, shard_rows=50, writers=2)
    for table in tables[:5]:  # 185 rows: three shards handed to the writers, 35 rows pending
        writer.write(table)
    threads = list(writer._pool._threads)
    writer.abort()
    assert threads and not [t for t in threads if t.is_alive()]  # the writer's threads are gone
    _assert_no_partial_files(tmp_path)
    assert sorted(_digests(tmp_path)) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    writer.abort()  # twice is harmless
