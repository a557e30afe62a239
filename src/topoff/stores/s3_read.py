"""Reading an S3 object as a stream that resumes where a broken connection stopped."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import botocore.exceptions as bce
from urllib3.exceptions import ProtocolError

from topoff.errors import StoreError
from topoff.stores.base import ResumingReader
from topoff.stores.rate import RatedBody

if TYPE_CHECKING:
    from topoff.stores.s3 import S3Store

# Errors a streaming body raises when the connection breaks mid-object.
STREAM_ERRORS = (
    bce.ResponseStreamingError,
    bce.IncompleteReadError,
    bce.ReadTimeoutError,
    bce.ConnectionClosedError,
    ProtocolError,
    ConnectionError,
)


def _read1(body: Any, length: int) -> Callable[[int], bytes]:
    """A read of botocore's streaming body of ``length`` bytes that returns what one read
    of the socket brought: its own read waits for every byte asked, so a trickle would
    never be seen. A body that ends early is a broken connection (resumed), and botocore's
    check of a checksum the server sent for the whole object is kept."""
    raw = getattr(body, "_raw_stream", None)
    if not hasattr(raw, "read1"):
        return cast(Callable[[int], bytes], body.read)
    checksum = getattr(body, "checksum", None)
    validate = getattr(body, "_validate_checksum", None)
    done = 0

    def read1(n: int) -> bytes:
        nonlocal done
        data = cast(bytes, raw.read1(n))  # type: ignore[union-attr]
        done += len(data)
        if not data and n and done < length:
            raise bce.IncompleteReadError(actual_bytes=done, expected_bytes=length)
        if checksum is not None and validate is not None:
            checksum.update(data)
            if not data and n:
                validate()
        return data
    return read1


class S3Reader(ResumingReader):
    """get_object from the current position; a broken body is reopened with a Range."""

    def __init__(self, store: S3Store, name: str, offset: int) -> None:
        super().__init__(offset, store.options)
        self._store = store
        self._name = name
        self._etag: str | None = None

    def _open(self, pos: int) -> Any:
        args: dict[str, Any] = {"Bucket": self._store.bucket, "Key": self._store._key(self._name)}
        if pos:
            args["Range"] = f"bytes={pos}-"
        if self._etag:
            args["IfMatch"] = self._etag  # resume only the very same object
        started = time.monotonic()  # the wait for the answer counts in the first window
        try:
            response = self._store.client.get_object(**args)
        except bce.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "InvalidRange":  # asked from the end of the object on: nothing to read
                self._end = pos
                return io.BytesIO()
            if code in ("PreconditionFailed", "412"):
                raise StoreError(
                    f"{self._store.url}/{self._name} changed while it was being read",
                    hint="published files are immutable; was the dataset rewritten? run again",
                ) from exc
            raise self._store._error(exc, "read", self._name) from exc
        except Exception as exc:
            # botocore already retried the request itself; only a broken body is ours to retry
            raise self._store._error(exc, "read", self._name) from exc
        self._etag = response.get("ETag")
        self._end = pos + response["ContentLength"]
        body = response["Body"]
        return RatedBody(_read1(body, response["ContentLength"]), body.close,
                         f"{self._store.url}/{self._name}", started, self._store.options)

    def _is_transient(self, exc: Exception) -> bool:
        return isinstance(exc, STREAM_ERRORS)

    def _failed(self, exc: Exception) -> StoreError:
        return self._store._error(exc, "read", self._name)
