"""A job's output folder as the report reads it: its paths and listings, and the sections
collected from it.

The folder is a local path or a URI (s3://, gs://, file://): it is read only through
:mod:`pipeline.storage` and the ``pyarrow.fs`` filesystems it resolves, one listing per stage's
folder, so an object store costs a few requests beyond the files the report reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from .. import storage


@dataclass
class Section:
    ran: bool = False
    note: str = ""
    data: dict = field(default_factory=dict)


@dataclass
class ReportData:
    title: str
    output_dir: str
    ingest: Section
    augment: Section
    teacher: Section
    cache: Section
    student: Section


Folder = tuple[str, ...]  # a file or folder as its names below a listed folder, () for that folder


def root(output_dir: str | os.PathLike) -> str:
    """The folder to read: a URI as given, a local path spelled as pathlib spells it (the notes
    have always printed it so; pure string work, no disk access)."""
    path = os.fspath(output_dir)
    return path if "://" in path else str(PurePath(path))


def shown(path: str) -> str:
    """A path as the page prints it: a local one as pathlib spells it, a URI without credentials."""
    return storage.redact(path) if "://" in path else str(PurePath(path))


def base_name(path: str) -> str:
    """The last name of a path or URI (a bucket's own name for a bucket), its query left out."""
    if "://" not in path:
        return PurePath(path).name
    parts = urlsplit(path)
    return parts.path.rstrip("/").rpartition("/")[2] or parts.hostname or ""


def read_json(path: str) -> Any:
    return storage.read_json(path)


def files(folder: str, recursive: bool = True) -> list[Folder]:
    """The files under ``folder`` as tuples of names relative to it, in the order pathlib sorts
    paths (name by name: "d/x" before "d-x/x"); none when the folder does not exist."""
    return sorted(tuple(rel.split("/")) for rel, _ in storage.list_files(folder, recursive=recursive))


def by_folder(files: Iterable[Folder]) -> dict[Folder, set[str]]:
    """The names of the files in each folder of a listing (:func:`files`)."""
    out: dict[Folder, set[str]] = {}
    for *folder, name in files:
        out.setdefault(tuple(folder), set()).add(name)
    return out
