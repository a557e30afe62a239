"""A store under a prefix of an S3 bucket (AWS or any S3-compatible server)."""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as bce
import botocore.session
from botocore.config import Config

from topoff.errors import ConfigError, StoreError
from topoff.stores import s3_versions
from topoff.stores.answer_watch import AnswerTooSlow
from topoff.stores.base import (
    BodyEndedEarly,
    FileInfo,
    FileMissing,
    ObjectOptions,
    ObjectVersion,
    Store,
    StoreOptions,
    check_name,
)
from topoff.stores.s3_read import STREAM_ERRORS, S3Reader
from topoff.stores.s3_session import watch_answers
from topoff.stores.s3_upload import _TAKEN_CODES, PART_SIZE, _MultipartWriter
from topoff.stores.s3_versions import BucketInfo

__all__ = ["PART_SIZE", "BucketInfo", "S3Store"]
_STYLES = ("path", "virtual", "auto")

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_DENIED_CODES = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
}
_REGION_CODES = {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraint"}
_loader_lock = threading.Lock()
_shared_loader: Any = None


def _new_session() -> boto3.session.Session:
    """A fresh session (credentials are looked up anew), sharing the parsed service models.

    Parsing botocore's JSON models is most of the cost of making a client; sharing the
    loader makes every store after the first cheap to open.
    """
    global _shared_loader
    session = botocore.session.Session()
    with _loader_lock:
        if _shared_loader is None:
            _shared_loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _shared_loader)
    return boto3.session.Session(botocore_session=session)


def _region(configured: str | None) -> str | None:
    """[store] s3_region, else AWS_DEFAULT_REGION, else AWS_REGION (which botocore's client
    does not read), else the AWS config's."""
    return (configured or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
            or None)


class S3Store(Store):
    """Files stored as ``s3://bucket/prefix/<name>``."""

    def __init__(self, bucket: str, prefix: str = "", options: StoreOptions | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.options = options or StoreOptions()
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        endpoint = self.options.s3_endpoint_url
        custom_endpoint = bool(
            endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        style = self.options.s3_addressing_style or os.environ.get("TOPOFF_S3_ADDRESSING_STYLE")
        if style is None:
            # S3-compatible servers (MinIO, Ceph, moto) rarely have wildcard DNS for buckets.
            style = "path" if custom_endpoint else None
        elif style not in _STYLES:
            raise ConfigError(f"unknown S3 addressing style {style!r}",
                              hint="use path, virtual or auto (TOPOFF_S3_ADDRESSING_STYLE)")
        config = Config(
            connect_timeout=self.options.http_timeout,
            read_timeout=self.options.http_timeout,
            retries={"total_max_attempts": self.options.retries + 1, "mode": "standard"},
            s3={"addressing_style": style} if style else None,
        )
        try:
            self.client: Any = _new_session().client(
                "s3", endpoint_url=endpoint, region_name=_region(self.options.s3_region),
                config=config
            )
            watch_answers(self.client, self.options.http_answer_timeout)
        except (ValueError, bce.BotoCoreError) as exc:
            raise StoreError(
                f"cannot set up S3 access for {self.url}: {_one_line(exc)}",
                hint="check s3_endpoint_url / AWS_ENDPOINT_URL and the AWS region settings",
            ) from exc

    # -- reading -----------------------------------------------------------------------

    def list(self, prefix: str = "") -> list[FileInfo]:
        return sorted(self.scan(prefix), key=lambda info: info.name)

    def scan(self, prefix: str = "") -> Iterator[FileInfo]:
        """The keys under ``prefix``, one page of 1,000 asked for at a time."""
        skip = len(self._key(""))
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key("") + prefix
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    modified = obj.get("LastModified")
                    yield FileInfo(obj["Key"][skip:], obj["Size"],
                                   modified.timestamp() if modified else None)
        except Exception as exc:
            raise self._error(exc, "list", prefix or "files") from exc

    def stat(self, name: str) -> FileInfo | None:
        key = self._key(check_name(name))
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            error = self._error(exc, "read", name)
            # HEAD has no body, so a missing bucket also comes back as a bare 404.
            if isinstance(error, FileMissing):
                return None
            raise error from exc
        return FileInfo(name, head["ContentLength"])

    def open_read(self, name: str, offset: int = 0) -> BinaryIO:
        return S3Reader(self, check_name(name), offset).start()

    # -- writing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, name: str, replace: bool = False,
              options: ObjectOptions | None = None) -> Iterator[BinaryIO]:
        writer = _MultipartWriter(self, check_name(name), replace, options)
        try:
            yield cast(BinaryIO, writer)
            writer.finish()
        except BaseException:
            writer.abort()
            raise

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(check_name(name)))
        except Exception as exc:
            error = self._error(exc, "delete", name)
            if not isinstance(error, FileMissing):
                raise error from exc

    def purge(self, name: str) -> None:
        """Remove every version of ``name`` (a plain delete on a versioned bucket only adds
        a delete marker); :class:`~topoff.stores.base.Retained` when Object Lock keeps one."""
        s3_versions.purge(self, name)

    def list_versions(self, prefix: str = "") -> builtins.list[ObjectVersion]:
        """Every version and delete marker under ``prefix``: by name, the latest first."""
        return s3_versions.list_versions(self, prefix)

    def bucket_info(self) -> BucketInfo:
        """Whether the bucket keeps versions, locks objects and expires old versions."""
        return s3_versions.bucket_info(self)

    def require_object_lock(self) -> None:
        s3_versions.require_object_lock(self)

    def ensure_retention(self, name: str, lock: dict[str, Any]) -> None:
        s3_versions.ensure_retention(self, name, lock)

    def swap_bytes(self, name: str, expected: bytes, data: bytes | None) -> bool:
        key = self._key(check_name(name))
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            current, etag = response["Body"].read(), response["ETag"]
        except Exception as exc:
            error = self._error(exc, "read", name)
            if isinstance(error, FileMissing):
                return False
            raise error from exc
        if current != expected:
            return False
        try:
            # If-Match: the object is replaced (or removed) only if nobody changed it since.
            if data is None:
                self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
            else:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfMatch=etag)
        except bce.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _TAKEN_CODES or code in _MISSING_CODES:
                return False
            raise self._error(exc, "write", name) from exc
        except Exception as exc:
            raise self._error(exc, "write", name) from exc
        return True

    def list_uploads(self) -> builtins.list[tuple[str, str, float]]:
        """Unfinished multipart uploads under the prefix: (name, upload id, start time)."""
        found = []
        skip = len(self._key(""))
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._key(""))
            for page in pages:
                for up in page.get("Uploads", ()):
                    found.append((up["Key"][skip:], up["UploadId"], up["Initiated"].timestamp()))
        except Exception as exc:
            raise self._error(exc, "list", "uploads") from exc
        return found

    def abort_upload(self, name: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(check_name(name)), UploadId=upload_id)
        except Exception as exc:
            error = self._error(exc, "delete", name)
            if not isinstance(error, FileMissing):
                raise error from exc

    def close(self) -> None:
        self.client.close()

    # -- helpers -----------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _endpoint(self) -> str:
        parts = urlsplit(self.client.meta.endpoint_url)
        # never show credentials someone may have put in the URL
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def _error(self, exc: BaseException, action: str, name: str) -> StoreError:
        """Translate a botocore failure into a StoreError (FileMissing for missing keys)."""
        where = f"{self.url}/{name}" if action != "list" else self.url
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            return StoreError(
                f"no AWS credentials found to {action} {where}",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
            )
        if isinstance(exc, bce.EndpointConnectionError | bce.ConnectTimeoutError):
            return StoreError(
                f"cannot reach the S3 endpoint {self._endpoint()} to {action} {where}",
                hint="check AWS_ENDPOINT_URL / s3_endpoint_url and that the server is reachable",
            )
        if isinstance(exc, AnswerTooSlow):
            # final, not retried: a slow server is as slow when asked again
            return StoreError(
                f"the S3 endpoint {self._endpoint()} sent no complete answer (status line "
                f"and headers) within {self.options.http_answer_timeout:g} s to {action} "
                f"{where}; topoff stopped waiting",
                hint="check the S3 server (or a proxy in front of it); [store] "
                "http_answer_timeout sets the limit (0: none)")
        if isinstance(exc, bce.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "NoSuchBucket":
                return StoreError(
                    f"S3 bucket {self.bucket} does not exist",
                    hint=f"create it (aws s3 mb s3://{self.bucket}) or check the bucket name",
                )
            if code in _MISSING_CODES:
                return FileMissing(f"{where} not found", hint="check the store location")
            if code in _DENIED_CODES:
                return StoreError(
                    f"access denied to {action} {where} ({code})",
                    hint="check the AWS credentials (AWS_ACCESS_KEY_ID etc.) and bucket policy",
                )
            if code in _REGION_CODES:
                return StoreError(
                    f"S3 bucket {self.bucket} is in another region ({code})",
                    hint="set s3_region / AWS_DEFAULT_REGION to the bucket's region",
                )
            message = _one_line(error.get("Message") or code)
            return StoreError(
                f"S3 refused to {action} {where}: {message}",
                hint="check the bucket, its policy and the S3 server's logs",
            )
        if isinstance(exc, bce.ParamValidationError):
            return StoreError(
                f"invalid S3 location {where}",
                hint="S3 bucket names are 3-63 characters: lowercase letters, digits, '.' and '-'",
            )
        if isinstance(exc, (*STREAM_ERRORS, BodyEndedEarly)):
            return StoreError(
                f"connection to {self._endpoint()} kept breaking while reading {where}",
                hint="check the network; topoff retries ([store] retries) and resumes",
            )
        return StoreError(
            f"S3 {action} failed for {where}: {_one_line(exc)}",
            hint="check the S3 settings (endpoint, region, credentials) and the network",
        )


def _one_line(text: object) -> str:
    # botocore messages (parameter validation in particular) can span several lines
    return " ".join(str(text).split())
