"""The cache reader: validates the manifest and every shard; errors name the shard and the reason."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.cache import CacheError, open_cache
from pipeline.config import parse_config
from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import random_teacher, write_augmented

INPUT = "augmented/train/tang"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A finished cache of 23 rows in 3 shards (layers 0 and 3, attention 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cache")
    model = random_teacher(root / "tiny", "tiny", num_labels=3, seed=2, max_position_embeddings=64)
    cfg = parse_config(
        {
            "name": "t",
            "task": "sst2",
            "seed": 1,
            "output_dir": str(root / "out"),
            "labels": ["a", "b", "c"],
            "inputs": {"train": {"path": "unused.tsv", "columns": {"text_a": "s", "label": "l"}}},
        },
        check_files=False,
    )
    texts = [" ".join(["word"] * (1 + i % 9)) + f" number {i}" for i in range(23)]
    write_augmented(
        root / "out" / INPUT,
        [{"text_a": t, "label": "b", "label_id": 1 if i % 4 else None} for i, t in enumerate(texts)],
    )
    run_teacher(
        cfg,
        TeacherConfig(
            model=model,
            layers=[0, 3],
            attentions=[1],
            max_length=32,
            token_budget=64,
            shard_rows=8,
            cpu_threads=1,
            finetune={"enabled": False},
        ),
        inputs=[INPUT],
        use_ray=False,
    )
    torch.set_num_threads(before)
    return root / "out" / "teacher" / INPUT


@pytest.fixture
def cache_dir(built, tmp_path):
    dest = tmp_path / "cache"
    shutil.copytree(built, dest)
    return dest


def edit_manifest(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_open_and_batches(cache_dir):
    cache = open_cache(str(cache_dir), layers=[0, 3], attentions=[1])
    assert len(cache) == 23 and cache.labels == ["a", "b", "c"] and cache.layers == [0, 3]
    m = cache.manifest
    assert m["teacher"]["weights_sha256"] and m["tokenizer"]["fast"] and m["max_length"] == 32
    assert [s["rows"] for s in m["shards"]] == [8, 8, 7] and all(len(s["sha256"]) == 64 for s in m["shards"])
    assert m["dtypes"]["hidden"] == "float16" and m["config_hash"]
    table = cache.read_table()
    batches = list(cache.iter_torch_batches(batch_size=5))
    assert [b["logits"].shape[0] for b in batches] == [5, 5, 5, 5, 3]
    rows = torch.cat([b["row"] for b in batches])
    assert rows.tolist() == list(range(23))
    b = batches[1]
    lens = b["num_tokens"]
    assert b["hidden_3"].shape == (5, int(lens.max()), 32) and b["attention_1"].shape[:2] == (5, 4)
    assert b["label_id"].tolist() == [1, 1, 1, -100, 1]  # rows 5..9: row 8 has no label
    for j in range(5):
        n = int(lens[j])
        flat = np.asarray(table.column("hidden_3")[5 + j].values.to_numpy(zero_copy_only=False), dtype=np.float32)
        np.testing.assert_array_equal(b["hidden_3"][j, :n].numpy().reshape(-1), flat)
        assert not b["hidden_3"][j, n:].any() and b["attention_mask"][j].sum() == n
        assert b["input_ids"][j, :n].tolist() == table.column("input_ids")[5 + j].as_py()
    shuffled = torch.cat([b["row"] for b in cache.iter_torch_batches(batch_size=4, shuffle=True, seed=3)])
    assert sorted(shuffled.tolist()) == list(range(23)) and shuffled.tolist() != list(range(23))


def test_missing_manifest(cache_dir):
    (cache_dir / "manifest.json").unlink()
    with pytest.raises(CacheError, match="no manifest.json"):
        open_cache(str(cache_dir))


def test_truncated_shard(cache_dir):
    p = cache_dir / "shard-00001.parquet"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 100])
    with pytest.raises(CacheError, match=r"shard shard-00001\.parquet: .*truncated"):
        open_cache(str(cache_dir))
    # even when the manifest's size is wrong too, the footer check catches it
    edit_manifest(cache_dir, lambda m: m["shards"][1].update(bytes=len(data) - 100))
    with pytest.raises(CacheError, match=r"shard shard-00001\.parquet: footer unreadable"):
        open_cache(str(cache_dir), verify="footer")


def test_corrupt_byte(cache_dir):
    p = cache_dir / "shard-00002.parquet"
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the data pages: size and footer still fine
    p.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=r"shard shard-00002\.parquet: SHA-256 .* corrupt"):
        open_cache(str(cache_dir))
    # without the SHA-256 pass, Parquet page checksums catch it on read
    cache = open_cache(str(cache_dir), verify="footer")
    with pytest.raises(CacheError, match=r"shard-00002\.parquet"):
        cache.read_table()


def test_checksum_mismatch_in_manifest(cache_dir):
    edit_manifest(cache_dir, lambda m: m["shards"][0].update(sha256="0" * 64))
    with pytest.raises(CacheError, match=r"shard shard-00000\.parquet: SHA-256 .* does not match"):
        open_cache(str(cache_dir))


def test_missing_layer(cache_dir):
    with pytest.raises(CacheError, match=r"hidden layer\(s\) \[5\] not stored \(stored: \[0, 3\]\)"):
        open_cache(str(cache_dir), layers=[0, 5])
    with pytest.raises(CacheError, match=r"attention layer\(s\) \[2\] not stored"):
        open_cache(str(cache_dir), attentions=[2])
    # a shard that lacks a layer the manifest lists
    p = cache_dir / "shard-00001.parquet"
    pf = pq.ParquetFile(p)
    table = pf.read().drop_columns(["hidden_3"])
    pq.write_table(table.replace_schema_metadata(pf.schema_arrow.metadata), p)
    import hashlib

    edit_manifest(
        cache_dir,
        lambda m: m["shards"][1].update(bytes=p.stat().st_size, sha256=hashlib.sha256(p.read_bytes()).hexdigest()),
    )
    with pytest.raises(CacheError, match=r"shard shard-00001\.parquet: column hidden_3 is missing"):
        open_cache(str(cache_dir))


def test_other_teacher(cache_dir):
    cache = open_cache(str(cache_dir))
    assert open_cache(str(cache_dir), teacher_hash=cache.teacher_hash[:12]).num_rows == 23
    with pytest.raises(CacheError, match="not the expected"):
        open_cache(str(cache_dir), teacher_hash="deadbeef" * 8)
    # a shard written by another teacher (its cache key differs from the manifest's)
    edit_manifest(cache_dir, lambda m: m.update(cache_key="f" * 32))
    with pytest.raises(CacheError, match=r"shard shard-00000\.parquet: written for another teacher"):
        open_cache(str(cache_dir))


def test_missing_shard_and_row_count(cache_dir):
    (cache_dir / "shard-00002.parquet").unlink()
    with pytest.raises(CacheError, match=r"shard shard-00002\.parquet: file is missing"):
        open_cache(str(cache_dir))
