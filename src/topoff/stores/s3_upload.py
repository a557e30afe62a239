"""Uploads to S3: a streaming writer that sends one part at a time."""

from __future__ import annotations

import contextlib
import io
import mimetypes
from typing import TYPE_CHECKING, Any

import botocore.exceptions as bce

from topoff.stores.base import FileExists

if TYPE_CHECKING:
    from topoff.stores.s3 import S3Store

PART_SIZE = 8 * 1024 * 1024
# S3 allows at most 10,000 parts; growing the part size every 1,000 parts lifts the
# largest file from 80 GB to about 440 GB while the buffer stays one part.
_PARTS_PER_STEP = 1000
# A conditional write lost: the object exists (412), or another conditional write of it is
# in flight (409).
_TAKEN_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_TYPES = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8",
          "json": "application/json", "sql": "text/plain; charset=utf-8",
          "zst": "application/zstd"}


class _MultipartWriter(io.RawIOBase):
    """A writable stream onto an S3 object.

    boto3 only uploads from a readable source, while topoff's exporter pushes bytes, so this
    small streaming writer buffers one part at a time: the multipart upload starts with the
    first full part, each part is sent as soon as it fills, and the upload is completed (or
    aborted) when the ``with`` block ends. A file smaller than one part is a single PUT.
    """

    def __init__(self, store: S3Store, name: str, replace: bool = False) -> None:
        super().__init__()
        self._store = store
        self._name = name
        # a new name is created only if no object has it (S3 conditional writes)
        self._condition: dict[str, str] = {} if replace else {"IfNoneMatch": "*"}
        # a browser shows index.html (and a README) when the bucket is served as a web site
        kind = _TYPES.get(name.rpartition(".")[2]) or mimetypes.guess_type(name)[0]
        self._type: dict[str, str] = {"ContentType": kind} if kind else {}
        self._key = store._key(name)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            room = self._part_size() - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self._part_size():
                self._send_part()
        self._written += size
        return size

    def _part_size(self) -> int:
        return PART_SIZE * (1 + len(self._parts) // _PARTS_PER_STEP)

    def _call(self, method: str, **args: Any) -> Any:
        try:
            return getattr(self._store.client, method)(
                Bucket=self._store.bucket, Key=self._key, **args
            )
        except bce.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if self._condition and code in _TAKEN_CODES:
                raise FileExists(
                    f"{self._store.url}/{self._name} already exists; it is not overwritten",
                    hint="published files never change: another export may be running on "
                    "this dataset") from None
            raise self._store._error(exc, "write", self._name) from exc
        except Exception as exc:
            raise self._store._error(exc, "write", self._name) from exc

    def _send_part(self) -> None:
        # the buffer goes to botocore as is (no copy); a new one is started afterwards
        if self._upload_id is None:
            self._upload_id = self._call("create_multipart_upload", **self._type)["UploadId"]
        number = len(self._parts) + 1
        response = self._call(
            "upload_part", UploadId=self._upload_id, PartNumber=number, Body=self._buffer
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        # newer botocore sends a checksum with each part; completion must repeat it
        for field in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256"):
            if response.get(field):
                part[field] = response[field]
        self._parts.append(part)
        self._buffer = bytearray()

    def finish(self) -> None:
        """Make the object visible: the last part and completion, or one PUT."""
        if self._upload_id is None:
            self._call("put_object", Body=self._buffer, **self._condition, **self._type)
            self._buffer = bytearray()
            return
        if self._buffer:
            self._send_part()
        self._call(
            "complete_multipart_upload",
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
            **self._condition,
        )
        self._upload_id = None

    def abort(self) -> None:
        """Drop an unfinished upload so no parts linger (and cost money) in the bucket."""
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            # best effort: the original error matters more than a failed cleanup
            with contextlib.suppress(Exception):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._key, UploadId=upload_id
                )
