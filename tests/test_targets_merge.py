"""The target conformance suite: the same scenarios against both targets (DuckDB and
PostgreSQL), through the engine API, the one merge (targets/merge.py) and the ledger
(targets/ledger.py), for both kinds of caller: staged dataset files and a row stream."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import zstandard

from topoff.dataset.bounds import Bounds
from topoff.dataset.manifest import Column
from topoff.targets import Target, open_target
from topoff.targets.base import LoadSpec, ReplicaState, TableDef, TableRef, capability_table
from topoff.targets.duckdb import CAPABILITIES as DUCKDB
from topoff.targets.ledger import Ledger
from topoff.targets.merge import merge
from topoff.targets.postgres import CAPABILITIES as POSTGRES

pytest_plugins = ["support.replica_fixtures"]
ROOT = Path(__file__).resolve().parent.parent

COLUMNS = [Column("id", "integer", False), Column("at", "timestamp with time zone"),
           Column("body", "text")]


def _table(method: str = "append", key: bool = True, name: str = "events") -> TableDef:
    return TableDef(f"public.{name}", TableRef("public", name), method, list(COLUMNS),
                    ["id"] if key else [], "at", "timestamp with time zone", "UTC")


def _csv(tmp: Path, name: str, rows: list[tuple[int, str, str]]) -> Path:
    lines = ["id,at,body", *(f"{i},{at},{body}" for i, at, body in rows)]
    path = tmp / f"{name}.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    return path


def _day(n: int) -> Bounds:
    return Bounds(datetime(2026, 1, n, tzinfo=UTC), datetime(2026, 1, n + 1, tzinfo=UTC),
                  "timestamptz")


def _rows(target: Target, t: TableDef) -> list[tuple[int, str]]:
    ref = target.ident(t.target.schema, t.target.name)
    return [(int(r[0]), r[1]) for r in target.execute(f"SELECT id, body FROM {ref} ORDER BY 1")]


@pytest.fixture
def target(replica: str) -> Iterator[Target]:
    t = open_target(replica)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def loaded(target: Target, tmp_path: Path) -> TableDef:
    """A table made and loaded from a file: ids 1, 2 on 2026-01-01, 3, 4 on 2026-01-02."""
    t = _table()
    first = _csv(tmp_path, "initial", [(1, "2026-01-01 10:00:00+00", "a"),
                                       (2, "2026-01-01 11:00:00+00", "b"),
                                       (3, "2026-01-02 10:00:00+00", "c"),
                                       (4, "2026-01-02 11:00:00+00", "d")])
    with target.transaction():
        target.create_table(t)
        assert target.load(LoadSpec(t, [first], mode="initial")) == 4
        target.create_keys(t)
    return t


def test_initial_load_creates_and_fills(target: Target, loaded: TableDef) -> None:
    assert target.table_exists(loaded.target)
    assert _rows(target, loaded) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert target.count(loaded) == 4


def test_append_replaces_the_window_and_rows_that_moved_into_it(
        target: Target, loaded: TableDef, tmp_path: Path) -> None:
    """Day 2 again: 4 is gone from it, 3 changed, 1 moved here from day 1 (by key)."""
    again = _csv(tmp_path, "day2", [(3, "2026-01-02 10:00:00+00", "c2"),
                                    (1, "2026-01-02 12:00:00+00", "a2")])
    with target.transaction():
        rows = target.load(LoadSpec(loaded, [again], window=_day(2), mode="append"))
    assert rows == 2
    assert _rows(target, loaded) == [(1, "a2"), (2, "b"), (3, "c2")]


def test_upsert_by_key(target: Target, loaded: TableDef, tmp_path: Path) -> None:
    t = _table("upsert")
    changed = _csv(tmp_path, "up", [(2, "2026-01-01 11:00:00+00", "b2"),
                                    (9, "2026-01-05 00:00:00+00", "new")])
    with target.transaction():
        assert target.load(LoadSpec(t, [changed], mode="upsert")) == 2
    assert _rows(target, loaded) == [(1, "a"), (2, "b2"), (3, "c"), (4, "d"), (9, "new")]


def test_snapshot_replaces_every_row(target: Target, loaded: TableDef, tmp_path: Path) -> None:
    snap = _csv(tmp_path, "snap", [(7, "2026-01-03 00:00:00+00", "only")])
    with target.transaction():
        assert target.load(LoadSpec(loaded, [snap], mode="snapshot")) == 1
    assert _rows(target, loaded) == [(7, "only")]


def test_since_keeps_only_rows_at_or_after_it(target: Target, loaded: TableDef,
                                              tmp_path: Path) -> None:
    more = _csv(tmp_path, "since", [(5, "2026-01-01 09:00:00+00", "old"),
                                    (6, "2026-01-03 09:00:00+00", "kept")])
    since = datetime(2026, 1, 2, tzinfo=UTC)
    with target.transaction():
        assert target.load(LoadSpec(loaded, [more], mode="upsert", since=since)) == 1
    assert (6, "kept") in _rows(target, loaded) and (5, "old") not in _rows(target, loaded)


def test_add_column(target: Target, loaded: TableDef, tmp_path: Path) -> None:
    extra = Column("score", "bigint")
    with target.transaction():
        target.add_column(loaded, extra)
    loaded.columns.append(extra)
    path = tmp_path / "wide.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(
        b"id,at,body,score\n8,2026-01-04 00:00:00+00,w,42\n"))
    with target.transaction():
        assert target.load(LoadSpec(loaded, [path], mode="upsert")) == 1
    ref = target.ident("public", "events")
    assert target.execute(f"SELECT score FROM {ref} WHERE id = 8") == [(42,)]
    assert target.execute(f"SELECT count(score) FROM {ref}") == [(1,)]


def test_a_row_stream_merges_like_files(target: Target, loaded: TableDef) -> None:
    """The row-stream caller: stage_rows, then the same merge (upsert, then delete-keys)."""
    at = datetime(2026, 1, 2, 10, tzinfo=UTC)
    stream = iter([(3, at, "c3"), (10, at, "it's")])  # an iterator: read once, streamed
    with target.transaction(), target.stage_rows(loaded, loaded.columns, stream) as stage:
        assert merge(target, loaded, loaded.columns, stage, "upsert") == 2
    assert _rows(target, loaded) == [(1, "a"), (2, "b"), (3, "c3"), (4, "d"), (10, "it's")]
    keys = loaded.columns[:1]
    with target.transaction(), target.stage_rows(loaded, keys, [(1,), (10,), (99,)]) as stage:
        assert merge(target, loaded, keys, stage, "delete-keys") == 2
    assert _rows(target, loaded) == [(2, "b"), (3, "c3"), (4, "d")]


def test_upsert_unique_writes_only_new_and_changed_rows(target: Target,
                                                       loaded: TableDef) -> None:
    """Same rows as ``upsert``; with key indexes (PostgreSQL) an unchanged row read again
    is not rewritten (its xmin stays), a changed one is, a NULL compares as a value."""
    ref = target.ident(loaded.target.schema, loaded.target.name)
    pg = target.capabilities.primary_keys
    with target.transaction():
        target.execute(f"UPDATE {ref} SET body = NULL WHERE id = 4")
    before = dict(target.execute(f"SELECT id, xmin::text FROM {ref}")) if pg else {}
    a1, a2 = datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 11, tzinfo=UTC)
    b2 = datetime(2026, 1, 2, 11, tzinfo=UTC)
    rows = [(1, a1, "a"), (2, a2, "b2"), (4, b2, None), (3, b2, None), (11, a1, "new")]
    with target.transaction(), target.stage_rows(loaded, loaded.columns, rows) as stage:
        assert merge(target, loaded, loaded.columns, stage, "upsert-unique") == 5
    assert _rows(target, loaded) == [(1, "a"), (2, "b2"), (3, None), (4, None), (11, "new")]
    assert target.execute(f"SELECT \"at\" FROM {ref} WHERE id = 3")[0][0] == b2
    if pg:
        after = dict(target.execute(f"SELECT id, xmin::text FROM {ref}"))
        assert after[1] == before[1] and after[4] == before[4]  # unchanged: not written
        assert after[2] != before[2] and after[3] != before[3]


def test_a_row_stream_replaces_a_window(target: Target, loaded: TableDef) -> None:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    with target.transaction(), target.stage_rows(loaded, loaded.columns, [(5, at, "e")]) as s:
        assert merge(target, loaded, loaded.columns, s, "append", _day(1)) == 1
    assert _rows(target, loaded) == [(3, "c"), (4, "d"), (5, "e")]


def test_merge_refuses_unknown_modes_and_keyless_deletes(target: Target,
                                                         loaded: TableDef) -> None:
    keyless = _table(key=False)
    with target.transaction(), target.stage_rows(loaded, loaded.columns[:1], [(1,)]) as stage:
        with pytest.raises(ValueError, match="mode"):
            merge(target, loaded, loaded.columns[:1], stage, "replace; drop")
        with pytest.raises(ValueError, match="primary key"):
            merge(target, keyless, loaded.columns[:1], stage, "delete-keys")
    assert target.count(loaded) == 4


def test_ledger_round_trip(target: Target) -> None:
    ledger = Ledger(target)
    assert not ledger.has_ledger() and ledger.replicas() == []
    ledger.ensure_ledger()
    ledger.ensure_ledger()  # idempotent
    state = ReplicaState("ds", "file:///o", "full-1", 1, "ready", 3, ["public.events"],
                         date(2026, 1, 1), "copy", False)
    t = _table()
    t.source_parts = ("public", "events")
    with target.transaction():
        ledger.write_replica(state)
        ledger.write_table_def("ds", t)
        ledger.record_step("ds", "full-1", "schema", 1, "full", None, None, None, "ab")
        ledger.record_step("ds", "day-2", "partition", 3, "partition", "2026-01-02", 1, 5, "cd")
    got = ledger.read_replica("ds")
    assert got is not None and got.updated_at is not None
    got.updated_at = None
    assert got == state
    assert ledger.table_defs("ds") == {"public.events": t}
    assert ledger.replicas() == ["ds"]
    assert ledger.applied_steps("ds", "full-1") == {"schema"}
    assert ledger.full_load_publication("ds") == "full-1"
    assert [r[0] for r in ledger.applied("ds")] == ["day-2", "full-1"]
    with target.transaction():
        ledger.forget("ds")
    assert ledger.read_replica("ds") is None and ledger.table_defs("ds") == {}


def test_ledger_and_data_commit_together(target: Target, loaded: TableDef,
                                         tmp_path: Path) -> None:
    """A failure after the rows and the ledger row were written leaves neither."""
    ledger = Ledger(target)
    ledger.ensure_ledger()
    more = _csv(tmp_path, "more", [(11, "2026-01-03 00:00:00+00", "x")])
    with pytest.raises(RuntimeError), target.transaction():
        target.load(LoadSpec(loaded, [more], mode="upsert"))
        ledger.record_step("ds", "day-3", "partition", 4, "partition", None, None, 1, None)
        raise RuntimeError("killed")
    assert target.count(loaded) == 4
    assert ledger.applied_steps("ds", "day-3") == set()


def test_keys_follow_the_declared_capabilities(target: Target, loaded: TableDef) -> None:
    """create_keys makes the primary key and cursor index the capabilities declare."""
    caps = target.capabilities
    if caps.name == "postgresql":
        indexes = target.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'events'")
    else:
        indexes = target.execute("SELECT sql FROM duckdb_indexes() WHERE table_name = 'events'")
        indexes += target.execute("SELECT constraint_text FROM duckdb_constraints() WHERE "
                                  "table_name = 'events' AND constraint_type = 'PRIMARY KEY'")
    text = " ".join(str(r[0]) for r in indexes).lower()
    assert ("primary" in text or "pkey" in text) == caps.primary_keys
    assert ("(at)" in text) == caps.cursor_index


def test_the_docs_print_the_declared_capabilities() -> None:
    page = (ROOT / "docs" / "targets.md").read_text()
    assert capability_table([DUCKDB, POSTGRES]) in page


def test_hostile_names_and_values_stay_data(target: Target) -> None:
    """Names with quotes, percent signs and semicolons, and values that look like SQL, go
    through the merge as quoted names and bound data, on both engines."""
    cols = [Column('i%d"; DROP TABLE x; --', "integer", False),
            Column("at", "timestamp with time zone"), Column("b'o%s", "text")]
    t = TableDef('s"c%h.t', TableRef('s"c%h', "t'%s;"), "append", cols, [cols[0].name],
                 "at", "timestamp with time zone", "UTC")
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    evil = "'); DROP TABLE events; --%s"
    with target.transaction():
        target.create_table(t)
        with target.stage_rows(t, cols, [(1, at, evil), (2, at, "%(x)s")]) as stage:
            assert merge(target, t, cols, stage, "initial") == 2
    with target.transaction(), target.stage_rows(t, cols, [(1, at, evil + "2")]) as stage:
        assert merge(target, t, cols, stage, "append", _day(1)) == 1
    ref = target.ident(t.target.schema, t.target.name)
    assert target.execute(f"SELECT {target.ident(cols[2].name)} FROM {ref}") == [
        (evil + "2",)]
