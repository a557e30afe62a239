"""One refresh of one table, retried as a whole when the standby cancels its snapshot.

A recovery conflict (or a lost connection) loses the snapshot, so the unit of retry is the
whole refresh: the ``restart`` callback lets the caller throw away what the sink took in
(the target's uncommitted transaction), then the refresh starts again from the same
stored state in a new snapshot. A refresh never resumes from a position reached in
another snapshot: rows committed in between below that position would be skipped, and the
next run's commit rule (which starts from the new snapshot's xmin) would not find them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from topoff.replicate.config import ReplicateSource, ReplicateTable
from topoff.replicate.describe import describe
from topoff.replicate.read import Batch, Refresh, open_snapshot
from topoff.replicate.state import TableState
from topoff.safety import retry_on_recovery_conflict

#: takes a batch and its CSV rows (one buffer per row), returns how many rows it took
Sink = Callable[[Batch, Iterator[memoryview]], int]


def refresh_table(source: ReplicateSource, table: ReplicateTable, state: TableState,
                  sink: Sink, restart: Callable[[], None] | None = None,
                  attempts: int = 5, backoff: float = 2.0) -> TableState:
    """Read one refresh of an inserter/updater table into ``sink``; return the next state
    (to be stored by the target in the same transaction as the rows)."""

    def once(attempt: int) -> TableState:
        conn = open_snapshot(source.url, source.allow_primary)
        try:
            r = Refresh(conn, describe(conn, table), state)
            moved = 0
            for batch in r.batches():
                moved += sink(batch, r.rows(batch))
            conn.execute("COMMIT")
            return r.next_state(moved)
        finally:
            conn.close()

    return retry_on_recovery_conflict(once, attempts, backoff,
                                      f"refreshing {source.name}:{table.qualified}",
                                      cleanup=restart)
