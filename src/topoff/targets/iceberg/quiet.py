"""pyiceberg warns "Delete operation did not match any records" when a commit deletes a
window or keys that are new, as most of topoff's commits do: that is no news, and is kept
off stderr.

The process's warning filters are shared by its threads, and ``warnings.catch_warnings``
puts back what it found on leaving: two calls from two threads (a program running two
syncs at once), the first leaving while the second is inside, left the first one's filter
behind for good, and it hid every UserWarning of the process meanwhile. Here one filter,
for that message only, is in place while at least one call is inside, and taken out
(that entry, not a copy of the list) when the last one leaves.
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings
from collections.abc import Iterator
from typing import Any, cast

_MESSAGE = "Delete operation did not match any records"
_lock = threading.Lock()


class _State:
    inside = 0
    entry: Any = None
    where: Any = None  # the list of filters the entry went into


@contextlib.contextmanager
def no_empty_delete_warning() -> Iterator[None]:
    """Inside the block, pyiceberg's warning of a delete that matched nothing is not shown;
    every other warning is, and the filters are as they were once every block has left."""
    with _lock:
        if _State.inside == 0:
            warnings.filterwarnings("ignore", message=re.escape(_MESSAGE),
                                    category=UserWarning)
            _State.entry = warnings.filters[0]
            _State.where = cast("list[Any]", warnings.filters)
        _State.inside += 1
    try:
        yield
    finally:
        with _lock:
            _State.inside -= 1
            if _State.inside == 0:
                # out of the list it went into, which a ``catch_warnings`` of the program
                # entered meanwhile puts back on leaving, and out of the list in use now
                now = cast("list[Any]", warnings.filters)
                for filters in (now,) if _State.where is now else (_State.where, now):
                    with contextlib.suppress(ValueError):
                        filters.remove(_State.entry)
                _State.entry = _State.where = None
