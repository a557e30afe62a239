"""Uploads to S3: a streaming writer that sends several parts at once.

Part sizes: 8 MiB for the first 1,000 parts, then doubling every 1,000 parts (16, 32, ...
MiB), so an object of unknown size can grow to about 8 TB within S3's 10,000 parts while a
small one still uses small parts. At most :data:`PARTS_IN_FLIGHT` parts are being sent at
once; memory stays about ``(PARTS_IN_FLIGHT + 1) x`` the current part size.
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import botocore.exceptions as bce

from topoff.errors import StoreError
from topoff.stores.base import FileExists, ObjectOptions

if TYPE_CHECKING:
    from topoff.stores.s3 import S3Store

PART_SIZE = 8 * 1024 * 1024
#: parts sent at the same time (each holds one part in memory)
PARTS_IN_FLIGHT = 4
MAX_PARTS = 10_000
# S3 allows at most 10,000 parts; doubling the part size every 1,000 parts lifts the
# largest object to 8 MiB x 1,000 x (1 + 2 + ... + 512), about 8.6 TB.
_PARTS_PER_STEP = 1000
_LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
# A conditional write lost: the object exists (412), or another conditional write of it is
# in flight (409).
_TAKEN_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_TYPES = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8",
          "json": "application/json", "sql": "text/plain; charset=utf-8",
          "zst": "application/zstd", "age": "application/octet-stream"}
_CHECKSUMS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256")


def part_size(number: int) -> int:
    """The size of part ``number`` (1-based) of a multipart upload."""
    return PART_SIZE << min((number - 1) // _PARTS_PER_STEP, 9)


def lock_args(options: ObjectOptions | None, url: str) -> dict[str, Any]:
    """The Object Lock arguments of a PUT or multipart upload ({} without a lock)."""
    if options is None or options.lock_days is None:
        return {}
    days, mode = options.lock_days, options.lock_mode
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36_500:
        raise StoreError(f"invalid lock period for {url}: {days!r} days",
                         hint="lock_days must be a whole number of days from 1 to 36500")
    if mode not in _LOCK_MODES:
        raise StoreError(f"invalid lock mode for {url}: {mode!r}",
                         hint="use COMPLIANCE or GOVERNANCE")
    until = datetime.now(UTC) + timedelta(days=days)
    # Object Lock puts must carry a checksum: SHA-256, computed by botocore on the way
    return {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": until,
            "ChecksumAlgorithm": "SHA256"}


class _MultipartWriter(io.RawIOBase):
    """A writable stream onto an S3 object.

    boto3 only uploads from a readable source, while topoff's exporter pushes bytes, so this
    small streaming writer buffers one part at a time: the multipart upload starts with the
    first full part, each full part goes to a small thread pool (the writer blocks while
    :data:`PARTS_IN_FLIGHT` are being sent), and the upload is completed (or aborted) when
    the ``with`` block ends. An object smaller than one part is a single PUT.
    """

    def __init__(self, store: S3Store, name: str, replace: bool = False,
                 options: ObjectOptions | None = None) -> None:
        super().__init__()
        self._store = store
        self._name = name
        # a new name is created only if no object has it (S3 conditional writes)
        self._condition: dict[str, str] = {} if replace else {"IfNoneMatch": "*"}
        self._lock = lock_args(options, f"{store.url}/{name}")
        if self._lock:
            store.require_object_lock()
        # a browser shows index.html (and a README) when the bucket is served as a web site
        kind = (options and options.content_type) or _TYPES.get(name.rpartition(".")[2]) \
            or mimetypes.guess_type(name)[0]
        self._type: dict[str, str] = {"ContentType": kind} if kind else {}
        self._key = store._key(name)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._futures: list[Future[dict[str, Any]]] = []
        self._seen = 0  # futures[:_seen] finished without error
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(PARTS_IN_FLIGHT)
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
        return part_size(len(self._futures) + 1)

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
        if self._upload_id is None:
            # the upload declares the checksum its parts carry (botocore adds a CRC32 to
            # each part anyway): the server then keeps a composite of the parts' checksums
            # instead of computing one over the whole object again at completion, as
            # boto3's transfer manager does (Object Lock needs SHA-256)
            args = {**self._type, **self._checksum(), **self._lock}
            self._upload_id = self._call("create_multipart_upload", **args)["UploadId"]
            self._pool = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise StoreError(f"{self._store.url}/{self._name} is too large for one S3 object",
                             hint="S3 objects have at most 10,000 parts (about 8 TB here)")
        body, self._buffer = self._buffer, bytearray()
        self._slots.acquire()  # blocks while PARTS_IN_FLIGHT parts are being sent
        self._raise_failed()
        assert self._pool is not None
        try:
            future = self._pool.submit(self._upload_part, number, body)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _upload_part(self, number: int, body: bytearray) -> dict[str, Any]:
        response = self._call("upload_part", UploadId=self._upload_id, PartNumber=number,
                              Body=body, **self._checksum())
        part = {"PartNumber": number, "ETag": response["ETag"]}
        # newer botocore sends a checksum with each part; completion must repeat it
        part.update({f: response[f] for f in _CHECKSUMS if response.get(f)})
        return part

    def _checksum(self) -> dict[str, str]:
        return {"ChecksumAlgorithm": "SHA256" if self._lock else "CRC32"}

    def _raise_failed(self) -> None:
        """A part that failed stops the upload at the next write (parts finish about in
        order: only those not yet seen finished are looked at)."""
        for future in self._futures[self._seen:]:
            if not future.done():
                break
            future.result()
            self._seen += 1
        for future in self._futures[self._seen:]:
            if future.done() and future.exception() is not None:
                future.result()
                break

    def finish(self) -> None:
        """Make the object visible: the last part and completion, or one PUT."""
        if self._upload_id is None:
            self._call("put_object", Body=self._buffer, **self._condition, **self._type,
                       **self._lock)
            self._buffer = bytearray()
            return
        if self._buffer:
            self._send_part()
        parts = [future.result() for future in self._futures]
        self._call(
            "complete_multipart_upload",
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
            **self._condition,
        )
        self._upload_id = None
        self._shutdown()
        if self._lock:
            self._store.ensure_retention(self._name, self._lock)

    def abort(self) -> None:
        """Drop an unfinished upload so no parts linger (and cost money) in the bucket."""
        self._buffer = bytearray()
        for future in self._futures:
            future.cancel()
        self._shutdown()  # parts in flight end first, else they would outlive the abort
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            # best effort: the original error matters more than a failed cleanup
            with contextlib.suppress(Exception):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._key, UploadId=upload_id
                )

    def _shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
