"""Deprecated: moved to :mod:`pipeline.cache.check`; this alias is removed in the next release.

``python -m pipeline.teacher.check DIR`` still runs the check (``python -m pipeline.cache.check DIR``).
"""

import sys
import warnings

from ..cache.check import card_check, main  # noqa: F401

# run as ``python -m``, the warning is attributed to __main__, where Python's default filters show it
warnings.warn(
    "pipeline.teacher.check is deprecated: use pipeline.cache.check (the old path is removed in the next release)",
    DeprecationWarning,
    stacklevel=1 if __name__ == "__main__" else 2,
)

if __name__ == "__main__":
    sys.exit(main())
