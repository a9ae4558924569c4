"""Completion markers: a re-run skips an output that is finished and redoes one that is not.

An output directory (``examples/<split>``, ``augmented/<split>/<method>``) is finished when it
holds ``_complete.json``, written last, after every data file and the summary. The marker holds
the output's key (a hash of the settings that decide its content, ``config_hash``, and of its
inputs' content, ``input_fingerprint``) and the files written with their sizes. A re-run with
the same key and every listed file present with the listed size skips the output; anything else
(no marker, another key, a file missing or changed) removes the marker first and rewrites the
output from scratch, so an interrupted run never leaves a marker over a partial output.
"""

from __future__ import annotations

import hashlib
import json

from pyarrow import fs as pafs

from . import storage
from .storage import file_sha256

MARKER = "_complete.json"


def digest(obj: object) -> str:
    """A short stable hash of a JSON-able value (settings, fingerprints)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def fingerprint_file(path: str) -> dict:
    """Size and SHA-256 of one input file (local path or pyarrow.fs URI)."""
    filesystem, p = storage.resolve(path)
    return {"path": path, "size": filesystem.get_file_info(p).size, "sha256": file_sha256(path)}


def fingerprint_dir(directory: str, suffix: str = ".parquet") -> list[dict]:
    """Name, size and SHA-256 of the data files of a directory, in name order."""
    return [{"file": i.base_name, "size": i.size, "sha256": file_sha256(storage.join(directory, i.base_name))}
            for i in storage.data_files(directory, suffix)]


def _sizes(paths: list[str]) -> dict[str, int | None]:
    out = {}
    for path in paths:
        filesystem, p = storage.resolve(path)
        info = filesystem.get_file_info(p)
        out[path] = info.size if info.type == pafs.FileType.File else None
    return out


def finished(directory: str, config_hash: str, input_fingerprint: str) -> dict | None:
    """The marker of a finished output with this key, or None when the output must be (re)written."""
    path = storage.join(directory, MARKER)
    if not storage.exists(path):
        return None
    try:
        marker = storage.read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("config_hash") != config_hash \
            or marker.get("input_fingerprint") != input_fingerprint:
        return None
    files = marker.get("files") or []
    sizes = _sizes([f["path"] for f in files])
    if any(sizes[f["path"]] != f["size"] for f in files):
        return None
    return marker


def start(directory: str) -> None:
    """Before an output is (re)written: without a marker it reads as unfinished."""
    storage.delete_if_exists(storage.join(directory, MARKER))


def mark_finished(directory: str, config_hash: str, input_fingerprint: str, files: list[str]) -> None:
    """Written last: ``files`` (full paths) are the output's complete files."""
    sizes = _sizes(files)
    missing = [f for f, size in sizes.items() if size is None]
    if missing:
        raise FileNotFoundError(f"{directory}: cannot mark finished, missing {missing}")
    storage.write_json(storage.join(directory, MARKER), {
        "config_hash": config_hash, "input_fingerprint": input_fingerprint,
        "files": [{"path": f, "size": sizes[f]} for f in files]})
