"""Data augmentation and teacher soft-label caching for knowledge distillation.

The public surface is ``__all__`` below (CONTRIBUTING.md: a public name changes only after a
release of deprecation warnings); every other module may change. The names are imported on
first use (PEP 562), so that ``import pipeline`` stays cheap for the command line and for code
that only reads a cache.

    from pipeline import TinyBert, Job, run, open_cache
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what a type checker sees; at run time __getattr__ imports them
    from .augmenters import Tang, TinyBert
    from .cache import CacheDataset, CacheError, open_cache
    from .config import ConfigError
    from .errors import PipelineError
    from .jobs import AugmentSummary, CacheSummary, IngestSummary, Job, RunSummary, run

__all__ = [
    "AugmentSummary",
    "CacheDataset",
    "CacheError",
    "CacheSummary",
    "ConfigError",
    "IngestSummary",
    "Job",
    "PipelineError",
    "RunSummary",
    "Tang",
    "TinyBert",
    "open_cache",
    "run",
]

# each public name and the module that defines it
_HOMES = {
    "Tang": "augmenters",
    "TinyBert": "augmenters",
    "CacheDataset": "cache",
    "CacheError": "cache",
    "open_cache": "cache",
    "ConfigError": "config",
    "PipelineError": "errors",
    "AugmentSummary": "jobs",
    "CacheSummary": "jobs",
    "IngestSummary": "jobs",
    "Job": "jobs",
    "RunSummary": "jobs",
    "run": "jobs",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
