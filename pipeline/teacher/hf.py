"""A cache as a Hugging Face ``datasets.Dataset`` (or ``IterableDataset``), manifest in its info.

``datasets`` is not needed by the pipeline itself: ``pip install datasets`` to use this module.
"""

from __future__ import annotations

import json
from typing import Any

from .cache import open_cache
from .card import licence, split_name


def load_cache_dataset(path: str, /, *, streaming: bool = False, verify: str = "footer", **kwargs: Any) -> Any:
    """The shards of a checked cache through ``datasets.load_dataset("parquet", ...)``.

    ``streaming=True`` reads the shards where they lie (an ``IterableDataset``); otherwise
    ``datasets`` converts them once into its own Arrow cache (``cache_dir=`` in ``kwargs`` says
    where; that copy is as large as the shards uncompressed). ``ds.info.description`` holds the
    manifest as JSON (``json.loads(ds.info.description)``), ``ds.info.license`` the inputs' licence.
    ``verify``: as for :func:`open_cache` ("footer" reads the shard footers, "checksum" hashes them).
    """
    try:
        import datasets
    except ImportError:
        raise ImportError("load_cache_dataset needs the datasets package: pip install datasets") from None
    cache = open_cache(path, verify=verify)
    manifest = cache.manifest
    split = split_name(manifest)
    ds = datasets.load_dataset("parquet", data_files={split: cache.files}, split=split, streaming=streaming, **kwargs)
    ds.info.description = json.dumps(manifest)
    ds.info.license = licence(manifest)
    ds.info.dataset_name = manifest["input"]["name"]
    return ds
