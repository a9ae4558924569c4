"""The teacher stage: fine-tune a classifier (optional), cache its outputs, read the cache back.

    from pipeline.teacher import open_cache, run_teacher, TeacherConfig

Reading a cache needs only pyarrow and numpy (torch for ``iter_torch_batches``).
"""

from .cache import CacheError, TeacherCache, open_cache, to_torch
from .errors import TeacherError
from .layers import tinybert_layers
from .settings import FinetuneConfig, TeacherConfig

__all__ = [
    "CacheError",
    "FinetuneConfig",
    "TeacherCache",
    "TeacherConfig",
    "TeacherError",
    "open_cache",
    "run_teacher",
    "tinybert_layers",
    "to_torch",
]


def run_teacher(cfg, teacher=None, **kwargs):
    """See :func:`pipeline.teacher.stage.run_teacher`."""
    from .stage import run_teacher as _run

    return _run(cfg, teacher, **kwargs)
