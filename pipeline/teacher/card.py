"""Deprecated: moved to :mod:`pipeline.cache.card`; this alias is removed in the next release."""

import warnings

from ..cache.card import (  # noqa: F401
    CARD_NAME,
    DATA_FILES,
    META_KEY,
    card_problems,
    features,
    header,
    licence,
    parse,
    render,
    split_name,
)

warnings.warn(
    "pipeline.teacher.card is deprecated: use pipeline.cache.card (the old path is removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
