"""A whole export run again, in a new snapshot, after a migration changed one of its tables
under the snapshot it read (:class:`topoff.errors.SchemaChanged`).

A snapshot holds rows, not table definitions: a table rebuilt, truncated or altered between
the snapshot's start and the moment the export locked it cannot be read in that snapshot
(docs/safety.md, docs/mariadb.md). A new snapshot reads the table as the migration left
it, so the export removes what the attempt wrote, waits ``backoff`` (doubling) and starts
again, up to ``attempts`` times in all; the last attempt's error is raised as it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from topoff.errors import SchemaChanged

log = logging.getLogger("topoff")
T = TypeVar("T")


def schema_changed_again(e: BaseException, attempt: int, attempts: int, delay: float,
                         what: str, cleanup: Callable[[], None] | None) -> bool:
    """Whether ``e`` ends attempt ``attempt`` of ``attempts`` with another to come (after
    cleaning up, logging and sleeping ``delay``); False when it is not a schema change or
    was the last attempt (the caller raises it)."""
    if not isinstance(e, SchemaChanged) or attempt >= attempts:
        return False
    if cleanup is not None:
        cleanup()
    log.warning("%s: %s; attempt %d of %d in a new snapshot in %.1fs", what, e.message,
                attempt + 1, attempts, delay)
    time.sleep(delay)
    return True


def retry_schema_changes(run: Callable[[int], T], attempts: int, backoff: float, what: str,
                         cleanup: Callable[[], None] | None = None) -> T:
    """``run(attempt)``, again in a new snapshot after a :class:`SchemaChanged` (above)."""
    delay = backoff
    for attempt in range(1, max(attempts, 1) + 1):
        try:
            return run(attempt)
        except SchemaChanged as e:
            if not schema_changed_again(e, attempt, attempts, delay, what, cleanup):
                raise
            delay *= 2
    raise AssertionError("unreachable")
