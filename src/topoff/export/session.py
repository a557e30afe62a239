"""Where the export's PostgreSQL snapshot session used to live: now topoff.sources.pg_session
(behind topoff.sources.pg_source), re-exported for the commands that open one directly."""

from topoff.sources.pg_session import SnapshotInfo, SnapshotSession

__all__ = ["SnapshotInfo", "SnapshotSession"]
