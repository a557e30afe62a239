"""A read-only store: a published directory served by any web server."""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable
from typing import Any, BinaryIO, NoReturn, TypeVar
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from topoff.errors import StoreError
from topoff.stores.base import (
    BodyEndedEarly,
    FileInfo,
    FileMissing,
    ResumingReader,
    Store,
    StoreOptions,
    check_name,
    read_only_error,
)
from topoff.stores.http_session import AnswerTooSlow, WatchedAdapter, answer_within
from topoff.stores.rate import RatedBody

T = TypeVar("T")
_SKIP_BLOCK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# Statuses worth asking again: the server or a proxy in front of it is briefly unwell.
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_BROKEN = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ProtocolError,
    ReadTimeoutError,
    http.client.IncompleteRead,
    ConnectionError,
)


_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_REDIRECTS = 10


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _origin_text(url: str) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


class _RetryableStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class HttpStore(Store):
    """Files under ``base_url``, read with GET (streamed, resumed) and HEAD."""

    read_only = True

    def __init__(self, base_url: str, options: StoreOptions | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.options = options or StoreOptions()
        parts = urlsplit(self.base_url)
        # keep user:password out of everything shown to people
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self.session = requests.Session()
        adapter = WatchedAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.max_redirects = _MAX_REDIRECTS
        # Ranges must count bytes of the file itself, not of a compressed transfer.
        self.session.headers["Accept-Encoding"] = "identity"
        self.session.hooks["response"].append(self._check_redirect)

    def _check_redirect(self, response: requests.Response, *args: Any, **kwargs: Any
                        ) -> requests.Response:
        """Redirects are followed within the store's own origin (scheme, host, port) only:
        a redirect to another server or scheme is refused before it is followed, so
        neither the request nor the credentials in the URL ever go there."""
        if response.is_redirect:
            there = urljoin(response.url, response.headers.get("Location", ""))
            if _origin(there) != _origin(response.url):
                response.close()
                raise StoreError(
                    f"{self.url} redirected a request to {_origin_text(there)}; topoff follows "
                    "redirects within the same server (scheme, host and port) only",
                    hint="give the URL the files are really served from")
            # its body is never read: requests would read it whole, however long it ran
            response.close()
        return response

    def file_url(self, name: str) -> str:
        return f"{self.base_url}/{quote(check_name(name), safe='/')}"

    def list(self, prefix: str = "") -> list[FileInfo]:
        raise StoreError(
            f"cannot list files of {self.url} (HTTP stores are read-only and not listable)",
            hint="readers find files through index.json; use the publisher's store to list",
        )

    def stat(self, name: str) -> FileInfo | None:
        url = self.file_url(name)

        def head() -> requests.Response:
            with answer_within(self.options.http_answer_timeout):
                response = self.session.head(
                    url, timeout=self.options.http_timeout, allow_redirects=True)
            if response.status_code in _RETRY_STATUS:
                raise _RetryableStatus(response.status_code)
            return response

        response = self._with_retries(head, name)
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            self._raise_status(response.status_code, name)
        length = response.headers.get("Content-Length")
        if length is None:
            raise StoreError(
                f"{self.url} sent no size for {name}",
                hint="serve the published directory with a web server that sends Content-Length",
            )
        return FileInfo(name, int(length))

    def open_read(self, name: str, offset: int = 0) -> BinaryIO:
        return _HttpReader(self, check_name(name), offset).start()

    def write(self, name: str, replace: bool = False, options: object = None) -> NoReturn:
        raise read_only_error(self)

    def delete(self, name: str) -> None:
        raise read_only_error(self)

    def close(self) -> None:
        self.session.close()

    # -- helpers -----------------------------------------------------------------------

    def _with_retries(self, call: Callable[[], T], name: str) -> T:
        for attempt in range(self.options.retries + 1):
            try:
                return call()
            except (*_BROKEN, _RetryableStatus) as exc:
                if attempt == self.options.retries:
                    raise self._error(exc, name) from exc
                time.sleep(self.options.backoff * 2**attempt)
            except (requests.RequestException, AnswerTooSlow) as exc:
                raise self._error(exc, name) from exc
        raise AssertionError("unreachable")

    def _raise_status(self, status: int, name: str) -> NoReturn:
        if status in (404, 410):
            raise FileMissing(
                f"{name} not found at {self.url} (HTTP {status})",
                hint="check the URL; readers find files through index.json",
            )
        if status in (401, 403):
            raise StoreError(
                f"access to {self.url}/{name} refused (HTTP {status})",
                hint="check the web server's permissions, or credentials given in the URL",
            )
        raise StoreError(
            f"unexpected answer HTTP {status} for {self.url}/{name}",
            hint="check the URL and the web server's logs",
        )

    def _error(self, exc: BaseException, name: str) -> StoreError:
        where = f"{self.url}/{name}"
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, _RetryableStatus):
            return StoreError(
                f"{where} kept failing with HTTP {exc.status}",
                hint="the web server (or a proxy) is unwell; check its logs and retry later",
            )
        if isinstance(exc, AnswerTooSlow):
            # final, not retried: a slow server is as slow when asked again
            return StoreError(
                f"{where} sent no complete answer (status line and headers) within "
                f"{self.options.http_answer_timeout:g} s; topoff stopped waiting",
                hint="check the web server (or a proxy in front of it); "
                "[store] http_answer_timeout sets the limit (0: none)")
        if isinstance(exc, requests.TooManyRedirects):
            return StoreError(f"{where} redirected more than {_MAX_REDIRECTS} times",
                              hint="the web server's redirects go round in a loop; check "
                              "its configuration, or give the URL the files are served from")
        if isinstance(exc, requests.Timeout | ReadTimeoutError):
            return StoreError(
                f"timed out reading {where}",
                hint="check the network, or raise [store] http_timeout in the config",
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return StoreError(
                f"TLS failure talking to {self.url}",
                hint="check the server's certificate (or REQUESTS_CA_BUNDLE for a private CA)",
            )
        if isinstance(exc, requests.ConnectionError) and not isinstance(
            exc, requests.exceptions.ChunkedEncodingError
        ):
            return StoreError(
                f"cannot connect to {self.url} to read {name}",
                hint="check the URL and that the web server is running and reachable",
            )
        if isinstance(exc, (*_BROKEN, BodyEndedEarly)):
            return StoreError(
                f"connection kept breaking while reading {where}",
                hint="check the network; topoff retries ([store] retries) and resumes",
            )
        if isinstance(exc, requests.RequestException | Urllib3HTTPError):
            return StoreError(
                f"cannot read {where}: {type(exc).__name__}",
                hint="check the URL (scheme, host, path) and the web server",
            )
        return StoreError(
            f"cannot read {where}: {type(exc).__name__}", hint="check the URL and the network"
        )


class _HttpReader(ResumingReader):
    """GET streamed from the current position; a broken body is continued with a Range."""

    def __init__(self, store: HttpStore, name: str, offset: int) -> None:
        super().__init__(offset, store.options)
        self._store = store
        self._name = name
        self._url = store.file_url(name)
        self._validator: str | None = None

    def _open(self, pos: int) -> Any:
        headers = {}
        if pos:
            headers["Range"] = f"bytes={pos}-"
            if self._validator:
                headers["If-Range"] = self._validator
        started = time.monotonic()  # the wait for the answer counts in the first window
        with answer_within(self._store.options.http_answer_timeout):
            response = self._store.session.get(
                self._url, headers=headers, stream=True,
                timeout=self._store.options.http_timeout)
        try:
            return self._accept(response, pos, RatedBody(
                response.raw.read1, response.close, f"{self._store.url}/{self._name}", started,
                self._store.options))
        except BaseException:
            response.close()
            raise

    def _accept(self, response: requests.Response, pos: int, body: RatedBody) -> Any:
        status = response.status_code
        if status in _RETRY_STATUS:
            raise _RetryableStatus(status)
        if status == 416 and pos:  # asked from the end of the file on: nothing to read
            response.close()
            self._end = pos
            return _Empty()
        if status not in (200, 206):
            self._store._raise_status(status, self._name)
        validator = self._validator_of(response)
        length = response.headers.get("Content-Length")
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != pos:
                raise StoreError(
                    f"{self._store.url} answered a range request for {self._name} wrongly",
                    hint="the web server's Range support looks broken; try another server",
                )
            total: int | None = int(match[3]) if match[3] != "*" else int(match[2]) + 1
        else:
            total = int(length) if length is not None else None
            if pos and self._validator and validator != self._validator:
                self._changed()
        if self._end is not None and total is not None and total != self._end:
            self._changed()
        if self._validator is None:
            self._validator = validator
        self._end = total
        if status == 200 and pos:
            # The server ignored the Range (or If-Range told it to send the whole file):
            # read past the bytes we already have instead of handing them out twice.
            self._skip(body, pos)
        return body

    def _skip(self, body: RatedBody, count: int) -> None:
        while count:
            data = body.read(min(count, _SKIP_BLOCK))
            if not data:
                raise ProtocolError("connection closed while skipping already-read bytes")
            count -= len(data)

    @staticmethod
    def _validator_of(response: requests.Response) -> str | None:
        etag = response.headers.get("ETag")
        if etag and not etag.startswith("W/"):  # If-Range accepts only strong validators
            return etag
        return response.headers.get("Last-Modified")

    def _changed(self) -> NoReturn:
        raise StoreError(
            f"{self._store.url}/{self._name} changed on the server while it was being read",
            hint="published files are immutable; was the dataset rewritten? run again",
        )

    def _is_transient(self, exc: Exception) -> bool:
        return isinstance(exc, (*_BROKEN, _RetryableStatus))

    def _failed(self, exc: Exception) -> StoreError:
        return self._store._error(exc, self._name)


class _Empty:
    def read(self, n: int) -> bytes:
        return b""

    def close(self) -> None:
        pass
