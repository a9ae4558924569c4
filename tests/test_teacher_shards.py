"""Cache shards: counts add up, exactly-once across crashes and re-runs, plain readers open them."""

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cache import open_cache
from pipeline.cache.card import CARD_NAME
from pipeline.cache.manifest import MANIFEST_NAME
from pipeline.cache.shards import SHARD_RE
from pipeline.config import parse_config
from pipeline.teacher import TeacherConfig
from pipeline.teacher import compute as compute_mod
from pipeline.teacher import shards as sh
from pipeline.teacher.stage import run_teacher
from pipeline.testing import random_teacher, write_augmented, write_examples

# Tiny models: one torch thread (two threads crawl when another process holds the other core).
pytestmark = pytest.mark.usefixtures("torch_one_thread")

N_ROWS = 47
SHARD_ROWS = 10  # 5 shards, the last one of 7 rows; input parts of 20 rows: shards straddle files
INPUT = "augmented/train/tinybert"


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    return random_teacher(tmp_path_factory.mktemp("tiny"), "tiny", num_labels=2, seed=1, max_position_embeddings=64)


def rows(n=N_ROWS):
    words = [
        "a",
        "gripping",
        "and",
        "thoroughly",
        "original",
        "film",
        "that",
        "never",
        "once",
        "lets",
        "its",
        "audience",
        "breathe",
    ]
    return [
        {
            "example_id": f"e{i}",
            "text_a": " ".join(words[: 1 + (i * 7) % len(words)]) + f" {i}",
            "label": "positive" if i % 2 else "negative",
            "label_id": i % 2,
        }
        for i in range(n)
    ]


def make_job(tmp_path, name="out"):
    cfg = parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 1,
            "output_dir": str(tmp_path / name),
            "labels": ["negative", "positive"],
            "inputs": {"train": {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}},
        },
        check_files=False,
    )
    write_augmented(tmp_path / name / INPUT, rows(), part_rows=20)
    return cfg


def teacher(model, **kw):
    # device cpu: a retried shard is recomputed on the CPU below, so the run must be on the CPU too
    base = dict(
        model=model,
        layers=[0, 2],
        max_length=48,
        token_budget=64,
        shard_rows=SHARD_ROWS,
        row_group_bytes=1 << 16,
        cpu_threads=1,
        finetune={"enabled": False},
        device="cpu",
    )
    return TeacherConfig(**{**base, **kw})


def cache_path(tmp_path, name="out"):
    return tmp_path / name / "teacher" / INPUT


def run(cfg, tc):
    return run_teacher(cfg, tc, inputs=[INPUT], use_ray=False)


def count_computed(monkeypatch) -> list[str]:
    """The shards computed from now on, in order."""
    calls, real = [], compute_mod.ShardComputer.start

    def counting(self, task, *args, **kwargs):
        calls.append(task.name)
        return real(self, task, *args, **kwargs)

    monkeypatch.setattr(compute_mod.ShardComputer, "start", counting)
    return calls


@pytest.fixture(params=["cpu", "gpu"])
def shard_plan(request, monkeypatch):
    """Both ways a ShardComputer runs: a CPU's (row group by row group, each written in turn in the
    calling thread) and a GPU's (the whole shard inferred at once, written by writer threads while
    the next shards compute; 3 of them here, as on a machine with 5 CPUs), the latter on this CPU."""
    from pipeline.teacher.model import TeacherModel

    whole = request.param == "gpu"
    monkeypatch.setattr(TeacherModel, "needs_whole_shard", lambda self: whole)
    monkeypatch.setattr(TeacherModel, "places_per_batch", lambda self: not whole)
    monkeypatch.setattr(compute_mod, "gpu_writers", lambda: 3)
    return request.param


def mtimes(path):
    return {p.name: p.stat().st_mtime_ns for p in Path(path).glob("shard-*.parquet")}


def test_plan_shards_fixed_ranges(tmp_path):
    files = [sh.InputFile("a", 20, ""), sh.InputFile("b", 20, ""), sh.InputFile("c", 7, "")]
    tasks = sh.plan_shards(files, 15, str(tmp_path))
    assert [(t.first_row, t.rows) for t in tasks] == [(0, 15), (15, 15), (30, 15), (45, 2)]
    assert tasks[1].sources == (("a", 15, 20), ("b", 0, 10))
    assert sum(t.rows for t in tasks) == 47 and tasks[3].name == "shard-00003.parquet"
    assert sh.row_group_ranges(np.array([5, 5, 5, 20, 1]), 10) == [(0, 2), (2, 3), (3, 4), (4, 5)]


def _listing(folder) -> list[str]:
    """A cache folder's entries, the task markers (``_tasks/``) left out."""
    return sorted(n for n in os.listdir(folder) if n != "_tasks")


def test_counts_add_up_and_rerun_computes_nothing(tmp_path, tiny_teacher, monkeypatch):
    cfg = make_job(tmp_path)
    summary = run(cfg, teacher(tiny_teacher))["inputs"][INPUT]
    cache = open_cache(str(cache_path(tmp_path)))
    assert [s["rows"] for s in cache.manifest["shards"]] == [10, 10, 10, 10, 7]
    assert cache.num_rows == summary["rows"] == N_ROWS
    table = cache.read_table(["row", "example_id", "num_tokens"])
    assert table.column("row").to_pylist() == list(range(N_ROWS))
    assert table.column("example_id").to_pylist() == [r["example_id"] for r in rows()]
    assert cache.manifest["tokens"] == sum(table.column("num_tokens").to_pylist())
    before = mtimes(cache_path(tmp_path))
    calls = count_computed(monkeypatch)
    again = run(cfg, teacher(tiny_teacher))["inputs"][INPUT]
    assert again["shards_computed"] == 0 and again["shards_reused"] == 5 and calls == []
    assert mtimes(cache_path(tmp_path)) == before
    # other stored layers → another cache key → every shard recomputed
    other = run(cfg, teacher(tiny_teacher, layers=[1]))["inputs"][INPUT]
    assert other["shards_computed"] == 5
    assert "hidden_1" in open_cache(str(cache_path(tmp_path)), layers=[1]).read_table().column_names
    # fewer, larger shards: stale shard files are removed
    run(cfg, teacher(tiny_teacher, layers=[1], shard_rows=25))
    assert _listing(cache_path(tmp_path)) == [CARD_NAME, MANIFEST_NAME, "shard-00000.parquet", "shard-00001.parquet"]


def test_crash_mid_write_then_rerun_gives_clean_rows_once(tmp_path, tiny_teacher, monkeypatch, shard_plan):
    tc = teacher(tiny_teacher, row_group_bytes=8000)  # several row groups per shard
    clean_cfg = make_job(tmp_path, "clean")
    run(clean_cfg, tc)
    clean = open_cache(str(cache_path(tmp_path, "clean"))).read_table()

    cfg = make_job(tmp_path)
    real_build = compute_mod.build_table
    groups = []

    def crashing_build(meta, first_row, *args, **kwargs):
        groups.append(first_row)
        if 20 < first_row < 30:  # shard 2's second row group: a crash in the middle of a shard
            raise RuntimeError("injected crash")
        return real_build(meta, first_row, *args, **kwargs)

    monkeypatch.setattr(compute_mod, "build_table", crashing_build)
    with pytest.raises(RuntimeError, match="injected crash"):
        run(cfg, tc)
    assert 20 in groups and len(groups) > 4  # shard 2 had written a row group when it crashed
    out = cache_path(tmp_path)
    names = _listing(out)
    assert MANIFEST_NAME not in names
    assert names == ["shard-00000.parquet", "shard-00001.parquet"]  # no partial shard-00002, no temp file
    # a hard kill leaves a temporary file behind and storage may hand us a truncated shard
    (out / ".shard-00002.parquet.deadbeef.tmp").write_bytes(b"PAR1 half a file")
    good = (out / "shard-00001.parquet").read_bytes()
    (out / "shard-00001.parquet").write_bytes(good[: len(good) // 2])
    kept = mtimes(out)["shard-00000.parquet"]
    monkeypatch.setattr(compute_mod, "build_table", real_build)

    calls = count_computed(monkeypatch)
    summary = run(cfg, tc)["inputs"][INPUT]
    assert calls == ["shard-00001.parquet", "shard-00002.parquet", "shard-00003.parquet", "shard-00004.parquet"]
    assert summary["shards_reused"] == 1 and mtimes(out)["shard-00000.parquet"] == kept
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    table = open_cache(str(out)).read_table()
    assert table.num_rows == N_ROWS == clean.num_rows
    assert table.column("row").to_pylist() == list(range(N_ROWS))  # every row once
    assert table.column("example_id").equals(clean.column("example_id"))
    np.testing.assert_array_equal(
        np.stack(table.column("logits").to_numpy(zero_copy_only=False)),
        np.stack(clean.column("logits").to_numpy(zero_copy_only=False)),
    )
    assert table.column("hidden_2").equals(clean.column("hidden_2"))


def test_inference_error_mid_shard_leaves_finished_shards_only(tmp_path, tiny_teacher, monkeypatch, shard_plan):
    """An error while inferring (with a GPU's plan, the writer of the same shard waits for row groups)
    drops that shard's temporary file; the shards written before stay, and the error reaches the caller."""
    tc = teacher(tiny_teacher, row_group_bytes=8000)
    cfg = make_job(tmp_path)
    real_infer = compute_mod.TeacherModel.infer
    seen = []

    def failing_infer(self, enc):
        seen.append(len(enc))
        if len(seen) == 5:
            raise RuntimeError("injected inference error")
        return real_infer(self, enc)

    monkeypatch.setattr(compute_mod.TeacherModel, "infer", failing_infer)
    with pytest.raises(RuntimeError, match="injected inference error"):
        run(cfg, tc)
    names = _listing(cache_path(tmp_path))
    assert names and all(SHARD_RE.match(n) for n in names), names  # no temporary file
    for name in names:  # whole shards only
        assert pq.ParquetFile(cache_path(tmp_path) / name).metadata.num_rows == SHARD_ROWS
    assert len(names) < 5


def test_plain_readers_and_encodings(tmp_path, tiny_teacher):
    cfg = make_job(tmp_path)
    run(cfg, teacher(tiny_teacher, row_group_bytes=8000))
    shard = cache_path(tmp_path) / "shard-00000.parquet"
    table = pq.read_table(shard)
    for field in table.schema:  # native Arrow types only: no extension types, no pickles
        assert not isinstance(field.type, pa.ExtensionType)
    assert b"ARROW:extension:name" not in str(table.schema.metadata).encode()
    assert table.schema.field("hidden_0").type == pa.list_(pa.float16())
    assert table.schema.field("logits").type == pa.list_(pa.float32(), 2)
    meta = pq.ParquetFile(shard).metadata
    assert meta.num_row_groups > 1 and meta.num_rows == 10  # row groups sized by bytes
    enc = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    for col in ("hidden_0.list.element", "hidden_2.list.element", "logits.list.element"):
        assert enc[col].compression == "ZSTD" and "RLE_DICTIONARY" not in enc[col].encodings
    # float32 logits byte-stream-split (every engine decodes it); float16 plain by default (DuckDB
    # cannot decode byte-stream-split float16), byte-stream-split on request
    assert "BYTE_STREAM_SPLIT" in enc["logits.list.element"].encodings
    assert "BYTE_STREAM_SPLIT" not in enc["hidden_2.list.element"].encodings

    import pandas as pd

    files = sorted(str(p) for p in cache_path(tmp_path).glob("shard-*.parquet"))
    df = pd.read_parquet(files)
    assert len(df) == N_ROWS and df["row"].tolist() == list(range(N_ROWS))
    first = df.iloc[0]
    assert first["hidden_0"].dtype == np.float16 and first["hidden_0"].size == first["num_tokens"] * 32
    assert len(first["logits"]) == 2


def test_examples_input_and_missing_input(tmp_path, tiny_teacher):
    from pipeline.teacher.stage import TeacherError

    cfg = make_job(tmp_path)
    write_examples(tmp_path / "out/examples/dev", rows(9))
    summary = run_teacher(cfg, teacher(tiny_teacher), inputs=["examples/dev"], use_ray=False)["inputs"]["examples/dev"]
    table = open_cache(summary["cache"]).read_table()
    assert summary["rows"] == 9 and "line" in table.column_names and "source" in table.column_names
    with pytest.raises(TeacherError, match="run `pipeline ingest` first"):
        run_teacher(cfg, teacher(tiny_teacher), inputs=["examples/test"], use_ray=False)


def test_a_retried_shard_replaces_itself(tmp_path, tiny_teacher):
    """A task run twice (a Ray retry after the first attempt finished) leaves one whole file, same rows."""
    cfg = make_job(tmp_path)
    run(cfg, teacher(tiny_teacher))
    files = sh.list_input_files(str(tmp_path / "out" / INPUT))
    manifest = open_cache(str(cache_path(tmp_path))).manifest
    tasks = sh.plan_shards(files, SHARD_ROWS, str(cache_path(tmp_path)))
    spec = compute_mod.InferenceSpec(
        model=tiny_teacher,
        cache_key=manifest["cache_key"],
        weights_sha256=manifest["teacher"]["weights_sha256"],
        layers=(0, 2),
        max_length=48,
        token_budget=64,
        device="cpu",
        threads=1,
        row_group_bytes=1 << 16,
    )
    first = pq.read_table(tasks[1].out_path)
    result = compute_mod.ShardComputer(spec).compute(tasks[1])
    assert result.rows == 10 and _listing(cache_path(tmp_path)) == sorted(
        [CARD_NAME, MANIFEST_NAME] + [t.name for t in tasks]
    )
    again = pq.read_table(tasks[1].out_path)
    assert again.column("row").to_pylist() == list(range(10, 20))
    assert again.select(["row", "input_ids", "logits", "hidden_0", "hidden_2"]).equals(
        first.select(["row", "input_ids", "logits", "hidden_0", "hidden_2"])
    )
    assert result.sha256 == manifest["shards"][1]["sha256"]  # deterministic bytes: the manifest still holds
    open_cache(str(cache_path(tmp_path)))


def test_a_damaged_shard_is_computed_again_not_re_blessed(tmp_path, tiny_teacher, monkeypatch):
    """16 bytes flipped in the middle of a finished shard (same size, footer intact): the re-run
    finds its SHA-256 changed, computes that shard again, and the cache reads clean."""
    from pipeline.cache.check import main as check_main

    cfg = make_job(tmp_path)
    run(cfg, teacher(tiny_teacher))
    out = cache_path(tmp_path)
    clean = open_cache(str(out)).read_table()
    shard = out / "shard-00002.parquet"
    data = bytearray(shard.read_bytes())
    for i in range(16):
        data[len(data) // 2 + i] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert check_main([str(out)]) != 0  # the manifest's checksum catches it

    calls = count_computed(monkeypatch)
    summary = run(cfg, teacher(tiny_teacher))["inputs"][INPUT]
    assert calls == ["shard-00002.parquet"] and summary["shards_reused"] == 4
    assert check_main([str(out)]) == 0
    assert open_cache(str(out)).read_table().equals(clean)
