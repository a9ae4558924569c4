"""The cache as a torch IterableDataset: every row exactly once per epoch whatever the DataLoader
workers and DDP ranks, the same order for the same seed, another order for another epoch."""

import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.cache import CacheDataset
from pipeline.teacher import TeacherConfig
from pipeline.teacher.stage import run_teacher
from pipeline.testing import cache_job, random_teacher, write_augmented

INPUT = "augmented/train/tang"
ROWS = 60


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """60 rows in 4 shards of several row groups each, hidden layer 2 stored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ds")
    model = random_teacher(root / "tiny", "tiny", num_labels=2, seed=3, max_position_embeddings=64)
    cfg = cache_job(root / "out", ["a", "b"])
    texts = [" ".join(["word"] * (1 + i % 7)) + f" number {i}" for i in range(ROWS)]
    write_augmented(root / "out" / INPUT, [{"text_a": t, "label": "b", "label_id": 1} for t in texts])
    tc = TeacherConfig(
        model=model,
        layers=[2],
        max_length=32,
        token_budget=64,
        shard_rows=16,
        cpu_threads=1,
        row_group_bytes=1 << 10,
        finetune={"enabled": False},
    )
    run_teacher(cfg, tc, inputs=[INPUT], use_ray=False)
    torch.set_num_threads(before)
    return str(root / "out" / "teacher" / INPUT)


def _rows(batches) -> list[int]:
    return [int(r) for b in batches for r in b["row"]]


def test_the_cache_has_many_units(cache_dir):
    ds = CacheDataset(cache_dir)
    assert len(ds.files) == 4 and len(ds.units) > 8  # several row groups per shard
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in ds.files) == ROWS


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_every_row_once_whatever_the_workers(cache_dir, workers):
    ds = CacheDataset(cache_dir, batch_size=4, shuffle=True, seed=5)
    batches = list(DataLoader(ds, batch_size=None, num_workers=workers))
    assert sorted(_rows(batches)) == list(range(ROWS))
    first = batches[0]
    assert first["logits"].shape[1] == 2 and first["hidden_2"].shape[-1] == ds.hidden_size
    assert first["hidden_2"].shape[1] == first["attention_mask"].shape[1]  # padded to the batch's longest


def test_ranks_share_the_rows_without_overlap(cache_dir):
    seen = []
    for rank in range(2):
        ds = CacheDataset(cache_dir, batch_size=4, shuffle=True, seed=5, rank=rank, world_size=2)
        seen.append(_rows(DataLoader(ds, batch_size=None, num_workers=2)))
    assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(ROWS))


def test_same_seed_same_order_other_epoch_other_order(cache_dir):
    def order(seed, epoch, workers):
        ds = CacheDataset(cache_dir, batch_size=4, shuffle=True, seed=seed)
        ds.set_epoch(epoch)
        return _rows(DataLoader(ds, batch_size=None, num_workers=workers))

    assert order(5, 0, 2) == order(5, 0, 2)
    assert order(5, 0, 0) == order(5, 0, 0)
    assert order(5, 1, 2) != order(5, 0, 2) and sorted(order(5, 1, 2)) == list(range(ROWS))
    assert order(6, 0, 2) != order(5, 0, 2)
    plain = CacheDataset(cache_dir, batch_size=7)
    assert _rows(plain) == list(range(ROWS))  # no shuffle: the cache's own order


def test_columns_choose_what_is_read(cache_dir):
    ds = CacheDataset(cache_dir, columns=["logits"], batch_size=8)
    batch = next(iter(ds))
    assert {"logits", "row", "num_tokens"} <= set(batch) and "hidden_2" not in batch


def test_map_style_dataset_for_small_caches(cache_dir):
    from pipeline.cache import CacheMapDataset

    ds = CacheMapDataset(cache_dir, columns=["logits", "hidden_2"])
    assert len(ds) == ROWS and ds[7].column("row").to_pylist() == [7] and ds[-1].column("row").to_pylist() == [59]
    with pytest.raises(IndexError):
        ds[ROWS]
    batches = list(
        DataLoader(ds, batch_size=8, shuffle=True, collate_fn=ds.collate, generator=torch.Generator().manual_seed(0))
    )
    assert sorted(_rows(batches)) == list(range(ROWS))
    assert batches[0]["hidden_2"].shape[0] == 8 and batches[0]["hidden_2"].shape[-1] == ds.hidden_size


def test_ray_data_reads_the_shards(cache_dir, ray_local):
    """For training with Ray Train: Ray Data's own Parquet reader on the shard files."""
    import ray

    ds = CacheDataset(cache_dir)
    data = ray.data.read_parquet(ds.files)
    assert data.count() == ROWS
    batch = data.take_batch(5, batch_format="pyarrow")
    assert {"row", "logits", "hidden_2", "input_ids"} <= set(batch.column_names)
    n = batch.column("num_tokens").to_pylist()[0]
    assert len(batch.column("hidden_2")[0].values) == n * ds.hidden_size
