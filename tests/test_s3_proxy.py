"""FaultProxy (tests/s3_proxy.py) in front of moto's S3 server: requests relayed byte for byte,
boto3 and ``pipeline.storage`` getting their bytes back through 503s and dropped connections, the
counts of what went through, and a refused prefix as a StorageError without secrets."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from pyarrow import fs as pafs

from pipeline import storage
from tests.s3 import REGION, apply_env, restore_env
from tests.s3_proxy import FaultProxy

SECRET = "SECRETXYZ"  # a secret access key that no message may show (moto accepts any credentials)


@pytest.fixture
def proxy(s3):
    """A FaultProxy without faults in front of the (emptied) S3 server; AWS_ENDPOINT_URL points at
    it for the test and is restored afterwards."""
    proxy = FaultProxy(s3.endpoint).start()
    old = apply_env(s3.env(proxy.endpoint))
    yield proxy
    restore_env(old)
    proxy.stop()


def _boto(s3, proxy: FaultProxy, attempts: int = 10):
    import boto3

    env = s3.env(proxy.endpoint)
    return boto3.client(
        "s3",
        endpoint_url=proxy.endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}, max_pool_connections=16),
    )


@pytest.fixture
def s3_client_per_thread(monkeypatch):
    """One pyarrow S3 filesystem per thread and options instead of one per ``storage`` call.

    Registering a new S3 client waits until no request of any S3 client of the process is in
    flight (arrow's S3ClientFinalizer takes its lock exclusively; every call holds it shared for
    its whole duration, the SDK's retry back-off included), so threads that each build a client
    per call take turns: with faults, 30 files in 8 threads took as long as one after the other.
    ``storage`` still builds every client's options (endpoint, region, 8 SDK attempts)."""
    real = pafs.S3FileSystem
    local = threading.local()
    made = []

    def per_thread(**options):
        clients = local.__dict__.setdefault("clients", {})
        key = repr(sorted((k, v) for k, v in options.items() if k != "retry_strategy"))
        if key not in clients:
            clients[key] = real(**options)
            made.append(clients[key])
        return clients[key]

    monkeypatch.setattr(pafs, "S3FileSystem", per_thread)
    yield
    made.clear()


def _warm_threads(n: int, uri: str) -> ThreadPoolExecutor:
    """``n`` threads that each built their S3 client before any of them sends a request."""
    barrier = threading.Barrier(n)

    def init() -> None:
        storage.resolve(uri)
        barrier.wait(timeout=30)

    pool = ThreadPoolExecutor(n, initializer=init)
    for f in [pool.submit(lambda: None) for _ in range(n)]:
        f.result()
    return pool


def test_boto3_and_storage_get_their_bytes_back_through_faults(s3, proxy, s3_client_per_thread, tmp_path):
    """20% of requests answered 503 SlowDown, 10% of connections dropped (before the request
    reaches S3 or after it took effect): boto3 (standard retries) and pipeline.storage (the SDK's
    retries, then whole uploads / reads) write and read back 30 small files and a 12 MiB file each."""
    bucket = s3.bucket("faulty")
    rng = random.Random(5)
    small = {f"f{i:02d}.bin": rng.randbytes(50 + 97 * i) for i in range(30)}
    big = rng.randbytes(12 << 20)
    boto = _boto(s3, proxy)
    proxy.fail_rate, proxy.drop_rate, proxy.seed = 0.2, 0.1, 7
    proxy.max_consecutive_faults = 2  # the default: a third try gets through (storage tries a read 3 times)
    downloaded = {}

    def boto_roundtrip(key: str, data: bytes) -> None:
        boto.put_object(Bucket="faulty", Key=f"boto/{key}", Body=data)
        assert boto.get_object(Bucket="faulty", Key=f"boto/{key}")["Body"].read() == data

    def storage_roundtrip(key: str, data: bytes) -> None:
        uri = f"{bucket}/storage/{key}"
        record = storage.write_bytes(uri, data)
        assert record["bytes"] == len(data) and record["sha256"] == hashlib.sha256(data).hexdigest()
        assert storage.read_bytes(uri) == data

    def storage_big(tmp: str) -> None:
        uri = f"{bucket}/storage/big.bin"
        storage.write_bytes(uri, big)
        storage.download(uri, tmp)  # 1 MiB ranged GETs (read_bytes would take 48 of 256 KiB)
        with open(tmp, "rb") as fh:
            downloaded["big"] = fh.read()

    started = time.perf_counter()
    with _warm_threads(16, f"{bucket}/x") as pool:
        futures = [pool.submit(storage_big, str(tmp_path / "big.bin"))]
        futures.append(pool.submit(boto_roundtrip, "big.bin", big))
        futures += [pool.submit(storage_roundtrip, k, v) for k, v in small.items()]
        futures += [pool.submit(boto_roundtrip, k, v) for k, v in small.items()]
        for f in futures:
            f.result()
    seconds = time.perf_counter() - started
    assert downloaded["big"] == big

    stats = proxy.stats()
    faults = stats["faults"]
    assert faults["slowdown"] >= 10 and faults["drop_before"] + faults["drop_after"] >= 5, (faults, seconds)
    assert stats["by_status"][503] == faults["slowdown"]
    assert stats["requests"] == sum(stats["by_method"].values()) == sum(stats["by_operation"].values())
    ops = stats["by_operation"]
    # every object was written (boto3: PutObject; pyarrow: multipart, or PutObject when small)
    assert ops.get("PutObject", 0) + ops.get("CompleteMultipartUpload", 0) >= 2 * 31
    assert ops["GetObject"] >= 2 * 31
    payload = 2 * (len(big) + sum(map(len, small.values())))
    assert payload < stats["request_bytes"] < 3 * payload
    assert payload < stats["response_bytes"] < 3 * payload
    keys = s3.keys("faulty")
    assert keys == sorted(
        [*(f"{p}/{k}" for p in ("boto", "storage") for k in small), "boto/big.bin", "storage/big.bin"]
    )


def test_counts_what_went_through(s3, proxy):
    """Without faults: one request per call, bytes in and out at least the payload's."""
    s3.bucket("counted")
    boto = _boto(s3, proxy)
    proxy.reset_stats()
    for i in range(5):
        boto.put_object(Bucket="counted", Key=f"k{i}", Body=b"x" * 1000)
    for i in range(5):
        assert boto.get_object(Bucket="counted", Key=f"k{i}")["Body"].read() == b"x" * 1000
    boto.list_objects_v2(Bucket="counted")
    stats = proxy.stats()
    assert stats["requests"] == 11
    assert stats["by_method"] == {"PUT": 5, "GET": 6}
    assert stats["by_operation"] == {"PutObject": 5, "GetObject": 5, "ListObjectsV2": 1}
    assert stats["by_status"] == {200: 11}
    assert 5000 < stats["request_bytes"] < 5000 + 11 * 4096
    assert 5000 < stats["response_bytes"] < 5000 + 11 * 4096
    assert stats["connections"] == 1  # kept alive, although moto closes after every response
    proxy.reset_stats()
    assert proxy.stats()["requests"] == 0 and proxy.stats()["by_operation"] == {}


def test_error_responses_are_s3s(s3, proxy):
    s3.bucket("shaped")
    boto = _boto(s3, proxy, attempts=1)
    proxy.fail_rate, proxy.max_consecutive_faults = 1.0, None
    with pytest.raises(ClientError) as info:
        boto.put_object(Bucket="shaped", Key="a", Body=b"abc")
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    proxy.fail_rate, proxy.forbid_prefix = 0.0, "/shaped/private/"
    with pytest.raises(ClientError) as info:
        boto.get_object(Bucket="shaped", Key="private/a")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert proxy.stats()["faults"] == {"slowdown": 1, "forbidden": 1, "drop_before": 0, "drop_after": 0}
    assert s3.keys("shaped") == []


def test_drops_before_and_after_forwarding(s3, proxy):
    """A drop before forwarding leaves no object; a drop after forwarding leaves the object,
    though the client saw no response."""
    s3.bucket("dropped")
    boto = _boto(s3, proxy, attempts=1)
    proxy.drop_rate, proxy.max_consecutive_faults = 1.0, None
    proxy.drop_after_share = 0.0
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        boto.put_object(Bucket="dropped", Key="before", Body=b"abc")
    proxy.drop_after_share = 1.0
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        boto.put_object(Bucket="dropped", Key="after", Body=b"abc")
    assert s3.keys("dropped") == ["after"]
    assert proxy.stats()["faults"] == {"slowdown": 0, "forbidden": 0, "drop_before": 1, "drop_after": 1}


def test_forbidden_prefix_is_a_storage_error_without_secrets(s3, proxy):
    bucket = s3.bucket("guarded")
    s3.client().put_object(Bucket="guarded", Key="private/data.bin", Body=b"secret data")
    s3.client().put_object(Bucket="guarded", Key="public/data.bin", Body=b"open data")
    proxy.forbid_prefix = "/guarded/private/"
    old = apply_env({"AWS_ACCESS_KEY_ID": "KEYIDXYZ", "AWS_SECRET_ACCESS_KEY": SECRET})
    try:
        assert storage.read_bytes(f"{bucket}/public/data.bin") == b"open data"
        uri = f"{bucket}/private/data.bin"
        with pytest.raises(storage.StorageError) as info:
            storage.read_bytes(uri)
        message = str(info.value)
        assert message.startswith(f"{uri}: "), message
        assert "ACCESS_DENIED" in message or "AccessDenied" in message, message
        assert SECRET not in message
        with_credentials = f"s3://KEYIDXYZ:{SECRET}@guarded/private/data.bin"
        with pytest.raises(storage.StorageError) as info:
            storage.read_bytes(with_credentials)
        assert str(info.value).startswith(f"{uri}: ") and SECRET not in str(info.value), str(info.value)
    finally:
        restore_env(old)
    assert proxy.stats()["faults"]["forbidden"] == 2  # refused at once: no retries


def test_throttled_uploads_are_slow(s3, proxy):
    s3.bucket("slow")
    boto = _boto(s3, proxy)
    data = os.urandom(96 << 10)
    proxy.throttle_bytes_per_s = 256 << 10
    started = time.perf_counter()
    boto.put_object(Bucket="slow", Key="a", Body=data)
    assert time.perf_counter() - started >= 0.3  # 96 KiB at 256 KiB/s: 0.375 s at least
    proxy.throttle_bytes_per_s = None
    assert boto.get_object(Bucket="slow", Key="a")["Body"].read() == data


class _Recorder(socketserver.ThreadingTCPServer):
    """An upstream that records the bytes it receives and answers each request, in order, with
    ``answers`` on one connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, expected: list[int], answers: list[bytes]):
        self.expected, self.answers = expected, answers
        self.received: list[bytes] = []
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()


class _RecorderHandler(socketserver.BaseRequestHandler):
    server: _Recorder

    def handle(self) -> None:
        self.server.connections += 1
        conn: socket.socket = self.request
        for size, answer in zip(self.server.expected, self.server.answers):
            data = b""
            while len(data) < size:
                chunk = conn.recv(size - len(data))
                if not chunk:
                    return
                data += chunk
            self.server.received.append(data)
            conn.sendall(answer)


def _response(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, data
        data += chunk
    return data


def test_relays_requests_byte_for_byte_on_one_connection():
    """Request bytes reach the server as sent (Host, header case and order, a chunked body with an
    extension and a trailer, Expect), two requests on one connection, responses as sent, the
    server's interim 100 Continue left out (the proxy sent its own)."""
    put = (
        b"PUT /bkt/key?partNumber=1&uploadId=u1 HTTP/1.1\r\nHost: bkt.example.com:9000\r\n"
        b"X-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x/y, Signature=abc\r\n"
        b"transfer-encoding: chunked\r\nContent-Encoding: aws-chunked\r\nExpect: 100-continue\r\n\r\n"
        b"5;chunk-signature=00ff\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32: AAAA\r\n\r\n"
    )
    get = b"GET /bkt/key HTTP/1.1\r\nhost: Bkt.Example.com:9000\r\nRange: bytes=0-4\r\n\r\n"
    answer_put = b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nETag: "e"\r\nContent-Length: 0\r\n\r\n'
    answer_get = b"HTTP/1.1 206 Partial Content\r\nContent-Type: a/b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    upstream = _Recorder([len(put), len(get)], [answer_put, answer_get])
    proxy = FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}").start()
    try:
        host, port = proxy.endpoint.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(put)
            continue_ok = b"HTTP/1.1 100 Continue\r\n\r\n"
            final_put = answer_put[len(continue_ok) :]
            assert _response(sock, len(continue_ok) + len(final_put)) == continue_ok + final_put
            sock.sendall(get)
            assert _response(sock, len(answer_get)) == answer_get
        assert upstream.received == [put, get]
        assert upstream.connections == 1
        stats = proxy.stats()
        assert stats["requests"] == 2 and stats["connections"] == 1
        assert stats["by_operation"] == {"UploadPart": 1, "GetObject": 1}
        assert stats["request_bytes"] == len(put) + len(get)
        assert stats["response_bytes"] == len(continue_ok) + len(final_put) + len(answer_get)
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()
