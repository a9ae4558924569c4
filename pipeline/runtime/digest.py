"""The one digest helper: every key that decides whether an output can be reused comes from it."""

from __future__ import annotations

import hashlib
import json


def digest(obj: object, length: int = 32) -> str:
    """A stable hex hash of a JSON-able value (dict keys sorted; other objects by ``str``)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]
