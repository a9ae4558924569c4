"""Deprecated: moved to :mod:`pipeline.cache.ensemble`; this alias is removed in the next release."""

import warnings

from ..cache.ensemble import (  # noqa: F401
    COMBINE,
    ENSEMBLE_NAME,
    MAIN,
    Ensemble,
    Member,
    check_member,
    combine,
    logits_by_row,
    member_entry,
    open_ensemble,
    write_ensemble,
)

warnings.warn(
    "pipeline.teacher.ensemble is deprecated: use pipeline.cache.ensemble (the old path is removed in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
