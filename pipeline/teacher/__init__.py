"""The teacher stage: fine-tune a classifier (optional), then cache its outputs for each input corpus.

    from pipeline.teacher import run_teacher, TeacherConfig

The cache it writes is read through :mod:`pipeline.cache` (``from pipeline.cache import
open_cache``); ``pipeline.teacher.open_cache`` and the other reader names still work for one
release, with a DeprecationWarning.
"""

import warnings
from typing import Any

from ..cache.layers import tinybert_layers
from .errors import TeacherError
from .settings import FinetuneConfig, TeacherConfig

__all__ = [
    "FinetuneConfig",
    "TeacherConfig",
    "TeacherError",
    "run_teacher",
    "tinybert_layers",
]

_MOVED = ("CacheError", "TeacherCache", "open_cache", "to_torch")  # to pipeline.cache


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"pipeline.teacher.{name} is deprecated: import it from pipeline.cache "
            "(the old path is removed in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        from .. import cache as cache_package  # pipeline.cache, not the alias pipeline.teacher.cache

        # kept here once looked up: ``from pipeline.teacher import X`` looks X up twice (hasattr, then
        # getattr), and one warning is enough
        value = globals()[name] = getattr(cache_package, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_teacher(cfg, teacher=None, **kwargs):
    """See :func:`pipeline.teacher.stage.run_teacher`."""
    from .stage import run_teacher as _run

    return _run(cfg, teacher, **kwargs)
