"""Paths that may be local or ``pyarrow.fs`` URIs, and files that appear only when complete.

Local folders and ``file://`` URIs write under a temporary name and rename. Object stores
(``s3://``, ``gs://``) have no rename: a file is staged on this node's local disk and uploaded in
one call, so an object appears whole under its final name or not at all (a process killed in the
middle of an upload leaves an unfinished multipart upload, never a partial object). S3
filesystems are built from the URI and kept per process and settings, never past the interpreter's
exit: pyarrow's S3 layer can crash at exit when one outlives its finalisation (apache/arrow#36346),
so they are dropped by an exit handler that runs before pyarrow's own. (A new one per call costs
little to build, but pyarrow makes each new S3 client wait until no S3 request of the process is in
flight: parallel readers then took turns.)
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from .errors import PipelineError

T = TypeVar("T")

# Requests to S3 are retried by the AWS SDK with backoff (503 SlowDown, a reset connection, a
# timeout), by its default strategy: the "standard" one also keeps a retry quota per client, which a
# long run against a throttling store drains, after which every error surfaces at once (seen here
# with one client per process). A whole upload or read that still fails is tried again WHOLE_ATTEMPTS times.
S3_ATTEMPTS = 8
WHOLE_ATTEMPTS = 3
OBJECT_STORES = ("s3", "gs", "gcs")
_S3_URI_KEYS = {"region", "scheme", "endpoint_override"}


def scheme(path: str) -> str:
    """The URI scheme of ``path`` ('' for a local path)."""
    return path.split("://", 1)[0].lower() if "://" in path else ""


def is_remote(path: str) -> bool:
    """A path that is not on this machine's filesystem (any URI but ``file://``)."""
    return scheme(path) not in ("", "file")


def is_object_store(path: str) -> bool:
    """An object store: no rename, no exclusive create through pyarrow, directories implicit."""
    return scheme(path) in OBJECT_STORES


def local_path(path: str) -> str:
    """The local path of a local path or ``file://`` URI."""
    return os.path.abspath(path.removeprefix("file://"))


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it, for a local path or a URI (s3://, gs://, hdfs://, file://)."""
    if "://" not in path:
        return pafs.LocalFileSystem(), os.path.abspath(path)
    if scheme(path) == "s3":
        return _s3(path)
    if scheme(path) in ("gs", "gcs") and (emulated := _gcs_emulator(path)):
        return emulated
    try:
        return pafs.FileSystem.from_uri(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise StorageError(path, exc) from None


_regions: dict[tuple[str, str], str] = {}  # (endpoint, bucket) -> region
_s3_filesystems: dict[tuple, pafs.S3FileSystem] = {}  # (pid, options) -> filesystem; emptied at exit
_s3_lock = threading.Lock()
atexit.register(_s3_filesystems.clear)  # registered after pyarrow.fs's finaliser, so it runs before it


def _s3(uri: str) -> tuple[pafs.FileSystem, str]:
    """An S3 filesystem for ``uri`` with the SDK's retries raised to ``S3_ATTEMPTS`` (``from_uri``
    keeps its default of 3, and a filesystem built by hand does not read ``AWS_ENDPOINT_URL``)."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    if set(query) - _S3_URI_KEYS:  # pyarrow's own keys and messages for the rest
        try:
            return pafs.FileSystem.from_uri(uri)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise StorageError(uri, exc) from None
    bucket = parts.hostname or ""
    path = f"{bucket}{unquote(parts.path)}".rstrip("/") or bucket
    options: dict = {"retry_strategy": pafs.AwsDefaultS3RetryStrategy(max_attempts=S3_ATTEMPTS)}
    if parts.username:
        options.update(access_key=unquote(parts.username), secret_key=unquote(parts.password or ""))
    endpoint = (
        query.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint:
        if "://" in endpoint:
            options["scheme"], endpoint = endpoint.split("://", 1)
        options["endpoint_override"] = endpoint.rstrip("/")
    if "scheme" in query:
        options["scheme"] = query["scheme"]
    region = query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region and bucket:
        key = (endpoint or "", bucket)
        if key not in _regions:
            try:
                _regions[key] = pafs.resolve_s3_region(bucket) if not endpoint else "us-east-1"
            except (OSError, ValueError) as exc:
                raise StorageError(uri, exc) from None
        region = _regions[key]
    if region:
        options["region"] = region
    settings = (os.getpid(), tuple(sorted((k, str(v)) for k, v in options.items() if k != "retry_strategy")))
    with _s3_lock:
        if settings not in _s3_filesystems:
            # not allow_delayed_open (one PutObject for a small object instead of three requests):
            # under dropped connections its retried PutObject left 0-byte objects in our tests
            _s3_filesystems[settings] = pafs.S3FileSystem(**options)
        return _s3_filesystems[settings], path


_gcs_filesystems: dict[tuple, pafs.GcsFileSystem] = {}  # (pid, endpoint, scheme) -> filesystem; emptied at exit
_gcs_lock = threading.Lock()
atexit.register(_gcs_filesystems.clear)


def _gcs_emulator(uri: str) -> tuple[pafs.FileSystem, str] | None:
    """A GCS filesystem on the emulator named by ``STORAGE_EMULATOR_HOST``, the variable that
    google-cloud-storage reads (``http://HOST:PORT``; ``http`` when the scheme is left out):
    anonymous, kept per process and emulator. None when that variable is not set, or the URI has
    settings of its own (a query, user info): pyarrow's ``from_uri`` then reads it as usual."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "").strip().rstrip("/")
    parts = urlsplit(uri)
    if not emulator or parts.query or "@" in parts.netloc:
        return None
    transport, _, endpoint = emulator.rpartition("://")
    bucket = parts.hostname or ""
    path = f"{bucket}{unquote(parts.path)}".rstrip("/") or bucket
    settings = (os.getpid(), endpoint, transport or "http")
    with _gcs_lock:
        if settings not in _gcs_filesystems:
            _gcs_filesystems[settings] = pafs.GcsFileSystem(
                endpoint_override=endpoint, scheme=transport or "http", anonymous=True
            )
        return _gcs_filesystems[settings], path


def redact(uri: str) -> str:
    """``uri`` without credentials (user info, secret-looking query values) and cut to 300 characters."""
    text = re.sub(r"://[^/@\s]*@", "://", uri)
    text = re.sub(r"(?i)((?:secret|key|token|password|credential)[a-z_]*=)[^&\s]*", r"\1***", text)
    return text if len(text) <= 300 else text[:297] + "..."


# Permanent failures of a remote store: retrying would not help, the user must act.
_PERMANENT = re.compile(
    r"ACCESS_DENIED|AccessDenied|NO_SUCH_BUCKET|NoSuchBucket|InvalidAccessKeyId|SignatureDoesNotMatch|"
    r"INVALID_ACCESS_KEY|SIGNATURE_DOES_NOT_MATCH|Forbidden|HTTP status 403|HTTP status 401|"
    r"PERMISSION_DENIED|UNAUTHENTICATED|ExpiredToken|not found|does not exist|Bucket .* not found",
    re.IGNORECASE,
)
_REMOTE_ERROR = re.compile(
    r"AWS Error|google::cloud|GCS|When (?:getting|reading|writing|listing|uploading|completing|initiating|deleting|creating)|curlCode|HTTP status"
)


class StorageError(PipelineError, OSError):
    """A remote store refused or failed an operation: ``URI: reason`` (no credentials in it)."""

    def __init__(self, uri: str, cause: BaseException | str):
        reason = cause if isinstance(cause, str) else _clean(str(cause)) or type(cause).__name__
        super().__init__(errno.EIO, f"{redact(uri)}: {reason}")
        self.uri = uri

    def __str__(self) -> str:
        assert self.strerror is not None
        return self.strerror


def failure(exc: BaseException, fallback: str = "") -> StorageError:
    """A :class:`StorageError` for a failure that pyarrow raised: named by the object its message
    names (``key 'k' in bucket 'b'``), else by ``fallback``."""
    found = re.search(r"key '([^']*)' in bucket '([^']*)'", str(exc))
    uri = f"s3://{found.group(2)}/{found.group(1)}" if found else fallback or "object store"
    return StorageError(uri, exc)


def _clean(message: str) -> str:
    """A store's error message on one line, its credentials removed, at most 400 characters."""
    text = " ".join(redact(message).split())
    return text if len(text) <= 400 else text[:397] + "..."


def is_remote_failure(exc: BaseException) -> bool:
    """An error raised by pyarrow's S3 / GCS layer (rather than a local disk)."""
    return isinstance(exc, OSError) and bool(_REMOTE_ERROR.search(str(exc)))


def transient(exc: BaseException) -> bool:
    """A remote failure that another try may get past (throttling, a dropped connection, a 5xx)."""
    return is_remote_failure(exc) and not _PERMANENT.search(str(exc))


def retrying(uri: str, fn: Callable[[], T], attempts: int = WHOLE_ATTEMPTS) -> T:
    """``fn()``, tried again with backoff while it fails with a transient remote error; any remote
    failure left is a :class:`StorageError` naming ``uri``."""
    for attempt in range(attempts):
        try:
            return fn()
        except StorageError:
            raise
        except OSError as exc:
            if not is_remote_failure(exc):
                raise
            if not transient(exc) or attempt == attempts - 1:
                raise StorageError(uri, exc) from None
            time.sleep(min(8.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def remote_errors(uri: str) -> Iterator[None]:
    """Inside the block, a failure of a remote store becomes a :class:`StorageError` naming ``uri``."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        if is_remote_failure(exc):
            raise StorageError(uri, exc) from None
        raise


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined; a URI keeps its query (``?endpoint_override=...``) at the end."""
    if "://" in base:
        head, sep, query = base.partition("?")
        return "/".join([head.rstrip("/"), *parts]) + sep + query
    return os.path.join(base, *parts)


def makedirs(path: str) -> None:
    """Create a folder and its parents; a path that cannot be a folder (a file, no permission)
    raises :class:`OutputError` naming it. Object stores have no folders: nothing to create."""
    if is_object_store(path):
        return
    filesystem, p = resolve(path)
    try:
        filesystem.create_dir(p, recursive=True)
    except OSError as exc:
        raise OutputError(path, exc) from exc


def exists(path: str) -> bool:
    filesystem, p = resolve(path)
    with remote_errors(path):
        return filesystem.get_file_info(p).type != pafs.FileType.NotFound


def is_dir(path: str) -> bool:
    """A folder (on an object store: a prefix that holds at least one object)."""
    filesystem, p = resolve(path)
    with remote_errors(path):
        return filesystem.get_file_info(p).type == pafs.FileType.Directory


def delete_if_exists(path: str) -> None:
    filesystem, p = resolve(path)
    with remote_errors(path):
        if filesystem.get_file_info(p).type != pafs.FileType.NotFound:
            filesystem.delete_file(p)


def list_files(directory: str, recursive: bool = False) -> list[tuple[str, int]]:
    """(path relative to ``directory`` with '/' separators, size) of every file under it, in name
    order; none when it does not exist."""
    filesystem, p = resolve(directory)
    with remote_errors(directory):
        infos = filesystem.get_file_info(pafs.FileSelector(p, allow_not_found=True, recursive=recursive))
    root = p.rstrip("/") + "/"
    return sorted((i.path[len(root) :], i.size) for i in infos if i.type == pafs.FileType.File)


def read_bytes(path: str) -> bytes:
    """A whole file."""
    filesystem, p = resolve(path)

    def read() -> bytes:
        with filesystem.open_input_file(p) as fh:  # one ranged GET for the whole file
            return fh.read()

    return retrying(path, read)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> dict:
    """A whole file, under its final name only once complete; returns its record."""
    with atomic_output(path) as out:
        out.write(data)
    return file_record(path)


def download(uri: str, local: str) -> None:
    """Copy a file of any store to a local path (written whole: temporary name, then rename)."""
    tmp = _tmp_name(os.path.abspath(local))
    filesystem, p = resolve(uri)
    try:
        retrying(
            uri,
            lambda: pafs.copy_files(
                p, tmp, source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem()
            ),
        )
        os.replace(tmp, local)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def upload_tree(local_dir: str, uri: str) -> list[str]:
    """Every file under a local folder copied to ``uri`` (each one whole, see :func:`upload`);
    returns their relative names ('/' separators), in order."""
    names = []
    for root, _, files in os.walk(local_dir):
        rel = os.path.relpath(root, local_dir)
        names += sorted(name if rel == "." else "/".join([*rel.split(os.sep), name]) for name in files)
    names.sort()
    for name in names:
        dest = join(uri, *name.split("/"))
        makedirs(dest.rsplit("/", 1)[0] if is_remote(dest) else os.path.dirname(dest))
        upload(os.path.join(local_dir, *name.split("/")), dest)
    return names


def upload(local: str, uri: str) -> None:
    """Copy a local file to any store in one call: on an object store the object appears whole
    or not at all; elsewhere under a temporary name, then renamed."""
    with atomic_output(uri) as out, open(local, "rb") as fh:
        while chunk := fh.read(8 << 20):
            out.write(chunk)
    _uploaded.pop(uri, None)


def _tmp_name(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/.{tail}.{uuid.uuid4().hex[:8]}.tmp"


class OutputError(PipelineError, OSError):
    """Writing an output failed (disk full, permission denied, ...).

    The message names the output's final path and the reason. Nothing was left under that name,
    and files written before are untouched.
    """

    def __init__(self, path: str, cause: BaseException):
        code = _errno(cause)
        reason = os.strerror(code) if code else f"{type(cause).__name__}: {cause}"
        super().__init__(code or errno.EIO, f"cannot write {path}: {reason}; nothing was written under this name")
        self.path = path

    def __str__(self) -> str:
        # always set: __init__ passes a message as OSError's second argument
        assert self.strerror is not None
        return self.strerror


def _errno(exc: BaseException) -> int | None:
    """The errno of an OSError, also when pyarrow reports it only in the message ("[errno 28] ...")."""
    code = getattr(exc, "errno", None)
    if code:
        return code
    text = str(exc)
    for code in (
        errno.ENOSPC,
        errno.EACCES,
        errno.EROFS,
        errno.EDQUOT,
        errno.EPERM,
        errno.EIO,
        errno.ENOTDIR,
        errno.EEXIST,
    ):
        if f"[errno {code}]" in text.lower():
            return code
    return None


# Errors that only a write can raise: inside the caller's block they are the stream's.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def scratch_dir() -> str:
    """This node's own folder for staging uploads and caching fetched assets
    (``$PIPELINE_SCRATCH_DIR``, else the system's temporary folder)."""
    return os.environ.get("PIPELINE_SCRATCH_DIR") or tempfile.gettempdir()


# (size, SHA-256) of files this process uploaded, computed from the staged copy: recording a file
# just written to an object store then needs no request to read it back
_uploaded: dict[str, tuple[int, str]] = {}


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[pa.NativeFile]:
    """A stream whose content appears under ``path`` only once it is complete.

    Local folders: write, then rename. Remote stores: the stream is a file on this node's scratch
    disk, uploaded in one call once the block ends without an error (retried while the store
    fails transiently); an error inside the block uploads nothing. On any error the temporary
    file is removed. An ``OSError`` while opening, closing or renaming, or a full disk / read-only
    filesystem while writing, raises :class:`OutputError` naming ``path`` and the reason; a store's
    failure raises :class:`StorageError`.
    """
    if is_remote(path):
        with _staged_upload(path) as stream:
            yield stream
        return
    filesystem, p = resolve(path)
    tmp = _tmp_name(p)
    try:
        stream = filesystem.open_output_stream(tmp)
    except OSError as exc:
        raise OutputError(path, exc) from exc
    try:
        try:
            yield stream
        except OSError as exc:
            if _errno(exc) in _WRITE_ERRNOS and not isinstance(exc, OutputError):
                raise OutputError(path, exc) from exc
            raise
        try:
            stream.close()
            filesystem.move(tmp, p)
        except OSError as exc:
            raise OutputError(path, exc) from exc
    except BaseException:
        with contextlib.suppress(Exception):
            stream.close()
        with contextlib.suppress(Exception):
            filesystem.delete_file(tmp)
        raise


@contextlib.contextmanager
def _staged_upload(path: str) -> Iterator[pa.NativeFile]:
    """Write to a local file, then upload it whole (pyarrow's ``open_output_stream`` publishes what
    was written when an exception interrupts a ``with`` block, apache/arrow#40502: so the store's
    stream is opened only by ``copy_files``, over a complete file)."""
    _sweep_staging(scratch_dir())
    fd, local = tempfile.mkstemp(prefix=f".upload-{os.getpid()}-", suffix=".tmp", dir=scratch_dir())
    os.close(fd)
    try:
        try:
            stream = pa.OSFile(local, "wb")
        except OSError as exc:
            raise OutputError(path, exc) from exc
        try:
            yield stream
            stream.close()
        except OSError as exc:
            if _errno(exc) in _WRITE_ERRNOS and not isinstance(exc, OutputError):
                raise OutputError(path, exc) from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                stream.close()
        digest = _local_sha256(local)
        filesystem, p = resolve(path)
        retrying(
            path,
            lambda: pafs.copy_files(
                local, p, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=filesystem
            ),
        )
        _uploaded[path] = (os.path.getsize(local), digest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(local)


_swept: set[str] = set()


def _sweep_staging(folder: str) -> None:
    """Once per process and folder: staged uploads of processes of this node that were killed
    (a worker lost in the middle of a task) are removed."""
    if folder in _swept:
        return
    _swept.add(folder)
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            found = re.fullmatch(r"\.upload-(\d+)-.*\.tmp", name)
            if found and not _process_alive(int(found.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: str, obj: object) -> None:
    with atomic_output(path) as out:
        out.write((json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())
    _uploaded.pop(path, None)


def read_json(path: str) -> object:
    return json.loads(read_bytes(path).decode())


def write_parquet(path: str, table: pa.Table, row_group_rows: int = 16_384, **options) -> dict:
    """One whole Parquet file (zstd), under its final name only once complete; returns its record."""
    with atomic_output(path) as out:
        pq.write_table(table.combine_chunks(), out, row_group_size=row_group_rows, compression="zstd", **options)
    return file_record(path, table.num_rows)


def write_lines(path: str, lines: list[str]) -> dict:
    """A text file of ``lines`` (each ending in a newline), written whole; returns its record."""
    with atomic_output(path) as out:
        out.write("".join(line + "\n" for line in lines).encode())
    return file_record(path, len(lines))


def file_record(path: str, rows: int | None = None) -> dict:
    """What a task reports of a file it wrote: path, rows, bytes, SHA-256."""
    if path in _uploaded:
        size, digest = _uploaded.pop(path)
        return {"path": path, "rows": rows, "bytes": size, "sha256": digest}
    filesystem, p = resolve(path)
    with remote_errors(path):
        size = filesystem.get_file_info(p).size
    return {"path": path, "rows": rows, "bytes": size, "sha256": file_sha256(path)}


def file_sha256(path: str) -> str:
    """SHA-256 of a file (local path or pyarrow.fs URI), read in 8 MiB chunks."""
    filesystem, p = resolve(path)

    def digest() -> str:
        h = hashlib.sha256()
        with filesystem.open_input_stream(p) as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
        return h.hexdigest()

    return retrying(path, digest)
