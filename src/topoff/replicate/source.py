"""What the replicate engine asks of a source database, whatever its engine.

apply.py holds the one flow of a refresh (the target transaction, the table's lock, its
first build and column changes, the state row written with the rows); a source session
gives it, inside ONE consistent snapshot of the source: the table's description
(:class:`topoff.replicate.describe.TableInfo`: columns in the dataset's vocabulary, key,
cursor kind), the inserter/updater refresh and the snapshot-method refresh written into
the target through the target's own loading and merging (targets/merge.py, ranges.py),
and the source's plain indexes for the first build. The engine is chosen by the source
URL (:func:`topoff.sources.base.engine_of`): PostgreSQL (pg_source.py) or MariaDB/MySQL
(maria_source.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from topoff.sources.base import engine_of

if TYPE_CHECKING:
    from topoff.replicate.config import ReplicateSource, ReplicateTable
    from topoff.replicate.describe import TableInfo
    from topoff.replicate.shape import Index
    from topoff.replicate.state import TableState
    from topoff.targets.base import TableDef, Target

log = logging.getLogger("topoff")


@dataclass(frozen=True)
class Request:
    kind: str = "refresh"  # refresh | repull | resync
    lo: str | None = None  # repull: cursor range (inclusive), as text of the cursor's type
    hi: str | None = None


class SourceSession(Protocol):
    """One snapshot of one source, opened (safety check first) for one table's refresh."""

    engine: str
    #: the primary's time up to which the snapshot holds every commit (read just before
    #: it began); None when the source cannot tell, and ``as_of_why`` says why
    as_of: datetime | None
    as_of_why: str
    #: a PostgreSQL standby's: the role that cannot see its WAL receiver (pg_read_all_stats)
    #: when ``as_of`` is the last replayed commit's for that reason; a lag counted from it
    #: is an upper bound (a quiet primary shows as lag)
    receiver_hidden_from: str | None

    def describe(self, t: ReplicateTable) -> TableInfo:
        """The configured table as the source shows it; ConfigError when it cannot be."""

    def incremental(self, engine: Target, info: TableInfo, tdef: TableDef, state: TableState,
                    request: Request, first: bool, fast: bool) -> tuple[int, TableState]:
        """An inserter/updater refresh into ``tdef`` (in the caller's transaction):
        ``(rows written, next state)``."""

    def snapshot(self, engine: Target, info: TableInfo, tdef: TableDef, state: TableState,
                 force: bool, first: bool, fast: bool) -> tuple[str, int, TableState]:
        """A snapshot-method refresh: ``(status, rows written, next state)``."""

    def attached_unread(self, info: TableInfo, state: TableState) -> str | None:
        """A partition or inheritance child attached since the run ``state`` was written
        that holds rows that run could not read (attached.py); None when there is none."""

    def indexes(self, info: TableInfo) -> list[Index]:
        """The source's plain indexes to build in a new replica table."""

    def finish(self) -> None:
        """End the snapshot (the reads are over)."""

    def close(self) -> None: ...


def open_session(source: ReplicateSource) -> SourceSession:
    """Connect to the source by its URL's engine, refuse a primary unless allowed, and
    begin its snapshot."""
    if engine_of(source.url) == "postgresql":
        from topoff.replicate.pg_source import PostgresSession
        return PostgresSession(source)
    from topoff.replicate.maria_source import MariaSession
    return MariaSession(source)


def measured(src: SourceSession, new: TableState, before: TableState,
             name: str) -> TableState:
    """``new`` with the time up to which the replica now holds its source's data: the
    snapshot's (``src.as_of``), else ``before``'s, with a warning. A state left as it was
    (a ranged repull) is returned as it is."""
    if new is before:
        return new
    if src.as_of is None:
        kept = (f"the replica stays complete as of {before.as_of.isoformat(timespec='seconds')}"
                ", as an earlier refresh found" if before.as_of is not None
                else "its lag is unknown")
        log.warning("%s: how far the source is behind its primary is unknown: %s; %s",
                    name, src.as_of_why, kept)
    return new.measured(src.as_of, before, src.receiver_hidden_from)
