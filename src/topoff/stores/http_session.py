"""The HTTP store's requests session: the whole wait for an answer is bounded.

Each read of a socket waits at most ``http_timeout``, but a server can send its status line
and headers a byte at a time, each byte within that timeout, for as long as it likes. Inside
:func:`answer_within`, every connection's wait for an answer (the request's own, and that of
each redirect followed on the way) ends at one deadline: a timer shuts the socket down when
it passes, and :class:`AnswerTooSlow` is raised instead of whatever the cut socket caused.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.response import BaseHTTPResponse

_DEADLINE: ContextVar[float | None] = ContextVar("topoff_http_answer_deadline", default=None)


class AnswerTooSlow(Exception):
    """No whole answer (status line and headers) arrived before the deadline."""


@contextlib.contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Requests made in the block must have their answers (redirects included) within
    ``seconds`` of its start; 0 sets no bound."""
    token = _DEADLINE.set(time.monotonic() + seconds if seconds > 0 else None)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class _Watch:
    """Shuts ``sock`` down when the deadline passes, unless stopped first."""

    def __init__(self, sock: socket.socket, delay: float) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._done = False
        self.fired = False
        self._timer = threading.Timer(max(delay, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            # the plain socket's shutdown (a TLS socket's would drop its state under the
            # reader's feet): a recv blocked on it returns at once
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def stop(self) -> bool:
        """Stop watching; True when the deadline had passed (the socket is cut)."""
        with self._lock:
            self._done = True
        self._timer.cancel()
        return self.fired


def _watched(sock: socket.socket | None, get: Callable[[], BaseHTTPResponse]
             ) -> BaseHTTPResponse:
    deadline = _DEADLINE.get()
    if deadline is None or sock is None:
        return get()
    watch = _Watch(sock, deadline - time.monotonic())
    try:
        response = get()
    except BaseException as exc:
        if watch.stop():
            raise AnswerTooSlow() from exc
        raise
    if watch.stop():
        response.close()
        raise AnswerTooSlow()
    return response


class _HTTPConnection(HTTPConnection):
    def getresponse(self) -> BaseHTTPResponse:  # type: ignore[override]
        return _watched(self.sock, super().getresponse)


class _HTTPSConnection(HTTPSConnection):
    def getresponse(self) -> BaseHTTPResponse:  # type: ignore[override]
        return _watched(self.sock, super().getresponse)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS: dict[str, Any] = {"http": _HTTPPool, "https": _HTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections honour :func:`answer_within` (directly and
    through an HTTP proxy; a SOCKS proxy keeps its own connections)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager
