"""The teacher cache: its format (shards, manifest, dataset card) and its readers.

    from pipeline.cache import open_cache, CacheDataset, open_ensemble

The teacher stage writes caches through this package; the student stage, the report and other
people's training code read them through it. It depends on no stage. Reading a cache needs only
pyarrow and numpy: torch is imported by ``torch_dataset`` (``CacheDataset``, ``CacheMapDataset``,
``to_torch``, ``TeacherCache.iter_torch_batches``) when one of them is first used, and Hugging Face
``datasets`` by ``hf_dataset.load_cache_dataset`` when it is called.

Modules: ``reader`` (open_cache, TeacherCache, CacheError), ``torch_dataset``, ``hf_dataset``,
``ensemble`` (open_ensemble, combine), ``check`` (``python -m pipeline.cache.check DIR``), ``card``
(the dataset card), ``manifest``, ``columns`` (the rows' columns), ``shards`` (the shard files),
``minilm`` (MiniLM's projections), ``layers`` (which layers are stored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .ensemble import Ensemble, combine, open_ensemble
from .hf_dataset import load_cache_dataset
from .reader import CacheError, TeacherCache, open_cache

if TYPE_CHECKING:
    from .torch_dataset import CacheDataset, CacheMapDataset, to_torch

__all__ = [
    "CacheDataset",
    "CacheError",
    "CacheMapDataset",
    "Ensemble",
    "TeacherCache",
    "combine",
    "load_cache_dataset",
    "open_cache",
    "open_ensemble",
    "to_torch",
]

_TORCH = ("CacheDataset", "CacheMapDataset", "to_torch")


def __getattr__(name: str) -> Any:
    # torch is imported on first use of a torch name, not by ``import pipeline.cache``
    if name in _TORCH:
        from . import torch_dataset

        return getattr(torch_dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
