"""A bound on the whole wait for an HTTP answer (its status line and headers), for the HTTP
and S3 stores.

Each read of a socket is bounded by the store's ``http_timeout``, but a server can send its
status line and headers a byte at a time, each byte within that timeout, for as long as it
likes. :func:`answer_by` reads an answer with a deadline: a timer shuts the socket down when
it passes, and :class:`AnswerTooSlow` is raised instead of whatever the cut socket caused.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class AnswerTooSlow(Exception):
    """No whole answer (status line and headers) arrived before the deadline."""


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


def answer_by(sock: socket.socket | None, deadline: float | None, get: Callable[[], T],
              too_slow: type[AnswerTooSlow] = AnswerTooSlow) -> T:
    """``get()`` (which reads an answer from ``sock``), cut off at ``deadline`` (a
    time.monotonic() value; None: no bound): ``too_slow`` is raised then. ``close`` is
    called on an answer that came complete just too late."""
    if deadline is None or sock is None:
        return get()
    watch = _Watch(sock, deadline - time.monotonic())
    try:
        answer = get()
    except BaseException as exc:
        if watch.stop():
            raise too_slow() from exc
        raise
    if watch.stop():
        close = getattr(answer, "close", None)
        if close is not None:
            close()
        raise too_slow()
    return answer
