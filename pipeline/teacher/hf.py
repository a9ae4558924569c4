"""Deprecated: moved to :mod:`pipeline.cache.hf_dataset`; this alias is removed in the next release."""

import warnings

from ..cache.hf_dataset import load_cache_dataset  # noqa: F401

warnings.warn(
    "pipeline.teacher.hf is deprecated: use pipeline.cache.hf_dataset (the old path is removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
