"""``topoff replicate`` into an Iceberg replica (SQL catalog on SQLite, local warehouse),
from the real standby: each method built and refreshed, every value read back through
pyiceberg and compared with the source's; columns added; a refused type change; a failure
inside a commit; two runs on one table at once; a real process SIGKILLed and run again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql
from pyiceberg.exceptions import NoSuchTableError

from support.replicate import config, config_text, new_database
from topoff.errors import ConfigError, IntegrityError
from topoff.replicate.engine import repull, resync, run_once, set_paused
from topoff.replicate.iceberg_apply import IcebergReplica
from topoff.replicate.operate import freshness, reconcile
from topoff.replicate.report import table_status
from topoff.replicate.source import Request
from topoff.targets.iceberg import replica_write
from topoff.targets.iceberg.config import open_catalog, read_settings

ROOT = Path(__file__).resolve().parents[1]

SOURCE_SQL = """
CREATE TABLE plain (id int PRIMARY KEY, ts timestamptz NOT NULL, v text, n numeric(12,2));
INSERT INTO plain SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', 'v' || g, g / 7.0
  FROM generate_series(1, 5000) g;
CREATE TABLE nokey (ts timestamp NOT NULL, site int, payload text);
INSERT INTO nokey SELECT '2026-01-01'::timestamp + g * interval '1 min', g % 5, 'p' || g
  FROM generate_series(1, 5000) g;
CREATE TABLE upd (id bigint PRIMARY KEY, changed timestamptz NOT NULL, state text,
  tags text[], day date);
INSERT INTO upd SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', 'new',
  ARRAY['a', 'b' || g], '2026-01-01'::date + g % 30 FROM generate_series(1, 5000) g;
CREATE TABLE snap (id int PRIMARY KEY, label text, secret text, ok boolean);
INSERT INTO snap SELECT g, CASE WHEN g % 10 = 0 THEN '' WHEN g % 11 = 0 THEN NULL
  ELSE 'l,"' || g || E'\\n' END, 's', g % 2 = 0 FROM generate_series(1, 5000) g;
CREATE TABLE empty (id int PRIMARY KEY, ts timestamptz NOT NULL);
CREATE TABLE pair (a int, b text, ts timestamptz NOT NULL, v int, PRIMARY KEY (a, b));
INSERT INTO pair SELECT g % 50, 'b' || (g / 50), '2026-01-01'::timestamptz + g * interval '1 s',
  g FROM generate_series(1, 3000) g;
"""

TABLES: dict[str, dict[str, object]] = {
    "plain": {"method": "inserter", "cursor": "ts", "batch_rows": 3000},
    "nokey": {"method": "inserter", "cursor": "ts", "batch_rows": 3000},
    "upd": {"method": "updater", "cursor": "changed"},
    "snap": {"method": "snapshot", "exclude": ["secret"]},
    "empty": {"method": "inserter", "cursor": "ts"},
    "pair": {"method": "updater", "cursor": "ts"},
}


def catalog_file(tmp_path: Path) -> str:
    path = tmp_path / "catalog.toml"
    path.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                    'warehouse = "warehouse"\nnamespace = "unused"\n')
    return f"iceberg:{path}"


def iceberg_table(location: str, namespace: str, name: str) -> Any:
    return open_catalog(read_settings(location)).load_table((namespace, name))


def _key(row: tuple) -> tuple:
    return tuple((v is None, str(v)) for v in row)


def iceberg_rows(location: str, namespace: str, name: str) -> tuple[list[str], list[tuple]]:
    t = iceberg_table(location, namespace, name).scan().to_arrow()
    rows = zip(*(t.column(n).to_pylist() for n in t.column_names), strict=True) \
        if t.num_rows else []
    return t.column_names, sorted(rows, key=_key)


def source_rows(db: Any, name: str, names: list[str]) -> list[tuple]:
    stmt = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier("public", name))
    with db.standby() as conn:
        rows = conn.execute(stmt).fetchall()
    return sorted((tuple(r) for r in rows), key=_key)


def same(location: str, db: Any, name: str, namespace: str = "app") -> int:
    """Every value of the Iceberg table equals the source's; the row count."""
    names, have = iceberg_rows(location, namespace, name)
    want = source_rows(db, name, names)
    assert len(have) == len(want), name
    for a, b in zip(have, want, strict=True):
        assert a == b, name
    return len(have)


@pytest.fixture
def setup(cluster, tmp_path):
    db = new_database(cluster)
    db.execute(SOURCE_SQL)
    target = catalog_file(tmp_path)
    return db, target, config(target, {"app": (db.standby_url, TABLES)})


@pytest.mark.parametrize("jobs", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_each_method_builds_and_refreshes_value_by_value(setup, jobs):
    db, target, cfg = setup
    runs = {r.table: (r.status, r.rows) for r in run_once(cfg, jobs=jobs)}
    assert runs == {"public.plain": ("ok", 5000), "public.nokey": ("ok", 5000),
                    "public.upd": ("ok", 5000), "public.snap": ("ok", 5000),
                    "public.empty": ("ok", 0), "public.pair": ("ok", 3000)}
    for name in ("plain", "nokey", "upd", "snap", "empty", "pair"):
        same(target, db, name)
    names, _ = iceberg_rows(target, "app", "snap")
    assert names == ["id", "label", "ok"]  # the excluded column is not there

    db.execute("INSERT INTO plain SELECT g, '2026-02-01'::timestamptz + g * interval '1 s', "
               "'w', 1.5 FROM generate_series(5001, 5100) g; "
               "UPDATE plain SET v = 'late' WHERE id = 5000; "  # at the boundary
               "INSERT INTO nokey SELECT '2026-01-01'::timestamp + g * interval '1 min', 9, "
               "'q' FROM generate_series(4990, 5010) g; "  # ties and new minutes
               "UPDATE upd SET changed = '2026-03-01', state = 'done' WHERE id % 100 = 0; "
               "INSERT INTO upd VALUES (9999, '2026-03-02', NULL, NULL, NULL); "
               "UPDATE snap SET label = 'x' WHERE id <= 10; DELETE FROM snap WHERE id = 11; "
               "UPDATE pair SET ts = '2026-03-01', v = -v WHERE a = 7; "
               "INSERT INTO pair VALUES (7, 'new', '2026-03-02', 0)")
    runs = {r.table: (r.status, r.rows) for r in run_once(cfg, jobs=jobs)}
    assert runs["public.snap"] == ("ok", 4999)
    assert runs["public.upd"][1] >= 51 and runs["public.plain"][1] >= 100
    assert same(target, db, "plain") == 5100
    assert same(target, db, "nokey") == 5021
    assert same(target, db, "upd") == 5001
    assert same(target, db, "snap") == 4999
    assert same(target, db, "pair") == 3001 and runs["public.pair"][1] >= 61

    again = {r.table: (r.status, r.rows) for r in run_once(cfg, jobs=jobs)}
    assert again["public.snap"] == ("unchanged", 0)
    assert again["public.upd"] == ("ok", 0) and again["public.plain"] == ("ok", 0)
    for name in ("plain", "nokey", "upd", "snap", "pair"):
        same(target, db, name)

    status = {s.table: s for s in table_status(cfg)}
    assert status["public.plain"].rows_total == 5100 + runs["public.plain"][1] - 100
    assert status["public.snap"].last_refresh is not None
    assert status["public.empty"].configured and not status["public.empty"].paused
    assert freshness(cfg, 3600, 7200).code == 0


def test_state_lands_in_the_same_commit_as_the_rows(setup):
    _db, target, cfg = setup
    run_once(cfg, ["plain"])
    table = iceberg_table(target, "app", "plain")
    props = dict(table.properties)
    assert props["commit.retry.num-retries"] == "0"
    assert '"cursor": "2026-01-01 01:23:20+00"' in props["topoff.replicate.state"]
    summary = table.current_snapshot().summary.additional_properties
    assert summary["topoff.replicate.source"] == "app.public.plain"
    assert summary["topoff.replicate.cursor"] == "2026-01-01 01:23:20+00"


def test_a_column_added_on_the_source_becomes_an_iceberg_column(setup):
    db, target, cfg = setup
    run_once(cfg, ["plain", "snap"])
    db.execute("ALTER TABLE plain ADD COLUMN extra int; "
               "INSERT INTO plain VALUES (6000, '2026-05-01', 'e', 1, 42); "
               "ALTER TABLE snap ADD COLUMN more text DEFAULT 'm'")
    runs = {r.table: r for r in run_once(cfg, ["plain", "snap"])}
    assert runs["public.plain"].status == "ok" and runs["public.snap"].rows == 5000
    names, rows = iceberg_rows(target, "app", "plain")
    assert names[-1] == "extra" and sum(r[-1] is not None for r in rows) == 1
    same(target, db, "plain")
    same(target, db, "snap")


@pytest.mark.parametrize("drop", [False, True], ids=["kept", "drop_columns"])
def test_a_column_dropped_on_the_source_is_kept_or_dropped(cluster, tmp_path, drop):
    """Kept (nullable, later rows NULL) by default; with drop_columns = true, deleted from
    the Iceberg schema in the refresh's commit, for an updater and a snapshot table."""
    db = new_database(cluster)
    db.execute(SOURCE_SQL)
    target = catalog_file(tmp_path)
    tables = {k: {**TABLES[k], "drop_columns": drop} for k in ("upd", "snap")}
    cfg = config(target, {"app": (db.standby_url, tables)})
    run_once(cfg)
    db.execute("ALTER TABLE upd DROP COLUMN tags; ALTER TABLE snap DROP COLUMN ok; "
               "UPDATE upd SET changed = clock_timestamp(), state = 'after' WHERE id <= 10")
    runs = {r.table: r.status for r in run_once(cfg)}
    # kept: the snapshot table's rows did not change, nor does its copy (the column keeps
    # its values until the rows are written again); dropped: the schema change is a change
    assert runs == {"public.upd": "ok", "public.snap": "ok" if drop else "unchanged"}
    for name, column in (("upd", "tags"), ("snap", "ok")):
        names, rows = iceberg_rows(target, "app", name)
        assert (column in names) is not drop
        if drop:
            same(target, db, name)
    if not drop:
        names, rows = iceberg_rows(target, "app", "upd")
        at = names.index("tags")
        assert sum(r[at] is None for r in rows) == 10  # the rows written since


def test_a_type_change_iceberg_cannot_take_is_refused_and_changes_nothing(setup):
    db, target, cfg = setup
    run_once(cfg, ["snap"])
    before = iceberg_table(target, "app", "snap").metadata.current_snapshot_id
    db.execute("ALTER TABLE snap ALTER label TYPE int USING length(label)")
    [run] = run_once(cfg, ["snap"])
    assert run.status == "failed" and run.exit_code == 7
    assert "cannot hold" in (run.error or "") and "--resync" in (run.error or "")
    assert iceberg_table(target, "app", "snap").metadata.current_snapshot_id == before
    assert resync(cfg, "snap").status == "ok"  # rebuilt with the new type
    same(target, db, "snap")


def test_a_failure_inside_the_commit_changes_nothing(setup, monkeypatch):
    db, target, cfg = setup
    run_once(cfg, ["upd"])
    db.execute("UPDATE upd SET changed = '2026-04-01', state = 'x' WHERE id <= 300")

    def boom() -> None:
        raise OSError(28, "No space left on device")

    def failing(*args: Any) -> int:
        return replica_write.commit(*args[:4], boom)

    monkeypatch.setattr("topoff.replicate.iceberg_apply.commit", failing)
    table = iceberg_table(target, "app", "upd")
    state = table.properties["topoff.replicate.state"]
    [run] = run_once(cfg, ["upd"])
    assert run.status == "failed" and run.exit_code == 7
    table = iceberg_table(target, "app", "upd")
    assert table.properties["topoff.replicate.state"] == state
    monkeypatch.undo()
    [run] = run_once(cfg, ["upd"])
    assert (run.status, run.rows) == ("ok", 300)
    same(target, db, "upd")


def test_a_second_run_committing_first_makes_this_one_locked(setup):
    db, target, cfg = setup
    run_once(cfg, ["plain"])
    db.execute("INSERT INTO plain VALUES (7000, '2026-06-01', 'n', 2)")
    (src,) = cfg.sources
    t = next(x for x in src.tables if x.name == "plain")
    other: list[object] = []
    first = IcebergReplica(target)

    def meanwhile() -> None:  # inside the first run's commit, before it is made
        if not other:
            other.append(IcebergReplica(target).refresh(src, t, Request()))

    first.hook = meanwhile
    result = first.refresh(src, t, Request())
    assert result.status == "locked"
    assert [(r.status, r.rows) for r in other] == [("ok", 1)]  # type: ignore[attr-defined]
    assert same(target, db, "plain") == 5001  # once, not twice


def test_pause_repull_and_refusals(setup):
    db, target, cfg = setup
    with pytest.raises(ConfigError):
        set_paused(cfg, "plain", True)  # no table yet
    run_once(cfg, ["plain", "nokey"])
    set_paused(cfg, "plain", True)
    db.execute("INSERT INTO plain VALUES (8000, '2026-07-01', 'p', 3)")
    assert [r.status for r in run_once(cfg, ["plain"])] == ["paused"]
    assert {s.table: s.paused for s in table_status(cfg)}["public.plain"]
    set_paused(cfg, "plain", False)
    assert [r.rows for r in run_once(cfg, ["plain"])] == [1]
    assert repull(cfg, "nokey").rows == 5000
    assert same(target, db, "nokey") == 5000
    with pytest.raises(ConfigError, match="no cursor range"):
        repull(cfg, "snap", "1", "2")


def test_a_ranged_repull_replaces_that_range_only_and_keeps_the_state(setup):
    db, target, _ = setup
    short = {n: {**TABLES[n], "lookback": "10m"} for n in ("plain", "nokey")}
    cfg = config(target, {"app": (db.standby_url, short)})
    run_once(cfg, ["plain", "nokey"])
    # changed behind the cursor (the cursor not moved): no refresh sees them
    db.execute("UPDATE plain SET v = 'behind' WHERE id BETWEEN 100 AND 200;"
               "UPDATE plain SET v = 'outside' WHERE id BETWEEN 4000 AND 4010;"
               "DELETE FROM nokey WHERE site = 1 AND ts < '2026-01-02';"
               "UPDATE nokey SET payload = 'outside' WHERE ts BETWEEN '2026-01-03' AND "
               "'2026-01-04'")
    assert [r.rows for r in run_once(cfg, ["plain"])] == [0]
    state = {n: iceberg_table(target, "app", n).properties["topoff.replicate.state"]
             for n in ("plain", "nokey")}
    lo, hi = "2026-01-01 00:01:40+00", "2026-01-01 00:03:20+00"  # ids 100..200
    assert repull(cfg, "plain", lo, hi).rows == 101
    assert repull(cfg, "nokey", None, "2026-01-01 23:59:59").rows == 1439 - 288
    names, have = iceberg_rows(target, "app", "plain")
    got = {r[0]: r[names.index("v")] for r in have}
    assert {got[i] for i in range(100, 201)} == {"behind"}
    assert got[4000] == "v4000" and len(got) == 5000  # outside the range: as it was
    names, have = iceberg_rows(target, "app", "nokey")
    payload = [r[names.index("payload")] for r in have]
    assert len(have) == 5000 - 288 and "outside" not in payload
    for n in ("plain", "nokey"):  # the watermark and xmin as they were
        assert iceberg_table(target, "app", n).properties["topoff.replicate.state"] == state[n]
    bad = repull(cfg, "plain", "not a time", None)
    assert bad.status == "failed" and bad.exit_code == 2
    # a bound of the source's the Iceberg column cannot hold: the operator's to change
    bad = repull(cfg, "nokey", "-infinity", "infinity")
    assert bad.status == "failed" and bad.exit_code == 2, bad.error
    assert "'infinity' is no value of" in (bad.error or "")
    db.execute("UPDATE nokey SET payload = 'outside' WHERE ts < '2026-01-02'")
    assert repull(cfg, "nokey", "2026-01-01 00:00:00", None).rows == 5000 - 288
    same(target, db, "nokey")


def test_reconcile_repairs_deletes_changes_and_doubles_in_one_commit(setup):
    from topoff.errors import TargetError

    db, target, cfg = setup
    with pytest.raises(TargetError, match="not been replicated"):
        reconcile(cfg, "plain")
    run_once(cfg, ["plain", "pair", "nokey", "upd"])
    with pytest.raises(ConfigError, match="no primary key"):
        reconcile(cfg, "nokey")
    # behind the watermark, the cursor not moved: deletes, updates, a late old row
    db.execute("DELETE FROM plain WHERE id BETWEEN 10 AND 19;"
               "UPDATE plain SET v = 'changed', n = -0.5 WHERE id BETWEEN 20 AND 24;"
               "INSERT INTO plain VALUES (100000, '2026-01-01 00:00:05+00', 'old', 0);"
               "DELETE FROM pair WHERE a = 3 AND b IN ('b0', 'b1');"
               "UPDATE pair SET v = -1 WHERE a = 4 AND b = 'b2';"
               "UPDATE upd SET tags = ARRAY['x', NULL] WHERE id = 7")
    plain = iceberg_table(target, "app", "plain")
    state = plain.properties["topoff.replicate.state"]
    # a row held twice in the table (as a damaged or foreign writer could leave it)
    doubled = plain.scan(row_filter="id == 30").to_arrow()
    with plain.transaction() as txn:
        txn.append(doubled)
    got = reconcile(cfg, "plain")
    assert (got.inserted, got.updated, got.deleted) == (1, 6, 10)
    assert got.compared_rows == 4991
    assert same(target, db, "plain") == 4991
    table = iceberg_table(target, "app", "plain")
    assert table.properties["topoff.replicate.state"] == state  # the watermark stays
    assert table.current_snapshot().summary["topoff.replicate.reconciled"] == "true"
    pair = reconcile(cfg, "pair")
    assert (pair.inserted, pair.updated, pair.deleted) == (0, 1, 2)
    assert same(target, db, "pair") == 2998
    assert reconcile(cfg, "upd").updated == 1
    same(target, db, "upd")
    snapshots = len(iceberg_table(target, "app", "plain").metadata.snapshots)
    again = reconcile(cfg, "plain")
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert len(iceberg_table(target, "app", "plain").metadata.snapshots) == snapshots
    db.execute("INSERT INTO plain VALUES (100001, '2026-09-01', 'new', 1)")
    run_once(cfg, ["plain"])  # the xmin rule reads the repaired rows again: by key, once
    assert same(target, db, "plain") == 4992
    # names that differ in case only (one name for DuckDB, where the rows are compared)
    db.execute('CREATE TABLE twins ("A" int PRIMARY KEY, a text, "Z" float8);'
               "INSERT INTO twins SELECT g, 't' || g, g / 3.0 FROM generate_series(0, 50) g")
    twins = config(target, {"app": (db.standby_url, {"twins": {"method": "snapshot"}})})
    run_once(twins)
    db.execute("""UPDATE twins SET a = 'changed' WHERE "A" = 7;"""
               """UPDATE twins SET "Z" = '-0' WHERE "A" = 0""")  # -0 is not 0
    got = reconcile(twins, "twins")
    assert (got.inserted, got.updated, got.deleted) == (0, 2, 0)
    same(target, db, "twins")


def test_a_null_key_is_refused_by_reconcile_and_nothing_committed(setup):
    """A configured key column holding NULL: such a row matches none (it was deleted and
    appended at every reconcile; its delete was an internal error, exit 70)."""
    from topoff.errors import SourceError, TargetError

    db, target, _ = setup
    db.execute("CREATE TABLE loose (k int, v int); INSERT INTO loose VALUES (1, 1), (NULL, 2)")
    cfg = config(target, {"app": (db.standby_url, {"loose": {"method": "snapshot",
                                                             "key": ["k"]}})})
    run_once(cfg)
    snapshots = len(iceberg_table(target, "app", "loose").metadata.snapshots)
    with pytest.raises(SourceError, match="a key column is NULL") as info:
        reconcile(cfg, "loose")
    assert info.value.exit_code == 3 and "NOT NULL" in (info.value.hint or "")
    assert len(iceberg_table(target, "app", "loose").metadata.snapshots) == snapshots
    db.execute("UPDATE loose SET k = 2 WHERE k IS NULL")  # the table's NULL key is refused
    with pytest.raises(TargetError, match=r"a key column is NULL in a row of app\.public\.loose"):
        reconcile(cfg, "loose")
    assert len(iceberg_table(target, "app", "loose").metadata.snapshots) == snapshots


def test_a_refresh_committed_during_a_reconcile_makes_it_change_nothing(setup, monkeypatch):
    from topoff.errors import LockedError, TargetError
    from topoff.replicate import iceberg_reconcile

    db, target, cfg = setup
    run_once(cfg, ["plain"])
    db.execute("DELETE FROM plain WHERE id <= 3; INSERT INTO plain VALUES "
               "(9000, '2026-06-01', 'n', 1)")
    real = iceberg_reconcile._delete

    def refresh_first(*args: Any) -> None:
        assert [r.rows for r in run_once(cfg, ["plain"])] == [1]  # commits meanwhile
        real(*args)
    monkeypatch.setattr(iceberg_reconcile, "_delete", refresh_first)
    with pytest.raises(LockedError, match="while it was reconciled"):
        reconcile(cfg, "plain")
    ids = [r[0] for r in iceberg_rows(target, "app", "plain")[1]]
    assert len(ids) == 5001 and {1, 2, 3, 9000} <= set(ids)  # the refresh's commit only
    monkeypatch.setattr(iceberg_reconcile, "_delete", real)
    assert reconcile(cfg, "plain").deleted == 3
    assert same(target, db, "plain") == 4998
    # a source value its Iceberg column cannot hold: refused as itself, nothing committed
    db.execute("UPDATE plain SET ts = 'infinity' WHERE id = 5")
    snapshots = len(iceberg_table(target, "app", "plain").metadata.snapshots)
    with pytest.raises(TargetError, match="does not fit its Iceberg column") as info:
        reconcile(cfg, "plain")
    assert info.value.exit_code == 7
    assert len(iceberg_table(target, "app", "plain").metadata.snapshots) == snapshots


def test_damaged_state_properties_are_an_integrity_error(setup):
    _db, target, cfg = setup
    run_once(cfg, ["plain"])
    table = iceberg_table(target, "app", "plain")
    with table.transaction() as txn:
        txn.set_properties({"topoff.replicate.state": '{"v": 1, "cursor": 5}'})
    [run] = run_once(cfg, ["plain"])
    assert run.status == "failed" and run.exit_code == IntegrityError.exit_code
    with table.transaction() as txn:
        txn.set_properties({"topoff.replicate.definition": "{"})
    with pytest.raises(IntegrityError):
        table_status(cfg)


def test_a_name_iceberg_does_not_take_fails_the_table(setup):
    db, target, _ = setup
    cfg = config(target, {"app": (db.standby_url, {"plain": {"method": "snapshot",
                                                              "name": "pl ain"}})})
    [run] = run_once(cfg)
    assert run.status == "failed" and str(run.error).startswith(
        "its table name 'pl ain' is not a name"), run.error  # shown after app.public.plain


def test_a_table_of_another_kind_is_not_taken_over(setup):
    _db, target, cfg = setup
    from pyiceberg.schema import Schema
    from pyiceberg.types import IntegerType, NestedField

    catalog = open_catalog(read_settings(target))
    catalog.create_namespace("app")
    catalog.create_table(("app", "plain"),
                         schema=Schema(NestedField(1, "id", IntegerType(), required=False)))
    [run] = run_once(cfg, ["plain"])
    assert run.status == "failed" and "already exists" in (run.error or "")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOPOFF_CONFIG": ""}


def test_a_refresh_written_as_many_batches_keeps_every_row(setup, monkeypatch):
    """Rows read in many small blocks and written as many batches of one commit: every
    batch's data files keep names of their own (equal names overwrote earlier batches)."""
    from topoff.targets.iceberg import replica

    monkeypatch.setattr(replica, "BLOCK", 16 << 10)
    monkeypatch.setattr(replica_write, "WRITE_BYTES", 1)
    db, target, cfg = setup
    assert {r.table: r.status for r in run_once(cfg)}["public.snap"] == "ok"
    for name in ("plain", "nokey", "upd", "snap", "pair"):
        same(target, db, name)
    table = iceberg_table(target, "app", "plain")
    assert len(table.inspect.files()) > 3


@pytest.mark.slow
def test_sigkill_at_random_points_then_a_rerun(cluster, tmp_path):
    db = new_database(cluster)
    db.execute("CREATE TABLE big (id bigint PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO big SELECT g, '2026-01-01'::timestamptz + g * interval '1 ms', "
               "repeat('x', g % 50) FROM generate_series(1, 100000) g; "
               "CREATE TABLE snap AS SELECT * FROM big WHERE id <= 25000; "
               "ALTER TABLE snap ADD PRIMARY KEY (id)")
    target = catalog_file(tmp_path)
    tables: dict[str, dict[str, object]] = {"big": {"method": "updater", "cursor": "ts"},
                                            "snap": {"method": "snapshot"}}
    path = tmp_path / "r.toml"
    path.write_text(config_text(target, {"app": (db.standby_url, tables)}))
    rnd = random.Random(7)
    command = [sys.executable, "-m", "topoff", "replicate", "--config", str(path), "--once"]
    scratch = tmp_path / "scratch.toml"  # how long a whole run takes here, now
    (tmp_path / "scratch").mkdir()
    scratch.write_text(config_text(catalog_file(tmp_path / "scratch"),
                                   {"app": (db.standby_url, tables)}))
    began = time.monotonic()
    subprocess.run([*command[:5], str(scratch), "--once"], env=_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    took = time.monotonic() - began
    killed = 0
    for n in range(ROUNDS := 5):
        if n >= 2:  # changes to refresh: updates and new rows, a changed snapshot table
            db.execute(f"UPDATE big SET ts = clock_timestamp(), v = 'u{n}' WHERE id % 97 = "
                       f"{n}; INSERT INTO big VALUES ({300000 + n}, clock_timestamp(), 'n'); "
                       f"UPDATE snap SET v = 'u{n}' WHERE id % 89 = {n}")
        began = time.monotonic()
        proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:  # a random moment inside the run, as long as the last whole run took
            proc.wait(timeout=rnd.uniform(0.2, 0.95) * took)
            took = time.monotonic() - began
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        killed += proc.wait() == -signal.SIGKILL
    assert killed >= 3  # most runs did die before they finished
    done = subprocess.run(
        [sys.executable, "-m", "topoff", "replicate", "--config", str(path), "--once"],
        env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert same(target, db, "big") == 100000 + ROUNDS - 2  # a new row each round from 2
    assert same(target, db, "snap") == 25000


#: ``python -m topoff replicate ...`` that SIGKILLs itself inside its N-th commit, once the
#: rows are written and before the catalog swaps the metadata in
KILL_IN_COMMIT = """
import os, signal, sys
from topoff.replicate import iceberg_apply
real, seen = iceberg_apply.commit, [0]
def commit(*args):
    def die():
        seen[0] += 1
        if seen[0] == int(os.environ["KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(*args[:4], die)
iceberg_apply.commit = commit
sys.argv = ["topoff", *sys.argv[1:]]
from topoff.cli import main
main()
"""


@pytest.mark.slow
def test_sigkill_inside_each_commit_then_a_rerun(setup):
    """Killed inside the first load's commit, then inside each table's refresh commit:
    nothing of a killed commit is seen, and the rerun gives every row exactly once."""
    db, target, _ = setup
    path = setup_config(db, target)
    command = [sys.executable, "-c", KILL_IN_COMMIT, "replicate", "--config", path, "--once"]
    for at in (1, 2, 3):
        proc = subprocess.run(command, env={**_env(), "KILL_AT": str(at)},
                              capture_output=True, text=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    # run 1 died in plain's load, run 2 in nokey's, run 3 in upd's (its table made, empty)
    assert same(target, db, "plain") == 5000 and same(target, db, "nokey") == 5000
    assert iceberg_rows(target, "app", "upd")[1] == []
    assert "topoff.replicate.state" not in iceberg_table(target, "app", "upd").properties or \
        not iceberg_table(target, "app", "upd").properties["topoff.replicate.state"]
    with pytest.raises(NoSuchTableError):
        iceberg_table(target, "app", "snap")
    db.execute("UPDATE upd SET changed = '2026-03-01', state = 'k' WHERE id % 7 = 0; "
               "INSERT INTO plain VALUES (5001, '2026-03-01', 'k', 1)")
    for at in (1, 4):  # a refresh commit killed; then the last one of the run
        proc = subprocess.run(command, env={**_env(), "KILL_AT": str(at)},
                              capture_output=True, text=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    done = subprocess.run(command, env={**_env(), "KILL_AT": "0"}, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    for name in TABLES:
        same(target, db, name)


def setup_config(db: Any, target: str) -> str:
    path = Path(target.removeprefix("iceberg:")).parent / "r.toml"
    path.write_text(config_text(target, {"app": (db.standby_url, TABLES)}))
    return str(path)



MARIA_SQL = """
CREATE TABLE events (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, label VARCHAR(40));
INSERT INTO events SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND
  + INTERVAL seq MICROSECOND, CONCAT('e', seq) FROM seq_1_to_3000;
CREATE TABLE changes (id INT PRIMARY KEY, changed TIMESTAMP(6) NOT NULL, state VARCHAR(10));
INSERT INTO changes SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, 'new'
  FROM seq_1_to_2000;
CREATE TABLE hits (n BIGINT NOT NULL, v VARCHAR(10));
INSERT INTO hits SELECT seq, CONCAT('h', seq) FROM seq_1_to_2000;
CREATE TABLE meta (id INT PRIMARY KEY, name VARCHAR(50), note TEXT);
INSERT INTO meta SELECT seq, CONCAT('site ', seq), '😀 ünïcode, "quoted"' FROM seq_1_to_500;
"""
MARIA_TABLES: dict[str, dict[str, object]] = {
    "events": {"method": "inserter", "cursor": "ts", "batch_rows": 700},
    "changes": {"method": "updater", "cursor": "changed", "boundary": "1m"},
    "hits": {"method": "inserter", "cursor": "n", "boundary": 10, "batch_rows": 300},
    "meta": {"method": "snapshot"},
}


def maria_same(location: str, maria_db: Any, name: str) -> int:
    from datetime import UTC

    from topoff.sources.mariadb.connect import connect

    names, have = iceberg_rows(location, "meta_src", name)
    have = sorted((tuple(v.astimezone(UTC).replace(tzinfo=None) if hasattr(v, "tzinfo")
                         and getattr(v, "tzinfo", None) else v for v in r) for r in have),
                  key=_key)
    with connect(maria_db.replica_url) as conn:
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"SELECT {', '.join(f'`{n}`' for n in names)} FROM `{name}`")
        want = sorted((tuple(r) for r in cur.fetchall()), key=_key)
    assert have == want, name
    return len(have)


def test_a_mariadb_source_into_iceberg(maria, tmp_path):
    maria.execute(MARIA_SQL)
    target = catalog_file(tmp_path)
    cfg = config(target, {"meta_src": (maria.replica_url, MARIA_TABLES)})
    runs = {r.table.split(".")[-1]: (r.status, r.rows) for r in run_once(cfg)}
    assert runs == {"events": ("ok", 3000), "changes": ("ok", 2000), "hits": ("ok", 2000),
                    "meta": ("ok", 500)}, [r.error for r in run_once(cfg)]
    maria.execute("INSERT INTO events SELECT seq, TIMESTAMP'2026-02-01 00:00:00' + INTERVAL "
                  "seq SECOND, 'late' FROM seq_3001_to_3100; "
                  "UPDATE changes SET changed = TIMESTAMP'2026-03-01 00:00:00', state = 'done' "
                  "WHERE id % 10 = 0; INSERT INTO hits VALUES (1995, 'again'), (2001, 'n'); "
                  "UPDATE meta SET name = 'x' WHERE id = 3")
    runs = {r.table.split(".")[-1]: (r.status, r.rows) for r in run_once(cfg)}
    assert runs["meta"] == ("ok", 500) and runs["changes"][1] >= 200
    assert maria_same(target, maria, "events") == 3100
    assert maria_same(target, maria, "changes") == 2000
    assert maria_same(target, maria, "hits") == 2002
    assert maria_same(target, maria, "meta") == 500
    again = {r.table.split(".")[-1]: (r.status, r.rows) for r in run_once(cfg)}
    assert again["meta"] == ("unchanged", 0)
    assert maria_same(target, maria, "hits") == 2002  # the boundary read again, not doubled
    # behind the cursors: only a ranged repull picks these up (keyed: by key; no key: the
    # range replaced whole, a deleted row gone)
    maria.execute("UPDATE events SET label = 'behind' WHERE id BETWEEN 10 AND 19; "
                  "DELETE FROM hits WHERE n BETWEEN 100 AND 109; "
                  "UPDATE hits SET v = 'behind' WHERE n BETWEEN 110 AND 119")
    assert repull(cfg, "events", "2026-01-01 00:00:10", "2026-01-01 00:00:19.000019").rows == 10
    assert repull(cfg, "hits", "100", "119").rows == 10
    bad = repull(cfg, "hits", "1.5x", None)  # the hint speaks of the cursor's kind
    assert bad.exit_code == 2 and "hint: give cursor values like 1000" in (bad.error or "")
    assert maria_same(target, maria, "events") == 3100
    assert maria_same(target, maria, "hits") == 1992
    maria.execute("DELETE FROM events WHERE id BETWEEN 20 AND 29; "
                  "UPDATE events SET label = 'rc' WHERE id = 31")
    got = reconcile(cfg, "events")
    assert (got.inserted, got.updated, got.deleted) == (0, 1, 10)
    assert maria_same(target, maria, "events") == 3090


def test_the_command_line_on_an_iceberg_target(setup, tmp_path):
    import json

    from support.cli import error_lines, run_cli

    db, target, _ = setup
    path = setup_config(db, target)
    done = run_cli("replicate", "--config", path, "--once", "--table", "plain")
    assert done.exit_code == 0, done.stderr
    shown = run_cli("replicate", "--config", path, "--status", "--json")
    assert shown.exit_code == 0, shown.stderr
    rows = {r["table"]: r for r in json.loads(shown.stdout)}
    assert rows["public.plain"]["rows"] == 5000 and rows["public.plain"]["target"] == "app.plain"
    assert rows["public.snap"]["last_refresh"] is None
    db.execute("DELETE FROM plain WHERE id = 1")
    repaired = run_cli("replicate", "--config", path, "--reconcile", "plain")
    assert repaired.exit_code == 0, repaired.stderr
    assert "0 inserted, 0 updated, 1 deleted" in repaired.stdout, repaired.stdout
    missing = tmp_path / "other.toml"
    missing.write_text(config_text("iceberg:" + str(tmp_path / "nope.toml"),
                                   {"app": (db.standby_url, TABLES)}))
    gone = run_cli("replicate", "--config", str(missing), "--once")
    assert gone.exit_code == 2
    assert "no such catalog file" in error_lines(gone)[0]


def test_expire_keeps_the_current_snapshot_and_the_state(setup):
    from datetime import timedelta

    from topoff.targets.iceberg.maintenance import expire

    db, target, cfg = setup
    run_once(cfg, ["upd"])
    for n in range(3):
        db.execute(f"UPDATE upd SET changed = '2026-04-0{n + 1}', state = 's{n}' "
                   f"WHERE id % 50 = {n}")
        run_once(cfg, ["upd"])
    before = len(iceberg_table(target, "app", "upd").metadata.snapshots)
    assert before >= 4
    [e] = [e for e in expire(target, timedelta(0)) if e.table == "app.public.upd"]
    assert (e.expired, e.kept) == (before - 1, 1)
    assert len(iceberg_table(target, "app", "upd").metadata.snapshots) == 1
    db.execute("UPDATE upd SET changed = '2026-05-01', state = 'after' WHERE id <= 5")
    assert [r.rows for r in run_once(cfg, ["upd"])] == [5]
    same(target, db, "upd")


def test_compaction_keeps_rows_and_state_then_refreshes_go_on(setup):
    from topoff.targets.iceberg.compact import compact

    db, target, cfg = setup
    run_once(cfg, ["upd", "plain"])
    for n in range(3):
        db.execute(f"UPDATE upd SET changed = '2026-04-01'::timestamptz + interval '{n} s', "
                   f"state = 's{n}' WHERE id % 50 = {n}")
        db.execute(f"INSERT INTO plain VALUES ({6000 + n}, '2026-01-01 02:00:00+00', 'x', 1)")
        run_once(cfg, ["upd", "plain"])
    tables = {"app.public.upd": iceberg_table(target, "app", "upd"),
              "app.public.plain": iceberg_table(target, "app", "plain")}
    props = {k: dict(t.properties) for k, t in tables.items()}
    files = {k: len(list(t.scan().plan_files())) for k, t in tables.items()}
    rows = {k: iceberg_rows(target, "app", k.split(".")[-1]) for k in tables}
    assert files["app.public.plain"] > 1
    done = {c.table: c for c in compact(target, ["app.public.plain", "app.upd"])}
    assert set(done) == set(tables)
    for k in tables:
        t = iceberg_table(target, "app", k.split(".")[-1])
        assert dict(t.properties) == props[k], k  # the state is untouched
        assert iceberg_rows(target, "app", k.split(".")[-1]) == rows[k], k
        assert done[k].files_before == files[k]
        assert len(list(t.scan().plan_files())) == done[k].files_after <= files[k]
    assert done["app.public.plain"].files_after < files["app.public.plain"]
    db.execute("UPDATE upd SET changed = '2026-05-01', state = 'after' WHERE id <= 5")
    db.execute("INSERT INTO plain VALUES (7000, '2026-01-01 03:00:00+00', 'y', 2)")
    assert {r.table: r.rows for r in run_once(cfg, ["upd", "plain"])} == {
        "public.upd": 5, "public.plain": 1}
    same(target, db, "upd")
    same(target, db, "plain")


@pytest.mark.slow
def test_a_value_iceberg_cannot_hold_fails_the_table_and_stops_the_reader(cluster, tmp_path):
    """A value met early in a long read: the table fails with exit 7, nothing committed,
    the source's reader thread stopped (not left copying); fixed, the next run loads it."""
    import threading

    db = new_database(cluster)
    db.execute("CREATE TABLE wide (id int PRIMARY KEY, ts timestamptz NOT NULL, d date, "
               "v text); INSERT INTO wide SELECT g, '2026-01-01'::timestamptz + g * "
               "interval '1 s', CASE WHEN g = 1 THEN 'infinity'::date ELSE '2026-01-01' END, "
               "repeat('w', 250) FROM generate_series(1, 150000) g")
    target = catalog_file(tmp_path)
    cfg = config(target, {"app": (db.standby_url, {"wide": {"method": "updater",
                                                            "cursor": "ts"}})})
    [run] = run_once(cfg)
    assert run.status == "failed" and run.exit_code == 7, run.error
    assert "does not fit its Iceberg column" in (run.error or "")
    assert not [t for t in threading.enumerate() if t.name == "topoff-replicate-reader"]
    assert iceberg_rows(target, "app", "wide")[1] == []  # made empty, nothing loaded
    db.execute("UPDATE wide SET d = '2026-01-02' WHERE id = 1")
    [run] = run_once(cfg)
    assert (run.status, run.rows) == ("ok", 150000)
    assert same(target, db, "wide") == 150000


def test_a_warehouse_on_s3(cluster, tmp_path, s3_server):
    """The warehouse in a bucket of moto's S3 server (over HTTP on loopback): built and
    refreshed through S3, nothing written locally but the catalog."""
    db = new_database(cluster)
    db.execute(SOURCE_SQL)
    bucket = s3_server.create_bucket()
    path = tmp_path / "catalog.toml"
    path.write_text(f'uri = "sqlite:///{tmp_path}/catalog.db"\n'
                    f'warehouse = "s3://{bucket}/lake"\n'
                    f'[s3]\nendpoint = "{s3_server.endpoint_url}"\nregion = "us-east-1"\n'
                    'access_key_id = "testing"\nsecret_access_key = "testing"\n')
    target = f"iceberg:{path}"
    tables = {k: TABLES[k] for k in ("upd", "snap")}
    cfg = config(target, {"app": (db.standby_url, tables)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok"]
    db.execute("UPDATE upd SET changed = '2026-06-01', state = 's3' WHERE id <= 100")
    assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 100), ("unchanged", 0)]
    assert same(target, db, "upd") == 5000 and same(target, db, "snap") == 5000
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("lake/app/upd/data/") for k in keys)
    assert not list(tmp_path.glob("**/*.parquet"))


def test_a_warehouse_that_cannot_be_written_is_exit_7(cluster, tmp_path):
    db = new_database(cluster)
    db.execute(SOURCE_SQL)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    path = tmp_path / "catalog.toml"
    path.write_text(f'uri = "sqlite:///{tmp_path}/catalog.db"\nwarehouse = "{blocker}/wh"\n')
    [run] = run_once(config(f"iceberg:{path}", {"app": (db.standby_url,
                                                        {"upd": TABLES["upd"]})}))
    assert run.status == "failed" and run.exit_code == 7, run.error


def test_upserts_by_text_and_timestamp_keys_across_partitions(cluster, tmp_path):
    """Keys of other types than integers; an update that moves a row to another day's
    partition (the old row deleted from its file, not left in its day)."""
    db = new_database(cluster)
    db.execute("CREATE TABLE codes (code text PRIMARY KEY, ts timestamptz NOT NULL, v int); "
               "INSERT INTO codes SELECT 'c' || g, '2026-01-01'::timestamptz + g * interval "
               "'1 hour', g FROM generate_series(1, 2000) g; "
               "CREATE TABLE stamps (at timestamp PRIMARY KEY, ts date NOT NULL, v text); "
               "INSERT INTO stamps SELECT '2026-01-01'::timestamp + g * interval '1 us', "
               "'2026-01-01'::date + g % 40, 'a' FROM generate_series(1, 2000) g")
    target = catalog_file(tmp_path)
    cfg = config(target, {"app": (db.standby_url, {
        "codes": {"method": "updater", "cursor": "ts"},
        "stamps": {"method": "updater", "cursor": "ts", "lookback": "100d"}})})
    assert [r.rows for r in run_once(cfg)] == [2000, 2000]
    assert len(iceberg_table(target, "app", "codes").scan().plan_files()) > 20  # by day
    db.execute("UPDATE codes SET ts = '2026-09-01', v = -v WHERE v % 9 = 0; "
               "UPDATE stamps SET ts = '2026-12-01', v = 'b' WHERE extract(microseconds "
               "FROM at)::int % 7 = 0")
    runs = run_once(cfg)
    assert [r.status for r in runs] == ["ok", "ok"] and runs[0].rows == 222
    assert same(target, db, "codes") == 2000
    assert same(target, db, "stamps") == 2000


def test_pausing_keeps_the_state_a_refresh_committed_meanwhile(setup):
    db, target, cfg = setup
    run_once(cfg, ["plain"])
    db.execute("INSERT INTO plain VALUES (9000, '2026-08-01', 'p', 3)")
    (src,) = cfg.sources
    t = next(x for x in src.tables if x.name == "plain")
    pausing = IcebergReplica(target)
    real = pausing.load

    def load_then_refresh(s: Any, tt: Any) -> Any:
        found = real(s, tt)  # read before the refresh below commits
        assert IcebergReplica(target).refresh(s, tt, Request()).rows == 1
        return found

    pausing.load = load_then_refresh  # type: ignore[method-assign]
    pausing.set_paused(src, t, True)
    props = iceberg_table(target, "app", "plain").properties
    assert props["topoff.replicate.paused"] == "true"
    assert "2026-08-01" in props["topoff.replicate.state"]  # the refresh's watermark
    assert props["topoff.replicate.rows-total"] == "5001"


def test_a_namespace_another_run_makes_at_the_same_moment(setup, monkeypatch):
    """Two runs (two configs) make a namespace at once: the one whose insert loses
    refreshes its table all the same (it was an internal error, exit 70)."""
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy.exc import IntegrityError

    db, target, cfg = setup
    real = SqlCatalog.create_namespace

    def raced(self: Any, namespace: Any, properties: Any = None) -> None:
        real(self, namespace)  # the other run's insert, just before this run's
        raise IntegrityError("INSERT INTO iceberg_namespace_properties", {},
                             Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(SqlCatalog, "create_namespace", raced)
    runs = run_once(cfg, ["plain"])
    assert [(r.status, r.error) for r in runs] == [("ok", None)]
    assert same(target, db, "plain") == 5000


@pytest.mark.slow
def test_sigterm_stops_a_reconcile_like_ctrl_c(cluster, tmp_path):
    """SIGTERM of a real ``--reconcile`` is exit 130: nothing committed, its throwaway
    DuckDB directory removed from $TMPDIR (it was killed by the signal, the directory left)."""
    db = new_database(cluster)
    db.execute("CREATE TABLE slow (id int PRIMARY KEY, ts timestamptz NOT NULL);"
               "INSERT INTO slow SELECT g, '2026-01-01' FROM generate_series(1, 3) g")
    target = catalog_file(tmp_path)
    slow: dict[str, dict[str, object]] = {"slow": {"method": "inserter", "cursor": "ts"}}
    run_once(config(target, {"app": (db.standby_url, slow)}))
    db.execute("DELETE FROM slow WHERE id = 1")
    snapshots = len(iceberg_table(target, "app", "slow").metadata.snapshots)
    slow["slow"]["where"] = "pg_sleep(0.5) IS NOT NULL"  # each row read takes 0.5 s
    path = tmp_path / "slow.toml"
    path.write_text(config_text(target, {"app": (db.standby_url, slow)}))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "topoff", "replicate", "--config",
                             str(path), "--reconcile", "slow"],
                            env={**_env(), "TMPDIR": str(scratch)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # a loaded machine starts Python slowly
    # until the comparison's directory is made (not Python's probe of $TMPDIR, a file
    # of eight random characters that gettempdir() writes and removes at once)
    while not list(scratch.glob("topoff-reconcile-*")) and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.05)
    assert list(scratch.glob("topoff-reconcile-*"))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.startswith("error: interrupted\nhint: "), err
    assert list(scratch.iterdir()) == []
    assert len(iceberg_table(target, "app", "slow").metadata.snapshots) == snapshots


def test_sigterm_stops_a_run_with_jobs_before_its_tables_commit(cluster, tmp_path):
    """SIGTERM of ``--once --jobs 2``: the threads refreshing tables stop too, committing
    nothing (they went on to read and commit their tables after "interrupted")."""
    db = new_database(cluster)
    slow: dict[str, dict[str, object]] = {}
    for n in ("a", "b"):
        db.execute(f"CREATE TABLE {n} (id int PRIMARY KEY, ts timestamptz NOT NULL);"
                   f"INSERT INTO {n} SELECT g, '2026-01-01' FROM generate_series(1, 12) g")
        # each row read takes 0.5 s: 6 s a table, time enough to see both tables made on
        # a loaded machine and signal the run before it could commit
        slow[n] = {"method": "inserter", "cursor": "ts",
                   "where": "pg_sleep(0.5) IS NOT NULL"}
    target = catalog_file(tmp_path)
    path = tmp_path / "slow.toml"
    path.write_text(config_text(target, {"app": (db.standby_url, slow)}))
    proc = subprocess.Popen([sys.executable, "-m", "topoff", "replicate", "--config",
                             str(path), "--once", "--jobs", "2"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # a loaded machine starts Python slowly
    while time.monotonic() < deadline and proc.poll() is None:  # both tables made, then read
        try:
            iceberg_table(target, "app", "a"), iceberg_table(target, "app", "b")
            break
        except NoSuchTableError:
            time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    for n in ("a", "b"):
        assert iceberg_rows(target, "app", n)[1] == [], n
