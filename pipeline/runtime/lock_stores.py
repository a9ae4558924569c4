"""The lock object on an object store, written only through the store's conditional writes.

S3 through boto3 (``If-None-Match: *`` to create, ``If-Match`` on the ETag to replace and delete:
pyarrow has no conditional writes), GCS through ``google-cloud-storage`` (generation
preconditions). :mod:`.lock` holds the lease built on these four operations.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from .. import storage
from ..errors import PipelineError


class OutputLocked(PipelineError):
    """Another run holds the output folder (or this run lost its lease)."""


class Store(Protocol):
    uri: str

    def create(self, body: bytes) -> str | None:
        """Write ``body`` only if no object exists; its version token, or None if one exists."""

    def read(self) -> tuple[bytes, str, float] | None:
        """(body, version token, seconds since it was last written, by the store's clock), or None."""

    def replace(self, body: bytes, token: str) -> str | None:
        """Overwrite only if the object still has ``token``; the new token, or None if it changed."""

    def delete(self, token: str) -> None:
        """Remove the object if it still has ``token``."""


class S3Store:
    """The lock object through boto3 (pyarrow has no conditional writes)."""

    def __init__(self, uri: str):
        self.uri = uri
        parts = urlsplit(uri)
        query = dict(parse_qsl(parts.query))
        self.bucket, self.key = parts.hostname or "", unquote(parts.path).lstrip("/")
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise OutputLocked(
                f"{storage.redact(uri)}: locking an s3:// folder needs boto3 (pip install boto3), or run with --unlocked"
            ) from None
        options: dict[str, Any] = {"config": Config(retries={"mode": "standard", "max_attempts": storage.S3_ATTEMPTS})}
        endpoint = query.get("endpoint_override")
        if endpoint:
            options["endpoint_url"] = (
                f"{query.get('scheme', 'https')}://{endpoint}" if "://" not in endpoint else endpoint
            )
        else:
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            if endpoint:
                options["endpoint_url"] = endpoint
        if query.get("region"):
            options["region_name"] = query["region"]
        if parts.username:
            options.update(
                aws_access_key_id=unquote(parts.username), aws_secret_access_key=unquote(parts.password or "")
            )
        self.client = boto3.client("s3", **options)

    def _call(self, name: str, **kwargs) -> dict | None:
        """The call's response; None for a failed precondition (412), retried on a race (409)."""
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(8):
            try:
                return getattr(self.client, name)(Bucket=self.bucket, Key=self.key, **kwargs)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 412 or code == "PreconditionFailed":
                    return None
                if code in ("NoSuchKey", "404") and name == "get_object":
                    return None
                if status == 409 or code == "ConditionalRequestConflict":
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise storage.StorageError(self.uri, f"{code or status}: {exc}") from None
            except BotoCoreError as exc:
                raise storage.StorageError(self.uri, f"{type(exc).__name__}: {exc}") from None
        raise storage.StorageError(self.uri, "the lock object kept changing (409 ConditionalRequestConflict)")

    def create(self, body: bytes) -> str | None:
        response = self._call("put_object", Body=body, IfNoneMatch="*")
        return response["ETag"] if response else None

    def read(self) -> tuple[bytes, str, float] | None:
        response = self._call("get_object")
        if response is None:
            return None
        body = response["Body"].read()
        now = response["ResponseMetadata"]["HTTPHeaders"].get("date")
        server_now = parsedate_to_datetime(now) if now else datetime.now(timezone.utc)
        return body, response["ETag"], (server_now - response["LastModified"]).total_seconds()

    def replace(self, body: bytes, token: str) -> str | None:
        response = self._call("put_object", Body=body, IfMatch=token)
        return response["ETag"] if response else None

    def delete(self, token: str) -> None:
        self._call("delete_object", IfMatch=token)


class GcsStore:
    """The lock object through google-cloud-storage (generation preconditions). With
    ``STORAGE_EMULATOR_HOST`` set (an emulator, as in the tests) the client is anonymous."""

    def __init__(self, uri: str):
        self.uri = uri
        parts = urlsplit(uri)
        try:
            from google.cloud import storage as gcs  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise OutputLocked(
                f"{storage.redact(uri)}: locking a gs:// folder needs google-cloud-storage "
                f"(pip install google-cloud-storage), or run with --unlocked"
            ) from None
        self.bucket, self.key = parts.hostname or "", unquote(parts.path).lstrip("/")
        self._gcs = gcs
        self._client: Any = None  # built on first use: finding credentials may fail (a StorageError then)

    def _blob(self) -> Any:
        if self._client is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials  # type: ignore[import-not-found,unused-ignore]

                self._client = self._gcs.Client(project="emulator", credentials=AnonymousCredentials())
            else:
                self._client = self._gcs.Client()
        return self._client.bucket(self.bucket).blob(self.key)

    def _call(self, fn, missing_object_is_none: bool = True) -> Any:
        """``fn(blob)``; None for a failed precondition (412), and for no such object where
        ``missing_object_is_none`` (an upload answered 404 names a missing bucket: an error)."""
        import requests
        from google.api_core import exceptions as gexc  # type: ignore[import-not-found,unused-ignore]
        from google.auth import exceptions as auth_exc  # type: ignore[import-not-found,unused-ignore]

        try:
            return fn(self._blob())
        except gexc.PreconditionFailed:
            return None
        except gexc.NotFound as exc:
            if missing_object_is_none:
                return None
            raise storage.StorageError(self.uri, f"NotFound: {exc}") from None
        except gexc.GoogleAPIError as exc:
            raise storage.StorageError(self.uri, f"{type(exc).__name__}: {exc}") from None
        except (auth_exc.GoogleAuthError, requests.RequestException) as exc:
            raise storage.StorageError(self.uri, f"{type(exc).__name__}: {exc}") from None

    def create(self, body: bytes) -> str | None:
        def put(blob):
            blob.upload_from_string(body, if_generation_match=0)
            return str(blob.generation)

        return self._call(put, missing_object_is_none=False)

    def read(self) -> tuple[bytes, str, float] | None:
        def get(blob):
            blob.reload()
            data = blob.download_as_bytes(if_generation_match=blob.generation)
            return data, str(blob.generation), (datetime.now(timezone.utc) - blob.updated).total_seconds()

        return self._call(get)

    def replace(self, body: bytes, token: str) -> str | None:
        def put(blob):
            blob.upload_from_string(body, if_generation_match=int(token))
            return str(blob.generation)

        return self._call(put, missing_object_is_none=False)

    def delete(self, token: str) -> None:
        self._call(lambda blob: blob.delete(if_generation_match=int(token)))
