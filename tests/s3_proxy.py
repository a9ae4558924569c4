"""A fault-injecting HTTP/1.1 reverse proxy in front of an S3 server, for tests and benchmarks.

    proxy = FaultProxy(s3_server.endpoint, fail_rate=0.2, drop_rate=0.1, seed=1).start()
    env = s3_server.env(proxy.endpoint)        # boto3 / pyarrow now talk to the proxy
    ...
    proxy.stats()["by_operation"]              # {"PutObject": 31, "GetObject": 30, ...}
    proxy.stop()

Standard library only: one thread per client connection (``socketserver``), one upstream
connection per client connection, kept alive while both ends allow it. Each request is relayed as
the bytes the client sent (request line, headers in their order and case, ``Host`` included, so
SigV4 signatures stay valid; a ``Content-Length`` body or a ``Transfer-Encoding: chunked`` body,
``aws-chunked`` content as it is), and the response as the bytes the server sent, except an
interim ``100 Continue`` (the proxy answers ``Expect: 100-continue`` itself and drops the server's)
and the hop-by-hop ``Connection: close`` of a server that closes after every response (moto's
does): with ``keep_alive`` (default) the proxy keeps the client's connection open, as S3 does, and
opens a new upstream connection for the next request.

Faults, decided per request before it is forwarded (all attributes may be changed while running):

* ``forbid_prefix``: a request whose path starts with it is answered ``403 AccessDenied``.
* ``fail_rate``: this share of requests is answered ``503 SlowDown`` without being forwarded.
* ``drop_rate``: this share of requests has its connection closed without any response:
  ``drop_after_share`` of them after the server has answered (the request took effect), the rest
  before anything is forwarded. ``drop_after_methods`` (default: every method) limits drops after
  forwarding to these methods (the others' drops happen before), e.g. to the idempotent ones.
* ``throttle_bytes_per_s``: request bodies are read from the client and passed on at most this
  fast, so that a test can kill a process in the middle of an upload.

Seeded and bounded: whether the n-th request with a given method and target (path and query) is
faulted depends only on ``seed``, the method, the target and n (not on the order of the threads),
and a request whose last ``max_consecutive_faults`` tries (default 2) were all faulted goes
through, so a client that tries more often than that always gets there. The default suits
``pipeline.storage``: a 503 answer to a GET of an object smaller than the error body (about 250
bytes) is not retried by the AWS SDK under pyarrow (it fails with "Failed to flush response
stream"), only by storage's 3 whole tries. ``max_faults`` caps the faults in all.
Paths under ``/moto-api/`` (moto's control API) are never faulted.

Errors are S3's: an XML ``<Error>`` body with ``Code``, ``Message``, ``RequestId`` and ``HostId``
(no body for HEAD), ``x-amz-request-id`` and ``Content-Type: application/xml``. Loopback only.
"""

from __future__ import annotations

import collections
import contextlib
import random
import select
import socket
import socketserver
import threading
import time
import uuid
from email.utils import formatdate
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_HEAD = 64 << 10  # bytes of request / status line and headers
IO_CHUNK = 64 << 10
IDLE_TIMEOUT = 60.0  # seconds a connection may wait for its next byte


class _Closed(Exception):
    """The peer closed the connection (or broke the protocol): end this client connection."""


def s3_operation(method: str, target: str, headers: dict[str, str]) -> str:
    """The S3 API operation of a path-style request (``ListObjectsV2``, ``UploadPart``, ...)."""
    parts = urlsplit(target)
    path = parts.path
    if path.startswith("/moto-api/"):
        return "moto-api"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if not key:
        if "location" in query:
            return "GetBucketLocation"
        if method == "GET":
            if "uploads" in query:
                return "ListMultipartUploads"
            return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, f"{method} bucket")
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart"
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "PostObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    return f"{method} object"


def error_response(status: int, reason: str, code: str, message: str, head_only: bool, close: bool) -> bytes:
    """A whole S3 error response (status line, headers, XML body; no body for a HEAD request)."""
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>faultproxy-{request_id.lower()}</HostId></Error>"
    ).encode()
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/xml",
        f"Content-Length: {len(body)}",
        f"x-amz-request-id: {request_id}",
        f"Date: {formatdate(usegmt=True)}",
        "Server: AmazonS3",
    ]
    if close:
        headers.append("Connection: close")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


class _Head:
    """A parsed request or response head: the raw bytes and the fields the proxy needs."""

    def __init__(self, raw: bytes):
        self.raw = raw
        lines = raw.decode("latin-1").split("\r\n")
        self.start = lines[0]
        self.headers: dict[str, str] = {}  # lower-case names; a repeated header's values joined
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise _Closed(f"bad header line {line[:80]!r}")
            name = name.strip().lower()
            value = value.strip()
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value

    def tokens(self, name: str) -> list[str]:
        return [t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()]

    @property
    def chunked(self) -> bool:
        return "chunked" in self.tokens("transfer-encoding")

    @property
    def length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        try:
            return int(value.split(",")[0])
        except ValueError:
            raise _Closed(f"bad Content-Length {value!r}") from None


def _read_head(rfile) -> bytes | None:
    """The bytes up to and including the empty line; None at a clean end of the stream."""
    lines: list[bytes] = []
    size = 0
    while True:
        line = rfile.readline(MAX_HEAD + 1)
        if not line:
            if lines:
                raise _Closed("the peer closed the connection in the middle of a head")
            return None
        if not lines and line in (b"\r\n", b"\n"):  # a stray empty line between requests (RFC 9112 2.2)
            continue
        size += len(line)
        if size > MAX_HEAD or not line.endswith(b"\n"):
            raise _Closed("head too long")
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _copy_body(rfile, head: _Head, write, throttle: float | None = None, read_all: bool = False) -> int:
    """Pass a message body from ``rfile`` to ``write`` as its bytes (chunk framing included);
    returns the bytes passed. Without Content-Length or chunked framing: a request has no body, a
    response (``read_all``) runs to the end of the stream."""
    sent = 0
    started = time.perf_counter()

    def pace(n: int) -> None:
        nonlocal sent
        sent += n
        if throttle:
            wait = sent / throttle - (time.perf_counter() - started)
            if wait > 0:
                time.sleep(wait)

    def copy_exact(n: int) -> None:
        while n > 0:
            step = min(n, IO_CHUNK, max(1, int(throttle / 20)) if throttle else IO_CHUNK)
            data = rfile.read(step)
            if not data:
                raise _Closed("the peer closed the connection in the middle of a body")
            write(data)
            pace(len(data))
            n -= len(data)

    def copy_line() -> bytes:
        line = rfile.readline(MAX_HEAD + 1)
        if not line.endswith(b"\n"):
            raise _Closed("bad chunk framing")
        write(line)
        pace(len(line))
        return line

    if head.chunked:
        while True:
            size_line = copy_line()
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Closed(f"bad chunk size line {size_line[:80]!r}") from None
            if size == 0:
                while copy_line() not in (b"\r\n", b"\n"):  # trailers, then the empty line
                    pass
                return sent
            copy_exact(size)
            copy_line()  # the CRLF after the chunk's data
    length = head.length
    if length is not None:
        copy_exact(length)
    elif read_all:
        while data := rfile.read1(IO_CHUNK):
            write(data)
            pace(len(data))
    return sent


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    proxy: FaultProxy


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        conn: socket.socket = self.request
        proxy._track(conn, True)
        self.upstream: tuple[socket.socket, object] | None = None
        try:
            conn.settimeout(IDLE_TIMEOUT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rfile = conn.makefile("rb", buffering=IO_CHUNK)
            with proxy._lock:
                proxy._stats["connections"] += 1
            while self._one(proxy, conn, rfile):
                pass
        except (_Closed, OSError):
            pass
        finally:
            if self.upstream is not None:
                self.upstream[0].close()
            proxy._track(conn, False)

    def _connect(self, proxy: FaultProxy):
        """The upstream connection: this client connection's, or a new one if there is none or the
        server has closed it."""
        if self.upstream is not None and _stale(self.upstream[0]):
            self.upstream[0].close()
            self.upstream = None
        if self.upstream is None:
            sock = socket.create_connection(proxy._upstream, timeout=IDLE_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.upstream = (sock, sock.makefile("rb", buffering=IO_CHUNK))
        return self.upstream

    def _one(self, proxy: FaultProxy, conn: socket.socket, rfile) -> bool:
        """Relay one request; whether the client connection stays open for another."""
        raw = _read_head(rfile)
        if raw is None:
            return False
        head = _Head(raw)
        try:
            method, target, version = head.start.split(" ", 2)
        except ValueError:
            raise _Closed(f"bad request line {head.start[:80]!r}") from None
        operation = s3_operation(method, target, head.headers)
        # counted before the bytes go on, so that a client that has its answer sees it counted
        proxy._count(method, operation, len(raw))

        def received(n: int) -> None:
            proxy._add("request_bytes", n)

        def reply(data: bytes) -> None:
            proxy._add("response_bytes", len(data))
            conn.sendall(data)

        client_close = "close" in head.tokens("connection") or (
            version == "HTTP/1.0" and "keep-alive" not in head.tokens("connection")
        )
        has_body = head.chunked or bool(head.length)
        expects = "100-continue" in head.tokens("expect") and has_body
        fault = proxy._decide(method, target, operation)
        if fault == "drop_before":
            return False  # closed with the request (and any body) unread
        if fault in ("forbidden", "slowdown"):
            status, reason, code, message = (
                (403, "Forbidden", "AccessDenied", "Access Denied")
                if fault == "forbidden"
                else (503, "Slow Down", "SlowDown", "Please reduce your request rate.")
            )
            # with Expect: 100-continue the client waits for a word before it sends the body:
            # answer at once and close (the body is never read); else read the body first
            close = client_close or expects
            if not expects:
                _copy_body(rfile, head, lambda data: received(len(data)))
            proxy._add_status(status)
            reply(error_response(status, reason, code, message, method == "HEAD", close))
            return not close
        if expects:
            reply(b"HTTP/1.1 100 Continue\r\n\r\n")
        up_sock, up_rfile = self._connect(proxy)
        up_sock.sendall(raw)

        def forward(data: bytes) -> None:
            received(len(data))
            up_sock.sendall(data)

        _copy_body(rfile, head, forward, throttle=proxy.throttle_bytes_per_s)
        while True:  # interim responses (100 Continue) are the server's to the proxy
            response_raw = _read_head(up_rfile)
            if response_raw is None:
                raise _Closed("the server closed the connection without a response")
            response = _Head(response_raw)
            status = int(response.start.split(" ", 2)[1])
            if not 100 <= status < 200:
                break
        dropped = fault == "drop_after"
        no_body = method == "HEAD" or status in (204, 304)
        unframed = not no_body and not response.chunked and response.length is None
        server_close = unframed or "close" in response.tokens("connection")
        # Connection is hop-by-hop: the server's "close" ends the upstream connection only,
        # the client's stays open (as with S3) unless the body runs to the end of the stream
        keep_client = proxy.keep_alive and not unframed and not client_close
        if server_close and keep_client:
            response_raw = _without_connection_header(response_raw)
        if not dropped:
            proxy._add_status(status)
            reply(response_raw)
        if not no_body:
            _copy_body(up_rfile, response, (lambda data: None) if dropped else reply, read_all=True)
        if server_close:
            up_sock.close()
            self.upstream = None
        return not dropped and (keep_client if server_close else not client_close)


def _without_connection_header(raw: bytes) -> bytes:
    lines = raw.split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join(kept)


def _stale(sock: socket.socket) -> bool:
    """An idle keep-alive connection that the server has closed (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of ``upstream`` ("http://127.0.0.1:PORT") that counts
    what goes through and injects S3's faults (see the module's docstring)."""

    def __init__(
        self,
        upstream: str,
        *,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        drop_after_share: float = 0.5,
        drop_after_methods: tuple[str, ...] | None = None,
        throttle_bytes_per_s: float | None = None,
        forbid_prefix: str | None = None,
        seed: int = 0,
        max_consecutive_faults: int | None = 2,
        max_faults: int | None = None,
        keep_alive: bool = True,
        port: int = 0,
    ):
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"upstream must be http:// on loopback, not {upstream!r}")
        self._upstream = (parts.hostname, parts.port or 80)
        self.fail_rate, self.drop_rate, self.drop_after_share = fail_rate, drop_rate, drop_after_share
        self.drop_after_methods = None if drop_after_methods is None else tuple(m.upper() for m in drop_after_methods)
        self.throttle_bytes_per_s = throttle_bytes_per_s
        self.forbid_prefix = forbid_prefix
        self.seed, self.max_consecutive_faults, self.max_faults = seed, max_consecutive_faults, max_faults
        self.keep_alive = keep_alive
        self._port = port
        self._lock = threading.Lock()
        self._tries: dict[tuple[str, str], list[int]] = {}  # (method, target) -> [tries, faults in a row]
        self._faults_total = 0
        self._open: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""
        self.reset_stats()

    # life ---------------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._open)
        for conn in conns:  # handler threads blocked on idle keep-alive connections end now
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # statistics -----------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counts since the last :meth:`reset_stats`: ``requests``, ``request_bytes`` (heads and
        bodies received from clients), ``response_bytes`` (sent to clients, the proxy's own error
        responses included), ``by_method``, ``by_operation``, ``by_status`` (what the clients were answered),
        ``faults`` (``slowdown``, ``forbidden``, ``drop_before``, ``drop_after``), ``connections``."""
        with self._lock:
            return {k: dict(v) if isinstance(v, collections.Counter) else v for k, v in self._stats.items()}

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = {
                "requests": 0,
                "request_bytes": 0,
                "response_bytes": 0,
                "connections": 0,
                "by_method": collections.Counter(),
                "by_operation": collections.Counter(),
                "by_status": collections.Counter(),
                "faults": collections.Counter({"slowdown": 0, "forbidden": 0, "drop_before": 0, "drop_after": 0}),
            }

    def _count(self, method: str, operation: str, head_bytes: int) -> None:
        with self._lock:
            s = self._stats
            s["requests"] += 1
            s["request_bytes"] += head_bytes
            s["by_method"][method] += 1
            s["by_operation"][operation] += 1

    def _add(self, name: str, n: int) -> None:
        with self._lock:
            self._stats[name] += n

    def _add_status(self, status: int) -> None:
        with self._lock:
            self._stats["by_status"][status] += 1

    def _track(self, conn: socket.socket, opened: bool) -> None:
        with self._lock:
            (self._open.add if opened else self._open.discard)(conn)

    # faults -------------------------------------------------------------------------------------
    def _decide(self, method: str, target: str, operation: str) -> str | None:
        """None (forward), or the fault of this request."""
        path = urlsplit(target).path
        if self.forbid_prefix and (path.startswith(self.forbid_prefix) or unquote(path).startswith(self.forbid_prefix)):
            with self._lock:
                self._stats["faults"]["forbidden"] += 1
            return "forbidden"
        if operation == "moto-api" or not (self.fail_rate or self.drop_rate):
            return None
        with self._lock:
            tries = self._tries.setdefault((method, target), [0, 0])
            n = tries[0]
            tries[0] += 1
            if (self.max_consecutive_faults is not None and tries[1] >= self.max_consecutive_faults) or (
                self.max_faults is not None and self._faults_total >= self.max_faults
            ):
                tries[1] = 0
                return None
            draw = random.Random(f"{self.seed}|{method}|{target}|{n}")
            r = draw.random()
            if r < self.fail_rate:
                fault = "slowdown"
            elif r < self.fail_rate + self.drop_rate:
                methods = self.drop_after_methods
                after = draw.random() < self.drop_after_share and (methods is None or method in methods)
                fault = "drop_after" if after else "drop_before"
            else:
                tries[1] = 0
                return None
            tries[1] += 1
            self._faults_total += 1
            self._stats["faults"][fault] += 1
            return fault
