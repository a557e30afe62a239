"""A download's minimum average rate, shared by the HTTP and S3 stores.

A body is read as it arrives: each read returns what one read of the socket brought (each
bounded by ``http_timeout``), so a trickle is seen within a window and a timeout; reading
whole blocks would wait for each however slow it was. Less than ``http_min_rate`` bytes a
second over a window of ``http_rate_window`` seconds spent waiting for them (the wait for
the answer included; time the caller spends between reads is not the server's) gives up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from topoff.errors import StoreError
from topoff.stores.base import StoreOptions


def too_slow(where: str, options: StoreOptions) -> StoreError:
    return StoreError(
        f"{where} arrived at less than {options.http_min_rate} bytes a second over "
        f"{options.http_rate_window:g} s; topoff stopped reading it",
        hint="check the network and the server; [store] http_min_rate in the config sets "
        "the rate (0: no minimum) and http_rate_window the window")


class RatedBody:
    """``read1`` (one read of the socket at most) watched for the minimum rate; ``close``
    ends the response."""

    def __init__(self, read1: Callable[[int], bytes], close: Callable[[], None], where: str,
                 started: float, options: StoreOptions) -> None:
        self._read1 = read1
        self._close = close
        self._where = where
        self._options = options
        self._waited = time.monotonic() - started
        self._bytes = 0

    def read(self, n: int) -> bytes:
        start = time.monotonic()
        data = self._read1(n)
        rate, window = self._options.http_min_rate, self._options.http_rate_window
        if rate > 0:
            self._waited += time.monotonic() - start
            self._bytes += len(data)
            if self._waited >= window:
                if self._bytes < rate * self._waited:
                    # final, not retried: a slow server is as slow when asked again
                    raise too_slow(self._where, self._options)
                self._waited, self._bytes = 0.0, 0
        return data

    def close(self) -> None:
        self._close()
