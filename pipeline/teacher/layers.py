"""Deprecated: moved to :mod:`pipeline.cache.layers`; this alias is removed in the next release."""

import warnings

from ..cache.layers import LayerError, resolve_attentions, resolve_layers, tinybert_layers  # noqa: F401

warnings.warn(
    "pipeline.teacher.layers is deprecated: use pipeline.cache.layers (the old path is removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
