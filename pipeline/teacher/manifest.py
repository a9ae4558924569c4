"""Deprecated: the manifest moved to :mod:`pipeline.cache.manifest` and the model-folder helpers to
:mod:`pipeline.teacher.model_files`; this alias is removed in the next release."""

import warnings

from ..cache.manifest import (  # noqa: F401
    FORMAT,
    LAYER_RULE,
    MANIFEST_NAME,
    VERSION,
    build_manifest,
    cache_key,
    remove_manifest,
    write_manifest,
)
from .model_files import (  # noqa: F401
    TOKENIZER_FILES,
    WEIGHT_SUFFIXES,
    ModelSourceError,
    local_model_dir,
    tokenizer_sha256,
    weights_sha256,
)

warnings.warn(
    "pipeline.teacher.manifest is deprecated: use pipeline.cache.manifest (the manifest) and "
    "pipeline.teacher.model_files (model folders); the old path is removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)
