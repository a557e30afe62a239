"""The rules that keep exports off the primary and consistent on a standby.

* Before anything is read, ``pg_is_in_recovery()`` tells a standby from a primary. A
  primary is refused unless the caller allowed it explicitly; topoff never falls back from
  one URL to another.
* A standby refuses SERIALIZABLE ("cannot use serializable mode in a hot standby"), so a
  standby export runs REPEATABLE READ, READ ONLY; an allowed primary gets SERIALIZABLE,
  READ ONLY, DEFERRABLE (a snapshot free of serialization anomalies, waited for up front).
  Workers that import the snapshot cannot be DEFERRABLE, so they run SERIALIZABLE, READ ONLY.
* A standby cancels queries whose snapshot holds back WAL replay ("conflict with
  recovery"). The whole snapshot is lost then, so the unit of retry is the whole export.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from topoff.errors import SafetyError, SourceError
from topoff.sources.postgres import display_url

log = logging.getLogger("topoff")
T = TypeVar("T")

STANDBY_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
PRIMARY_BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"
PRIMARY_WORKER_BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY"


def check_standby(conn: psycopg.Connection, url: str, allow_primary: bool) -> bool:
    """Return whether the server is in recovery; refuse a primary unless allowed."""
    (in_recovery,) = conn.execute("SELECT pg_is_in_recovery()").fetchone()  # type: ignore[misc]
    if not in_recovery and not allow_primary:
        raise SafetyError(
            f"{display_url(url)} is a primary server (pg_is_in_recovery() is false); "
            "topoff reads from a hot standby",
            hint="point --source (or TOPOFF_SOURCE_URL) at the standby, or pass "
            "--allow-primary to read this primary on purpose",
        )
    if not in_recovery:
        log.warning("reading the PRIMARY %s because --allow-primary was given", display_url(url))
    return bool(in_recovery)


def begin_statement(in_recovery: bool, worker: bool = False) -> str:
    if in_recovery:
        return STANDBY_BEGIN
    return PRIMARY_WORKER_BEGIN if worker else PRIMARY_BEGIN


def isolation_name(in_recovery: bool) -> str:
    return "repeatable read, read only" if in_recovery else "serializable, read only, deferrable"


def is_recovery_conflict(exc: BaseException) -> bool:
    """A query or session cancelled because WAL replay needed what its snapshot held."""
    if not isinstance(exc, psycopg.Error):
        return False
    text = str(exc).lower()
    if "conflict with recovery" in text:
        return True
    return getattr(exc, "sqlstate", None) == "40001" and "recovery" in text


def conflict_hint() -> str:
    return ("on the standby set hot_standby_feedback = on, or raise max_standby_streaming_delay "
            "(for example to 30min) so long exports are not cancelled by WAL replay")


def retry_on_recovery_conflict(
    run: Callable[[int], T], attempts: int, backoff: float, what: str,
    cleanup: Callable[[], None] | None = None,
) -> T:
    """Run ``run(attempt)``; on a recovery conflict clean up, wait and start it again."""
    delay = backoff
    for attempt in range(1, attempts + 1):
        try:
            return run(attempt)
        except Exception as e:
            if not is_recovery_conflict(e):
                raise
            if cleanup is not None:
                cleanup()
            first = str(e).strip().splitlines()[0]
            if attempt == attempts:
                raise SourceError(
                    f"{what} was cancelled {attempts} times by a conflict with recovery on the "
                    f"standby ({first})",
                    hint=conflict_hint(),
                ) from None
            log.warning("%s cancelled by conflict with recovery (%s); attempt %d of %d again in "
                        "%.1fs", what, first, attempt + 1, attempts, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
