"""A cache as a Hugging Face ``datasets.Dataset`` (or ``IterableDataset``), manifest in its info.

``datasets`` is not needed by the pipeline itself: ``pip install datasets`` to use this module.
"""

from __future__ import annotations

import json
from typing import Any

from .. import storage
from .card import licence, split_name
from .reader import open_cache


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
    if storage.is_remote(path):
        ds = _from_store(datasets, cache, split, streaming, **kwargs)
    else:
        ds = datasets.load_dataset(
            "parquet", data_files={split: cache.files}, split=split, streaming=streaming, **kwargs
        )
    ds.info.description = json.dumps(manifest)
    ds.info.license = licence(manifest)
    ds.info.dataset_name = manifest["input"]["name"]
    return ds


def _rows(files: list[str]) -> Any:
    """The rows of the shards ``files``, read through pyarrow.fs, a row group at a time."""
    import pyarrow.parquet as pq

    for path in files:
        filesystem, p = storage.resolve(path)
        with filesystem.open_input_file(p) as fh:
            for batch in pq.ParquetFile(fh).iter_batches():
                yield from batch.to_pylist()


def _from_store(datasets: Any, cache: Any, split: str, streaming: bool, **kwargs: Any) -> Any:
    """A cache on an object store: ``datasets`` reaches ``s3://`` only through fsspec's s3fs (and
    its own credentials), so the shards are read through pyarrow.fs, as every other reader here
    reads them, with the cache's exact column types."""
    with storage.remote_errors(cache.path):
        features = datasets.Features.from_arrow_schema(cache.schema.remove_metadata())
    source = datasets.IterableDataset if streaming else datasets.Dataset
    options = {} if streaming else {"split": datasets.NamedSplit(split), **kwargs}
    return source.from_generator(_rows, features=features, gen_kwargs={"files": list(cache.files)}, **options)
