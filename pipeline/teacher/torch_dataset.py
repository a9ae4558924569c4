"""Deprecated: moved to :mod:`pipeline.cache.torch_dataset`; this alias is removed in the next release."""

import warnings

from ..cache.torch_dataset import CacheDataset, CacheMapDataset, to_torch  # noqa: F401

warnings.warn(
    "pipeline.teacher.torch_dataset is deprecated: use pipeline.cache.torch_dataset (the old path is removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
