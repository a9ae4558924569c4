"""One run at a time per output folder: ``<output_dir>/.pipeline.lock`` names its holder.

A second run on the same folder would remove the first run's temporary files and its task
markers. The lock holds the host, process id, start time and command of the run that took it and
is removed when that run ends.

- Local folders (and ``file://``): created exclusively (``O_EXCL``); a lock left by a process that
  is gone (same host, no such process) is taken over.
- S3: created with a conditional write (``If-None-Match: *``, boto3), held as a lease that a thread
  of the live run renews (``If-Match`` on the lease's ETag) every quarter of its term. A lease not
  renewed for its term (a run killed on any host), or left by a dead process of this host, is
  taken over with ``If-Match`` on the stale ETag, so two runs cannot both take it over.
- GCS: the same lease through ``google-cloud-storage`` (``if_generation_match=0``, then the
  generation); that package is needed for a ``gs://`` output.
- Any other store has no exclusive create: the run fails closed, unless the user names
  ``--unlocked`` and so takes on keeping other runs away from the folder.

A run that loses its lease (renewals failed for a whole term, or another run took it over) is
told before it commits: :func:`ensure_held` raises, and the runner calls it before each marker.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator

from .. import storage
from .lock_stores import GcsStore, OutputLocked, S3Store, Store

__all__ = ["LOCK_NAME", "OutputLocked", "ensure_held", "output_lock"]

LOCK_NAME = ".pipeline.lock"
# How long a lease lasts without renewal; renewed every quarter of it.
LEASE_S = float(os.environ.get("PIPELINE_LOCK_LEASE_S", "60"))
GRACE_S = 5.0  # at most this (a quarter of the term) for clock steps and a slow renewal round trip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _me(command: str) -> dict:
    return {
        "run": uuid.uuid4().hex,  # this run's lease: a write that took effect but whose answer was lost is ours
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command or " ".join(os.path.basename(a) for a in sys.argv[:3]),
    }


def _dead_here(holder: dict | None) -> bool:
    """A holder that is a process of this host and no longer runs."""
    if not holder:
        return False
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def _who(holder: dict | None) -> str:
    if not holder:
        return "a run whose lock is being written"
    return (
        f"host {str(holder.get('host'))[:100]}, pid {holder.get('pid')}, started {str(holder.get('started'))[:40]}"
        f" ({str(holder.get('command'))[:100]})"
    )


def _parse(body: bytes) -> dict | None:
    try:
        holder = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


@contextlib.contextmanager
def output_lock(output_dir: str, command: str = "", unlocked: bool = False) -> Iterator[str | None]:
    """Hold the output folder's lock for the block; yields the lock's path (None: run unlocked)."""
    if unlocked:
        yield None
        return
    kind = storage.scheme(output_dir)
    if kind in ("", "file"):
        with _local_lock(output_dir, command) as path:
            yield path
        return
    path = storage.join(output_dir, LOCK_NAME)
    store: Store
    if kind == "s3":
        store = S3Store(path)
    elif kind in ("gs", "gcs"):
        store = GcsStore(path)
    else:
        raise OutputLocked(
            f"{storage.redact(output_dir)}: a {kind}:// store cannot create a file exclusively, so this run "
            f"cannot lock the folder against another run. If you are sure no other run uses it, run with "
            f"--unlocked"
        )
    lease = _Lease(store, storage.redact(output_dir), _me(command))
    lease.acquire()
    try:
        yield path
    finally:
        lease.release()


def ensure_held() -> None:
    """Raise :class:`OutputLocked` when a lease this process holds was lost (before committing)."""
    for lease in list(_active):
        if lease.lost:
            raise OutputLocked(lease.lost)


# ---------------------------------------------------------------------------------------------
# Local folders


def _local_holder(path: str) -> dict | None:
    try:
        with open(path, "rb") as fh:
            return _parse(fh.read())
    except OSError:
        return None


def _local_stale(holder: dict | None, path: str) -> bool:
    """A lock whose process is gone, or unreadable for a minute (a run killed while writing it)."""
    if holder is None:
        with contextlib.suppress(OSError):
            return time.time() - os.stat(path).st_mtime > 60
        return True
    return _dead_here(holder)


@contextlib.contextmanager
def _local_lock(output_dir: str, command: str) -> Iterator[str]:
    folder = storage.local_path(output_dir)
    storage.makedirs(folder)
    path = os.path.join(folder, LOCK_NAME)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _local_holder(path)
            if _local_stale(holder, path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            raise OutputLocked(
                f"{folder} is in use by another run: {_who(holder)}. Wait for it to end; if that run is "
                f"gone for good (another host's crash), delete {path}"
            ) from None
        except OSError as exc:
            raise storage.OutputError(path, exc) from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_me(command), fh)
        break
    else:
        raise OutputLocked(f"{folder}: could not take the lock {path} (another run keeps taking it)")
    try:
        yield path
    finally:
        if (_local_holder(path) or {}).get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# ---------------------------------------------------------------------------------------------
# Object stores: a lease through the store's conditional writes (the stores: lock_stores.py)


_active: list[_Lease] = []


class _Lease:
    def __init__(self, store: Store, folder: str, me: dict, term: float | None = None):
        self.store, self.folder, self.me = store, folder, me
        self.term = LEASE_S if term is None else term
        self.token: str | None = None
        self.lost = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({**self.me, "lease_s": self.term, "renewed": time.time()}).encode()

    def _ours(self, current: tuple[bytes, str, float] | None) -> str | None:
        """The token of the lock object when it is this run's own lease."""
        if current is not None and (_parse(current[0]) or {}).get("run") == self.me["run"]:
            return current[1]
        return None

    def _write(self, token: str | None) -> str | None:
        """Create (``token`` None) or renew the lease; the new token, or None when another run holds
        it. A write that the store applied but whose answer was lost (a dropped connection, retried)
        fails its precondition on the retry: the object is then read to see whose it is."""
        new = self.store.create(self._body()) if token is None else self.store.replace(self._body(), token)
        return new if new is not None else self._ours(self.store.read())

    def acquire(self) -> None:
        for _ in range(5):
            token = self._write(None)
            if token is None:
                current = self.store.read()
                if current is None:  # released between the two calls
                    continue
                body, old, age = current
                holder = _parse(body)
                term = float((holder or {}).get("lease_s") or LEASE_S)
                if age <= term + min(GRACE_S, term / 4) and not _dead_here(holder):
                    raise OutputLocked(
                        f"{self.folder} is in use by another run: {_who(holder)}; its lease was renewed "
                        f"{age:.0f} s ago. Wait for it to end; a run that died is taken over once its lease "
                        f"({term:.0f} s) runs out"
                    )
                token = self._write(old)  # a stale lease: only one run takes it over
                if token is None:
                    continue
                print(f"[lock] took over the expired lock of {_who(holder)} on {self.folder}", file=sys.stderr)
            self.token = token
            _active.append(self)
            self._thread = threading.Thread(target=self._renew, name="lock-lease", daemon=True)
            self._thread.start()
            return
        raise OutputLocked(f"{self.folder}: could not take the lock (another run keeps taking it)")

    def _renew(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(max(0.2, self.term / 4)):
            try:
                token = self._write(self.token)
            except Exception as exc:  # a store that fails for a while: keep trying until the term is over
                if time.monotonic() - last > self.term:
                    self._lose(f"could not renew its lease for {self.term:.0f} s ({type(exc).__name__})")
                    return
                continue
            if token is None:
                self._lose("another run took its lock over")
                return
            self.token, last = token, time.monotonic()

    def _lose(self, why: str) -> None:
        self.lost = f"{self.folder}: this run lost the folder's lock: {why}; nothing more is committed"
        print(f"[lock] {self.lost}", file=sys.stderr, flush=True)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(ValueError):
            _active.remove(self)
        if self.token is not None and not self.lost:
            with contextlib.suppress(Exception):
                self.store.delete(self.token)
