"""The S3 store's connections: the whole wait for each answer is bounded, as the HTTP
store's is (:mod:`topoff.stores.answer_watch`).

botocore bounds each read of a socket (``read_timeout``), never the whole wait for an
answer's status line and headers, so a server sending them a byte at a time keeps a request
waiting for days. The client's connections are swapped for ones whose ``getresponse`` is cut
off ``http_answer_timeout`` seconds after the request was sent (its body included).
"""

from __future__ import annotations

import time
from concurrent.futures import CancelledError
from typing import Any

from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
)

from topoff.stores.answer_watch import AnswerTooSlow, answer_by


class S3AnswerTooSlow(AnswerTooSlow, CancelledError):
    """Also a CancelledError: botocore's URLLib3Session.send passes that on as it is, where
    it wraps every other exception in an HTTPClientError that its retry rules retry (after a
    pause). A server too slow to answer is as slow when asked again: the request ends here."""


def _answer(conn: Any, get: Any) -> Any:
    seconds = conn.answer_timeout
    deadline = time.monotonic() + seconds if seconds > 0 else None
    return answer_by(conn.sock, deadline, get, S3AnswerTooSlow)


class _HTTPConnection(AWSHTTPConnection):
    answer_timeout = 0.0

    def getresponse(self) -> Any:
        return _answer(self, super().getresponse)


class _HTTPSConnection(AWSHTTPSConnection):
    answer_timeout = 0.0

    def getresponse(self) -> Any:
        return _answer(self, super().getresponse)


def watch_answers(client: Any, seconds: float) -> None:
    """Bound the wait for each answer of ``client`` (a botocore S3 client that has not
    connected yet) to ``seconds``; 0 sets no bound beyond each read's."""
    if seconds <= 0:
        return
    plain = type("_Connection", (_HTTPConnection,), {"answer_timeout": seconds})
    tls = type("_TLSConnection", (_HTTPSConnection,), {"answer_timeout": seconds})
    # botocore has no public way to choose its connection classes: its URLLib3Session gives
    # this very dict to its pool manager and to every proxy manager it makes
    pools = client._endpoint.http_session._pool_classes_by_scheme
    pools["http"] = type("_Pool", (AWSHTTPConnectionPool,), {"ConnectionCls": plain})
    pools["https"] = type("_TLSPool", (AWSHTTPSConnectionPool,), {"ConnectionCls": tls})
