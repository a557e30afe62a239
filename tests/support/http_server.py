"""A real HTTP file server on loopback, with Range support and injectable faults."""

from __future__ import annotations

import contextlib
import email.utils
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_COPY_BLOCK = 64 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Connections cut on purpose (cut_after) or dropped by a client are expected here.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class HttpServer:
    """Serves ``directory`` at ``.url`` until ``.stop()``; use as a context manager too.

    ``log`` holds (method, path, Range header or None) for every request received.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.log: list[tuple[str, str, str | None]] = []
        #: when set, Range headers are ignored and the whole file is sent with 200
        self.ignore_range = False
        self._cuts: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"files": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        # a short poll interval makes stop() quick (it waits for the next poll)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def cut_after(self, path: str, nbytes: int, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` send ``nbytes`` of body, then drop the socket."""
        with self._lock:
            self._cuts.setdefault(_norm(path), []).extend([nbytes] * times)

    def ranges(self, path: str) -> list[str]:
        """Range headers of the GETs received for ``path``."""
        with self._lock:
            return [r for m, p, r in self.log if m == "GET" and p == _norm(path) and r]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, method: str, path: str, range_header: str | None) -> int | None:
        """Log a request; return how many body bytes to send before a cut, if one is due."""
        with self._lock:
            self.log.append((method, path, range_header))
            cuts = self._cuts.get(path)
            if method == "GET" and cuts:
                return cuts.pop(0)
        return None


def _norm(path: str) -> str:
    return "/" + path.lstrip("/")


class _Handler(BaseHTTPRequestHandler):
    files: HttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        range_header = self.headers.get("Range")
        cut = self.files._record(self.command, path, range_header)
        target = self._file(path)
        if target is None:
            self._reply_empty(404)
            return
        st = target.stat()
        size = st.st_size
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        start, end = 0, size - 1
        status = 200
        match = _RANGE.fullmatch(range_header or "")
        if_range = self.headers.get("If-Range")
        use_range = (
            match is not None
            and not self.files.ignore_range
            and (if_range is None or if_range in (etag, modified))
        )
        if use_range and match:
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        limit = length if cut is None else min(cut, length)
        with open(target, "rb") as f:
            f.seek(start)
            while limit > 0:
                block = f.read(min(_COPY_BLOCK, limit))
                if not block:
                    break
                self.wfile.write(block)
                limit -= len(block)
        if cut is not None:
            self._drop_connection()

    def _file(self, path: str) -> Path | None:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            return None
        target = self.files.directory.joinpath(*parts)
        return target if target.is_file() else None

    def _reply_empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drop_connection(self) -> None:
        """Close the socket mid-body, as a crashing server or a broken network would."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
