"""A refresh cancelled by a conflict with recovery starts again, whole, in a new snapshot."""

from __future__ import annotations

import pytest

from support.clusters import drop, own_database
from support.dataset import topoff_log
from support.pg import Database
from topoff.errors import SourceError
from topoff.replicate.config import ReplicateSource, ReplicateTable
from topoff.replicate.run import refresh_table
from topoff.replicate.state import TableState


@pytest.fixture(scope="module")
def impatient(impatient_cluster):
    """A database whose standby cancels conflicting queries at once."""
    db = own_database(impatient_cluster, "conflicts")
    try:
        db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL); "
                   "INSERT INTO events SELECT g, '2026-01-01'::timestamptz + g * "
                   "interval '1 s' FROM generate_series(1, 100) g")
        yield db
    finally:
        drop(db)


def lock_on_first_batch(db: Database, every: bool):
    state = {"batches": 0, "locks": 0, "restarts": 0, "rows": []}

    def sink(batch, rows):
        state["batches"] += 1
        taken = [bytes(r) for r in rows]
        if every or state["locks"] == 0:
            # an ACCESS EXCLUSIVE lock replayed on the standby must cancel the snapshot
            with db.primary() as conn, conn.transaction():
                conn.execute("LOCK TABLE public.events IN ACCESS EXCLUSIVE MODE")
            state["locks"] += 1
            db.sync()
        state["rows"].extend(taken)
        return len(taken)

    def restart():
        state["restarts"] += 1
        state["rows"].clear()

    return sink, restart, state


def source(db: Database) -> ReplicateSource:
    return ReplicateSource("s", db.standby_url)


def table() -> ReplicateTable:
    return ReplicateTable("s", "public", "events", "inserter", cursor="ts", batch_rows=30)


def test_a_conflict_restarts_the_whole_refresh(impatient):
    sink, restart, state = lock_on_first_batch(impatient, every=False)
    with topoff_log():
        new = refresh_table(source(impatient), table(), TableState(), sink, restart,
                            attempts=3, backoff=0.05)
    assert state["locks"] == 1 and state["restarts"] == 1
    assert len(state["rows"]) == 100 and new.rows == 100
    assert new.cursor == "2026-01-01 00:01:40+00"


def test_conflicts_every_time_give_up_with_a_hint(impatient):
    sink, restart, state = lock_on_first_batch(impatient, every=True)
    with topoff_log(), pytest.raises(SourceError) as info:
        refresh_table(source(impatient), table(), TableState(), sink, restart,
                      attempts=2, backoff=0.05)
    assert "conflict with recovery" in info.value.message
    assert "max_standby_streaming_delay" in (info.value.hint or "")
    assert state["restarts"] == 2
