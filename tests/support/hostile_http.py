"""A real HTTP server on loopback that serves a directory, except for paths a test hands
to a hostile answer: an endless body, a redirect elsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

Answer = Callable[[BaseHTTPRequestHandler], None]


def endless(handler: BaseHTTPRequestHandler) -> None:
    """200 with no length, then bytes until the client goes away."""
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    block = b"x" * 65536
    try:
        while True:
            handler.wfile.write(block)
    except (ConnectionError, OSError):
        pass


def trickled_headers(stop: threading.Event, pad: int = 10000) -> Answer:
    """A status line and headers sent one byte every 0.1 s (``pad`` bytes of one header
    making them long), then the end of the headers and a 3-byte body; ``stop`` ends it early."""
    def answer(handler: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n" + b"X-Pad: " + b"a" * pad
        try:
            for byte in head:
                if stop.is_set():
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.1)
            handler.wfile.write(b"\r\n\r\n" + (b"abc" if handler.command != "HEAD" else b""))
            handler.wfile.flush()
        except OSError:
            pass
        handler.close_connection = True
    return answer


def redirect(location: str) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


class HostileServer:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.answers: dict[str, Answer] = {}
        #: (method, path, Authorization header) of every request
        self.log: list[tuple[str, str, str | None]] = []
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server_state: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(True)

    def do_HEAD(self) -> None:
        self._serve(False)

    def do_PUT(self) -> None:  # only a path with an answer of its own: a 404 otherwise
        self._serve(False)

    def _serve(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        state = self.server_state
        state.log.append((self.command, path, self.headers.get("Authorization")))
        if path in state.answers:
            state.answers[path](self)
            return
        target = (state.directory / path.lstrip("/")).resolve()
        if not target.is_relative_to(state.directory.resolve()) or not target.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
