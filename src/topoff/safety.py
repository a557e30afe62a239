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
  The same holds when the connection dies (the standby restarted): the export starts
  again, and once a connection has been lost, "connection refused" or "starting up" while
  reconnecting is retried too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import psycopg

from topoff.errors import SafetyError, SchemaChanged, SourceError, TopoffError, primary_hint
from topoff.sources.postgres import ServerUnavailable, display_url
from topoff.sources.retry import schema_changed_again

log = logging.getLogger("topoff")
T = TypeVar("T")

STANDBY_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
PRIMARY_BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"
PRIMARY_WORKER_BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY"


def check_standby(conn: psycopg.Connection, url: str, allow_primary: bool,
                  command: str = "topoff export") -> bool:
    """Return whether the server is in recovery; refuse a primary unless allowed (the hint
    names the options of ``command``, errors.primary_hint)."""
    (in_recovery,) = conn.execute("SELECT pg_is_in_recovery()").fetchone()  # type: ignore[misc]
    if not in_recovery and not allow_primary:
        where, allow = primary_hint(command)
        raise SafetyError(
            f"{display_url(url)} is a primary server (pg_is_in_recovery() is false); "
            "topoff reads from a hot standby",
            hint=f"point {where} at the standby, or {allow} to read this primary on purpose",
        )
    if not in_recovery:
        log.warning("reading the PRIMARY %s (allowed by --allow-primary or allow_primary = "
                    "true in the config)", display_url(url))
    return bool(in_recovery)


#: read before the snapshot is taken: everything replayed by then is visible to it
_REPLAY_Q = """
SELECT pg_last_xact_replay_timestamp(), pg_last_wal_replay_lsn()::text,
       pg_is_wal_replay_paused(), r.pid IS NOT NULL, r.status, r.latest_end_lsn::text,
       r.last_msg_send_time, coalesce(pg_last_wal_replay_lsn() >= r.latest_end_lsn, false)
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true
"""


@dataclass(frozen=True)
class ReplayState:
    """How far a standby has replayed the primary, read just before a snapshot.

    ``pg_last_xact_replay_timestamp()`` is the commit time of the last replayed transaction:
    it stands still while the primary writes nothing. The WAL receiver also knows the
    primary's WAL end as last reported (``latest_end_lsn``) and the primary's clock when it
    reported it (``last_msg_send_time``); its keepalives keep coming while the primary is
    idle. Replay at or past that LSN means everything the primary had written by that
    time has been replayed.
    """

    replay_timestamp: datetime | None
    replay_lsn: str | None
    paused: bool
    #: "streaming", another receiver status, "none" (no WAL receiver: archive recovery)
    #: or "hidden" (the role lacks pg_read_all_stats)
    receiver: str
    primary_end_lsn: str | None
    primary_time: datetime | None
    caught_up: bool

    @property
    def until(self) -> datetime | None:
        """The latest primary time up to which everything has been replayed."""
        best = self.replay_timestamp
        if self.receiver == "streaming" and self.caught_up and self.primary_time is not None \
                and (best is None or self.primary_time > best):
            best = self.primary_time
        return best


def replay_state(conn: psycopg.Connection) -> ReplayState:
    """Read outside (before) the snapshot's transaction; see :class:`ReplayState`."""
    row = conn.execute(_REPLAY_Q).fetchone()
    assert row is not None
    ts, lsn, paused, has_receiver, status, end_lsn, sent, caught_up = row
    receiver = "none" if not has_receiver else (status or "hidden")
    return ReplayState(ts, lsn, bool(paused), receiver, end_lsn, sent, bool(caught_up))


def complete_as_of(conn: psycopg.Connection, in_recovery: bool
                   ) -> tuple[datetime | None, str, bool]:
    """The time (the primary's clock) up to which a snapshot begun next on ``conn`` holds
    every commit, read before it begins (autocommit): a standby's :attr:`ReplayState.until`,
    a primary's ``now()``. None when the standby cannot tell, with why. The third value:
    the time is the last replayed commit's only because this role cannot see the WAL
    receiver (it lacks pg_read_all_stats): everything may be there up to a later time (a
    quiet primary), so a lag counted from it is an upper bound."""
    if not in_recovery:
        (now,) = conn.execute("SELECT now()").fetchone()  # type: ignore[misc]
        return now, "", False
    replay = replay_state(conn)
    if replay.until is not None:
        return replay.until, "", replay.receiver == "hidden"
    why = "the standby has replayed no transaction since it started"
    if replay.paused:
        why += ", and its WAL replay is paused"
    elif replay.receiver == "hidden":
        why += ", and this role cannot see its WAL receiver (GRANT pg_read_all_stats)"
    elif replay.receiver != "streaming":
        why += ", and it is not streaming from the primary"
    return None, why, False


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


def conflict_hint(e: BaseException | None = None) -> str:
    """What to do about a recovery conflict: a lock conflict (replay of a migration's ACCESS
    EXCLUSIVE lock on a table the read held) is not cured by hot_standby_feedback."""
    detail = getattr(getattr(e, "diag", None), "message_detail", None) or ""
    if "relation lock" in detail or "relation lock" in str(e):
        return ("a schema change on the primary (ALTER TABLE, TRUNCATE, DROP...) needed a lock "
                "on a table topoff was reading: run it again once the change is done, or raise "
                "max_standby_streaming_delay on the standby so replay waits for topoff")
    return ("on the standby set hot_standby_feedback = on, or raise max_standby_streaming_delay "
            "(for example to 30min) so long exports are not cancelled by WAL replay")


#: SQLSTATEs of a session the server ended: admin_shutdown, crash_shutdown,
#: cannot_connect_now, connection_exception, connection_does_not_exist, connection_failure
_LOST_STATES = frozenset({"57P01", "57P02", "57P03", "08000", "08003", "08006"})
_LOST_TEXT = ("server closed the connection", "terminating connection", "connection refused",
              "consuming input failed", "the connection is lost", "connection was lost",
              "the connection is closed", "could not receive data", "could not send data",
              "the database system is")


def is_connection_lost(exc: BaseException) -> bool:
    """The connection to the server died under the export (e.g. the standby restarted)."""
    if not isinstance(exc, psycopg.OperationalError) or \
            isinstance(exc, psycopg.errors.QueryCanceled):
        return False
    if getattr(exc, "sqlstate", None) in _LOST_STATES:
        return True
    text = str(exc).lower()
    return any(t in text for t in _LOST_TEXT)


def lost_hint() -> str:
    return ("check that the standby is running and accepts connections (its log says why it "
            "stopped), then run again; [export] retry_attempts and retry_backoff set how long "
            "topoff keeps trying")


@contextlib.contextmanager
def source_failures(what: str) -> Iterator[None]:
    """A source session that ends (the standby restarted, or ended it) or whose query
    replay cancels, inside the block, as the SourceError it is: a caller that reads engine
    errors as its replica's would blame the replica."""
    try:
        yield
    except Exception as e:
        from topoff.targets.errors import is_interrupt  # an export loads no target module

        if is_interrupt(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if is_recovery_conflict(e):
            raise SourceError(f"{what} was cancelled by a conflict with recovery on the "
                              f"standby ({first})", hint=conflict_hint(e)) from None
        if is_connection_lost(e):
            raise SourceError(f"{what} lost its connection to the source ({first})",
                              hint="check that the standby is running and accepts "
                              "connections (its log says why it stopped), then run "
                              "again") from None
        refused = row_security_refusal(e)
        if refused is not None:
            raise refused from None
        raise


def row_security_refusal(e: BaseException) -> SourceError | None:
    """A read refused because a row-level security policy would filter it (every session
    sets row_security = off, as pg_dump does) as the SourceError it is, else None."""
    if getattr(e, "sqlstate", None) != "42501" or "row-level security" not in str(e):
        return None
    first = str(e).strip().splitlines()[0]
    return SourceError(f"{first}: the source's role would see only the rows the policy "
                       "shows it, and topoff reads a table whole or not at all",
                       hint="read as a role with BYPASSRLS (ALTER ROLE ... BYPASSRLS) or as "
                       "the table's owner, or leave the table out")


def unreadable_relation(qualified: str, relkind: str, persistence: str, populated: bool,
                        in_recovery: bool) -> SourceError | None:
    """Why the source cannot show a relation's rows, as the SourceError it is, else None:
    an unlogged table on a standby (its rows are never replicated there), a materialized
    view never populated (made WITH NO DATA)."""
    if persistence == "u" and in_recovery:
        return SourceError(f"{qualified} is an unlogged table: a standby holds none of its rows",
                           hint="leave it out, or read it from the primary (allow_primary "
                           "= true, or --allow-primary)")
    if relkind == "m" and not populated:
        return SourceError(f"materialized view {qualified} has not been populated",
                           hint=f"run REFRESH MATERIALIZED VIEW {qualified} on the primary, "
                           "or leave it out")
    return None


def retry_on_recovery_conflict(
    run: Callable[[int], T], attempts: int, backoff: float, what: str,
    cleanup: Callable[[], None] | None = None, schema_changes: bool = False,
) -> T:
    """Run ``run(attempt)``; when a recovery conflict cancels it, its connection is lost or,
    with ``schema_changes`` (an export), a table changed under its snapshot
    (sources/retry.py), clean up, wait and start it again (a new snapshot), up to
    ``attempts`` times. A failure
    raised while the run was being interrupted is the interrupt, never retried."""
    delay = backoff
    lost = False
    for attempt in range(1, attempts + 1):
        try:
            return run(attempt)
        except Exception as e:
            from topoff.targets.errors import is_interrupt  # an export loads no target module

            if is_interrupt(e):  # stopped (Ctrl-C, SIGTERM), and a cleanup then failed on the
                raise KeyboardInterrupt from e  # connection the stop left closed: no retry
            if schema_changes and isinstance(e, SchemaChanged):  # a new snapshot reads it
                if not schema_changed_again(e, attempt, attempts, delay, what, cleanup):
                    raise
                delay *= 2
                continue
            conflict = is_recovery_conflict(e)
            # Once a connection was lost, the server refusing or starting up is its restart.
            if not conflict and not is_connection_lost(e) and not (
                    lost and isinstance(e, ServerUnavailable)):
                refused = row_security_refusal(e)
                if refused is not None:
                    raise refused from None
                raise
            lost = lost or not conflict
            if cleanup is not None:
                cleanup()
            text = e.message if isinstance(e, TopoffError) else str(e)  # not its hint
            first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
            why = "cancelled by a conflict with recovery" if conflict else \
                "interrupted: the connection to the source was lost"
            if attempt == attempts:
                if conflict:
                    raise SourceError(
                        f"{what} was cancelled {attempts} times by a conflict with recovery on "
                        f"the standby ({first})", hint=conflict_hint(e)) from None
                raise SourceError(
                    f"{what} lost its connection to the source {attempts} times, the last "
                    f"time: {first}", hint=lost_hint()) from None
            log.warning("%s %s (%s); attempt %d of %d again in %.1fs", what, why, first,
                        attempt + 1, attempts, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
