"""Write faults for tests: a local filesystem that runs out of space part-way or is read-only.

``install(monkeypatch, ...)`` routes every path of ``pipeline.storage`` through
:class:`FaultyFileSystem`, a ``pyarrow.fs`` filesystem that behaves like the local one except that
writes into files whose path contains ``match`` raise ``OSError(ENOSPC)`` once ``space`` bytes
have been written into such files in total (``space=0`` fails the first write), or, with
``read_only=True``, opening such a file for writing raises ``OSError(EROFS)``.
"""

from __future__ import annotations

import errno
import os

import pyarrow as pa
from pyarrow import fs as pafs


class _Budget:
    def __init__(self, space: int):
        self.left = space


class _LimitedFile:
    """A local file whose writes stop with ENOSPC when the shared budget is spent."""

    def __init__(self, path: str, budget: _Budget):
        self._fh, self._budget, self.closed = open(path, "wb"), budget, False

    def write(self, data) -> int:
        n = len(data)
        if n > self._budget.left:  # like a real full disk: part of the data may already be on disk
            self._fh.write(bytes(memoryview(data)[: self._budget.left]))
            self._budget.left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget.left -= n
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
        self.closed = True


class FaultyFileSystem(pafs.FileSystemHandler):
    def __init__(self, match: str, space: int | None = None, read_only: bool = False):
        self.local, self.match, self.read_only = pafs.LocalFileSystem(), match, read_only
        self.budget = _Budget(space) if space is not None else None
        self.failures: list[str] = []

    def _faulty(self, path: str) -> bool:
        return self.match in path

    # writes -------------------------------------------------------------------------------
    def open_output_stream(self, path, metadata):
        if self._faulty(path) and self.read_only:
            self.failures.append(path)
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        if self._faulty(path) and self.budget is not None:
            self.failures.append(path)
            return pa.PythonFile(_LimitedFile(path, self.budget), mode="w")
        return self.local.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.local.open_append_stream(path, metadata=metadata)

    # everything else is the local filesystem -------------------------------------------------
    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def get_type_name(self):
        return "faulty-local"

    def normalize_path(self, path):
        return self.local.normalize_path(path)

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.local.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError(errno.EPERM, "refusing to empty the root directory")

    def delete_file(self, path):
        self.local.delete_file(path)

    def move(self, src, dest):
        self.local.move(src, dest)

    def copy_file(self, src, dest):
        self.local.copy_file(src, dest)

    def open_input_stream(self, path):
        return self.local.open_input_stream(path)

    def open_input_file(self, path):
        return self.local.open_input_file(path)


def install(monkeypatch, match: str, space: int | None = None, read_only: bool = False) -> FaultyFileSystem:
    """Route ``pipeline.storage``'s local paths through a :class:`FaultyFileSystem`."""
    from pipeline import storage

    handler = FaultyFileSystem(match, space, read_only)
    filesystem = pafs.PyFileSystem(handler)
    original = storage.resolve

    def resolve(path: str):
        fs, p = original(path)
        return (filesystem, p) if isinstance(fs, pafs.LocalFileSystem) else (fs, p)

    monkeypatch.setattr(storage, "resolve", resolve)
    return handler
