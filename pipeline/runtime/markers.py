"""Completion markers: a re-run skips an output that is finished and redoes one that is not.

An output directory is finished when it holds ``_complete.json``, written last by the driver,
after every task's files and the summary. The marker holds the output's key (a digest of the
settings that decide its content and of its inputs' content) and the files with their sizes and,
as their tasks recorded it, their SHA-256. A re-run with the same key and every listed file
present with the listed size and checksum skips the output; anything else resumes it task by task
(``runner.py``, which also checks a reused task's checksums).

Each task also leaves ``_tasks/<name>.json`` once its files are renamed into place (written by
the worker that ran it): the key, the task and its result, so a re-run after an interruption
keeps the tasks that finished.
"""

from __future__ import annotations

from pyarrow import fs as pafs

from .. import row_ranges, storage
from ..storage import file_sha256

MARKER = "_complete.json"
SUMMARY = "_summary.json"
TASKS = "_tasks"


def fingerprint_file(path: str) -> dict:
    """Size and SHA-256 of one input file (local path or pyarrow.fs URI)."""
    filesystem, p = storage.resolve(path)
    return {"path": path, "size": filesystem.get_file_info(p).size, "sha256": file_sha256(path)}


def fingerprint_dir(directory: str, suffix: str = ".parquet") -> list[dict]:
    """Name, size and SHA-256 of the data files of a directory, in name order."""
    return [
        {"file": i.base_name, "size": i.size, "sha256": file_sha256(storage.join(directory, i.base_name))}
        for i in row_ranges.data_files(directory, suffix)
    ]


def sizes(paths: list[str]) -> dict[str, int | None]:
    """The size of each file, None for one that is missing."""
    out = {}
    for path in paths:
        filesystem, p = storage.resolve(path)
        info = filesystem.get_file_info(p)
        out[path] = info.size if info.type == pafs.FileType.File else None
    return out


def _read(path: str) -> dict | None:
    if not storage.exists(path):
        return None
    try:
        obj = storage.read_json(path)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _files_intact(files: list[dict]) -> bool:
    found = sizes([f["path"] for f in files])
    return all(found[f["path"]] == f["bytes"] for f in files)


def finished(directory: str, key: str) -> dict | None:
    """The marker of a finished output with this key, or None when the output must be (re)written."""
    marker = _read(storage.join(directory, MARKER))
    if marker is None or marker.get("key") != key or not _files_intact(marker.get("files") or []):
        return None
    return marker


def start(directory: str) -> None:
    """Before an output is (re)written: without a marker it reads as unfinished."""
    storage.delete_if_exists(storage.join(directory, MARKER))


def mark_finished(directory: str, key: str, files: list[dict]) -> None:
    """Written last: ``files`` (records of full paths, with rows and SHA-256 where the tasks gave
    them) are the output's complete files; a reader of the output can take them from here."""
    found = sizes([f["path"] for f in files])
    missing = [p for p, size in found.items() if size is None]
    if missing:
        raise FileNotFoundError(f"{directory}: cannot mark finished, missing {missing}")
    storage.write_json(
        storage.join(directory, MARKER), {"key": key, "files": [{**f, "bytes": found[f["path"]]} for f in files]}
    )


def finished_files(directory: str) -> list[dict] | None:
    """The file records of a finished output (path, bytes, and rows / sha256 when recorded), if
    every one is still there with its size; else None."""
    marker = _read(storage.join(directory, MARKER))
    if marker is None or not _files_intact(marker.get("files") or []):
        return None
    return marker["files"]


def task_marker_path(directory: str, name: str) -> str:
    return storage.join(directory, TASKS, f"{name}.json")


def mark_task(directory: str, name: str, key: str, task: dict, result: dict) -> None:
    """Written by the worker once the task's files are in place."""
    storage.write_json(task_marker_path(directory, name), {"key": key, "task": task, "result": result})


def finished_task(directory: str, name: str, key: str, task: dict) -> dict | None:
    """The result of a task that an earlier run finished with this key, or None."""
    marker = _read(task_marker_path(directory, name))
    if marker is None or marker.get("key") != key or marker.get("task") != task:
        return None
    result = marker.get("result")
    if not isinstance(result, dict) or not _files_intact(result.get("files") or []):
        return None
    return result
