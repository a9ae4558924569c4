"""A teacher cache as PyTorch tensors and datasets (the one module of the cache package that imports torch).

A cache as a PyTorch ``IterableDataset``, safe across DataLoader workers and DDP ranks:

    from torch.utils.data import DataLoader
    from pipeline.cache import CacheDataset

    ds = CacheDataset("out/demo/teacher/augmented/train/tinybert", batch_size=32, shuffle=True, seed=0)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for batch in DataLoader(ds, batch_size=None, num_workers=2):
            batch["logits"], batch["hidden_3"], batch["attention_mask"]  # [B, C], [B, T, H], [B, T]

The work is cut into units of one Parquet row group each, listed from the shard footers once
when the dataset is made. Each epoch the units are put in an order seeded by (seed, epoch) and
dealt round-robin to the readers: every (DDP rank, DataLoader worker) pair takes every
(world_size × workers)-th unit, so each row is read exactly once per epoch whatever the number of
workers and ranks. A reader opens its files itself, inside its worker process, and yields padded
batches (:func:`to_torch`) of rows from one unit at a time, shuffled within the unit when
``shuffle``. The rank and world size come from ``torch.distributed`` when it is initialised
(``rank`` / ``world_size`` override them). Ranks may get a few rows more or fewer than each other:
under DDP, pad or stop at the shortest rank as your training loop requires.
``hidden_dtype`` (default float32): torch.float16 halves the bytes each worker hands over to the
training process (benchmarks/cache_readers.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .. import storage
from .columns import MLM_IDS, MLM_LOGITS
from .reader import open_cache


def _parquet(path: str) -> pq.ParquetFile:
    filesystem, p = storage.resolve(path)
    return pq.ParquetFile(filesystem.open_input_file(p))


class CacheDataset(IterableDataset):
    def __init__(
        self,
        cache_dir: str,
        columns: Sequence[str] | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        verify: str = "footer",
        hidden_dtype: torch.dtype | None = None,
    ):
        cache = open_cache(cache_dir, verify=verify)
        self.hidden_dtype = hidden_dtype
        self.files = list(cache.files)
        self.hidden_size, self.num_heads = cache.hidden_size, cache.num_heads
        self.columns = None if columns is None else list(dict.fromkeys(["num_tokens", "row", *columns]))
        # (file, row group) units, from the footers: read once here, the data never
        self.units = [(f, g) for f in self.files for g in range(_parquet(f).metadata.num_row_groups)]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Another seeded order for ``shuffle`` (set it in the main process before each epoch)."""
        self.epoch = epoch

    def _reader(self) -> tuple[int, int]:
        """(this reader's index, readers in all) over DDP ranks and DataLoader workers."""
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank = rank if rank is not None else (dist.get_rank() if ready else 0)
            world = world if world is not None else (dist.get_world_size() if ready else 1)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * workers + worker, world * workers

    def my_units(self) -> list[int]:
        """The units (indexes into ``units``) this reader reads this epoch, in order."""
        order = np.arange(len(self.units))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.units))
        index, readers = self._reader()
        return [int(i) for i in order[index::readers]]

    def __iter__(self) -> Iterator[dict]:
        for unit in self.my_units():
            path, group = self.units[unit]
            table = _parquet(path).read_row_group(group, columns=self.columns)
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch, unit])
                table = table.take(rng.permutation(table.num_rows))
            for start in range(0, table.num_rows, self.batch_size):
                yield to_torch(table.slice(start, self.batch_size), self.hidden_size, self.num_heads, self.hidden_dtype)


class CacheMapDataset(Dataset):
    """A small cache as a map-style dataset: the whole table in memory, random access by row.

        ds = CacheMapDataset(cache_dir, columns=["logits", "hidden_3"])
        loader = DataLoader(ds, batch_size=32, shuffle=True, collate_fn=ds.collate)

    ``ds[i]`` is row i as a one-row Arrow table; ``collate`` pads a list of them into a batch of
    tensors (:func:`to_torch`). For caches that do not fit in memory, use :class:`CacheDataset`.
    """

    def __init__(self, cache_dir: str, columns: Sequence[str] | None = None, verify: str = "footer"):
        cache = open_cache(cache_dir, verify=verify)
        self.hidden_size, self.num_heads = cache.hidden_size, cache.num_heads
        wanted = None if columns is None else list(dict.fromkeys(["num_tokens", "row", *columns]))
        self.table = cache.read_table(wanted).combine_chunks()

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, index: int) -> pa.Table:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} of a cache of {len(self)} rows")
        return self.table.slice(index % len(self), 1)

    def collate(self, rows: list[pa.Table]) -> dict:
        return to_torch(pa.concat_tables(rows), self.hidden_size, self.num_heads)


def _flat(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)


def to_torch(table: pa.Table, hidden_size: int, num_heads: int = 0, hidden_dtype=None) -> dict:
    """Cache rows → padded tensors: input_ids / attention_mask / token_type_ids [B, T] (int64),
    logits [B, C] float32, label_id [B] (-100 where unknown), score [B] float32 (NaN where
    unknown; regression), row [B], hidden_<L> [B, T, H] and
    attention_<L> [B, heads, T, T] (``hidden_dtype``, default float32; zeros at padding)."""
    hidden_dtype = hidden_dtype or torch.float32
    n = table.num_rows
    lens = table.column("num_tokens").to_numpy().astype(np.int64)
    T = int(lens.max()) if n else 0
    mask = np.arange(T)[None, :] < lens[:, None]
    out: dict = {"attention_mask": torch.from_numpy(mask.astype(np.int64))}
    for name in table.column_names:
        if name in ("input_ids", "token_type_ids"):
            arr = np.zeros((n, T), dtype=np.int64)
            arr[mask] = _flat(table, name)
            out[name] = torch.from_numpy(arr)
        elif name == "logits":
            values = _flat(table, name).astype(np.float32)
            out[name] = torch.from_numpy(values.reshape(n, -1))
        elif name in ("row", "num_tokens"):
            out[name] = torch.from_numpy(table.column(name).to_numpy().astype(np.int64))
        elif name == "label_id":
            col = table.column(name).combine_chunks()
            out[name] = torch.from_numpy(col.fill_null(-100).to_numpy().astype(np.int64))
        elif name == "score":
            col = table.column(name).combine_chunks()
            out[name] = torch.from_numpy(col.fill_null(float("nan")).to_numpy().astype(np.float32))
        elif name.startswith("hidden_"):
            arr = np.zeros((n, T, hidden_size), dtype=np.float16)
            arr[mask] = _flat(table, name).reshape(-1, hidden_size)
            out[name] = torch.from_numpy(arr).to(hidden_dtype)
        elif name in (MLM_IDS, MLM_LOGITS):  # [B, T, k]; ids -1 and logits -inf at padding
            flat = _flat(table, name)
            k = flat.size // max(1, int(lens.sum())) if n else 0
            fill, dtype = (-1, np.int64) if name == MLM_IDS else (-np.inf, np.float32)
            arr = np.full((n, T, k), fill, dtype=dtype)
            arr[mask] = flat.reshape(-1, k).astype(dtype)
            out[name] = torch.from_numpy(arr)
        elif name.startswith("attention_") and name != "attention_mask":
            arr = np.zeros((n, num_heads, T, T), dtype=np.float16)
            flat = _flat(table, name)
            ends = np.cumsum(num_heads * lens * lens)  # one flat array sliced: no Arrow scalar per row
            for j in range(n):
                k = int(lens[j])
                arr[j, :, :k, :k] = flat[ends[j] - num_heads * k * k : ends[j]].reshape(num_heads, k, k)
            out[name] = torch.from_numpy(arr).to(hidden_dtype)
    return out
