"""The HTTP store's requests session: the whole wait for an answer is bounded.

Inside :func:`answer_within`, every connection's wait for an answer (the request's own, and
that of each redirect followed on the way) ends at one deadline (see
:mod:`topoff.stores.answer_watch`).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.response import BaseHTTPResponse

from topoff.stores.answer_watch import AnswerTooSlow, answer_by

__all__ = ["AnswerTooSlow", "WatchedAdapter", "answer_within"]

_DEADLINE: ContextVar[float | None] = ContextVar("topoff_http_answer_deadline", default=None)


@contextlib.contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Requests made in the block must have their answers (redirects included) within
    ``seconds`` of its start; 0 sets no bound."""
    token = _DEADLINE.set(time.monotonic() + seconds if seconds > 0 else None)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _watched(sock: socket.socket | None, get: Callable[[], BaseHTTPResponse]
             ) -> BaseHTTPResponse:
    return answer_by(sock, _DEADLINE.get(), get)


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
