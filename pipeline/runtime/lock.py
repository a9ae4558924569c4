"""One run at a time per output folder: ``<output_dir>/.pipeline.lock`` names its holder.

A second run on the same folder would remove the first run's temporary files and its task
markers. The lock is created exclusively (``O_EXCL``) and holds the host, process id, start time
and command of the run that took it; it is removed when that run ends. A lock left by a process
that is gone (same host, no such process) is taken over. Local folders only: object stores
(``s3://`` ...) have no exclusive create, and a job there is not locked.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator

from ..errors import PipelineError

LOCK_NAME = ".pipeline.lock"


class OutputLocked(PipelineError):
    """Another run holds the output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _holder(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            holder = json.load(fh)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _stale(holder: dict | None, path: str) -> bool:
    """A lock whose process is gone: on this host and not running, or unreadable for a minute (a
    run killed while writing it)."""
    if holder is None:
        with contextlib.suppress(OSError):
            return time.time() - os.stat(path).st_mtime > 60
        return True
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


@contextlib.contextmanager
def output_lock(output_dir: str, command: str = "") -> Iterator[str | None]:
    """Hold the output folder's lock for the block; yields the lock's path (None: not lockable)."""
    if "://" in output_dir and not output_dir.startswith("file://"):
        yield None
        return
    from .. import storage

    folder = output_dir.removeprefix("file://")
    storage.makedirs(folder)
    path = os.path.join(os.path.abspath(folder), LOCK_NAME)
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command or " ".join(os.path.basename(a) for a in sys.argv[:3]),
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if _stale(holder, path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            who = (
                f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}"
                f" ({str(holder.get('command'))[:100]})"
                if holder
                else "a run whose lock is being written"
            )
            raise OutputLocked(
                f"{folder} is in use by another run: {who}. Wait for it to end; if that run is "
                f"gone for good (another host's crash), delete {path}"
            ) from None
        except OSError as exc:
            raise storage.OutputError(path, exc) from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        break
    else:
        raise OutputLocked(f"{folder}: could not take the lock {path} (another run keeps taking it)")
    try:
        yield path
    finally:
        if (_holder(path) or {}).get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
