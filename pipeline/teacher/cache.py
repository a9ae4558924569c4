"""Deprecated: moved to :mod:`pipeline.cache.reader` (``to_torch`` to :mod:`pipeline.cache.torch_dataset`);
this alias is removed in the next release."""

import warnings
from typing import Any

from ..cache.reader import CacheError, TeacherCache, open_cache  # noqa: F401

warnings.warn(
    "pipeline.teacher.cache is deprecated: use pipeline.cache (the old path is removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    if name == "to_torch":  # as before, torch is imported only when tensors are asked for
        from ..cache.torch_dataset import to_torch

        return to_torch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
