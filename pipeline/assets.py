"""Assets named by URI (a GloVe file, a model folder on S3), fetched once per node.

A job may name its GloVe file or its teacher / MLM model folder by URI (``s3://``, ``gs://``,
``hdfs://``). Libraries that load them (transformers, numpy, gensim) read local files, so each
node keeps one local copy in ``<scratch>/kd-assets/<key>/``, where the key is a digest of the
URI's listing (every file's relative name, size and modification time): a file replaced in the
store gets a new key and a new copy, an unchanged one is never fetched twice. A lock file makes
the tasks and actors of one node that ask at once wait for one download; the copy is renamed into
place only when complete, so a download killed half-way is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator

from pyarrow import fs as pafs

from . import storage

CACHE_DIR = "kd-assets"
COMPLETE = ".complete.json"


def cache_root() -> str:
    """This node's asset cache (``$PIPELINE_ASSET_CACHE``, else ``<scratch>/kd-assets``)."""
    return os.environ.get("PIPELINE_ASSET_CACHE") or os.path.join(storage.scratch_dir(), CACHE_DIR)


def local_copy(path: str) -> str:
    """A local path for ``path``: a local path or ``file://`` URI as it is; a remote file or folder
    copied once into this node's cache (the copy's path ends in the file's own name, so a loader
    that goes by suffix sees the same name)."""
    if not storage.is_remote(path):
        return storage.local_path(path) if path.startswith("file://") else path
    filesystem, p = storage.resolve(path)
    with storage.remote_errors(path):
        info = filesystem.get_file_info(p)
        if info.type == pafs.FileType.NotFound:
            raise storage.StorageError(path, "no such file or folder")
        if info.type == pafs.FileType.File:
            listing = [("", info.size, _mtime(info))]
        else:
            infos = filesystem.get_file_info(pafs.FileSelector(p, recursive=True))
            root = p.rstrip("/") + "/"
            listing = sorted((i.path[len(root) :], i.size, _mtime(i)) for i in infos if i.type == pafs.FileType.File)
    key = hashlib.sha256(json.dumps([storage.redact(path), listing]).encode()).hexdigest()[:24]
    name = p.rstrip("/").rsplit("/", 1)[-1] or "asset"
    folder = os.path.join(cache_root(), key)
    target = os.path.join(folder, name)
    if os.path.exists(os.path.join(folder, COMPLETE)):
        return target
    os.makedirs(cache_root(), exist_ok=True)
    with _node_lock(os.path.join(cache_root(), f"{key}.lock")):
        if os.path.exists(os.path.join(folder, COMPLETE)):  # another task of this node fetched it meanwhile
            return target
        staging = os.path.join(cache_root(), f".{key}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            os.makedirs(staging)
            if info.type == pafs.FileType.File:
                storage.download(path, os.path.join(staging, name))
            else:
                for rel, _, _ in listing:
                    dest = os.path.join(staging, name, *rel.split("/"))
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    storage.download(storage.join(path, rel), dest)
            with open(os.path.join(staging, COMPLETE), "w", encoding="utf-8") as fh:
                json.dump({"uri": storage.redact(path), "files": listing}, fh)
            shutil.rmtree(folder, ignore_errors=True)  # an incomplete copy of an older run
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _mtime(info: pafs.FileInfo) -> str:
    return info.mtime.isoformat() if info.mtime is not None else ""


@contextlib.contextmanager
def _node_lock(path: str) -> Iterator[None]:
    """An exclusive lock among this node's processes (released by the kernel if the holder dies)."""
    with open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
