"""``topoff replicate`` end to end into both targets, from the real standby: each method
with 10,000 rows, refreshes, column changes, repulls, late commits, ties, TRUNCATE, two
sources into one target, pause, resync and per-table locks."""

from __future__ import annotations

import pytest

from support.replicate import config, hashes, new_database, new_target, query, stored
from topoff.errors import ConfigError, IntegrityError
from topoff.replicate.engine import repull, resolve, resync, run_once, set_paused
from topoff.replicate.store import StateStore
from topoff.targets.postgres.target import lock_key

ENGINES = ["duckdb", "postgresql"]

SOURCE_SQL = """
CREATE TABLE plain (id int PRIMARY KEY, ts timestamptz NOT NULL, v text, n numeric(12,2));
INSERT INTO plain SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', 'v' || g, g / 7.0
  FROM generate_series(1, 10000) g;
CREATE INDEX plain_v ON plain (v);
CREATE INDEX plain_expr ON plain (lower(v));
CREATE INDEX plain_part ON plain (n) WHERE n > 10;
CREATE TABLE nokey (ts timestamptz, site int, payload text);
INSERT INTO nokey SELECT '2026-01-01'::timestamptz + g * interval '1 min', g % 5, 'p' || g
  FROM generate_series(1, 10000) g;
CREATE TABLE upd (id bigint PRIMARY KEY, changed timestamptz NOT NULL, state text);
INSERT INTO upd SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', 'new'
  FROM generate_series(1, 10000) g;
CREATE TABLE snap (id int PRIMARY KEY, label text, secret text);
INSERT INTO snap SELECT g, 'l' || g, 's' FROM generate_series(1, 10000) g;
CREATE TABLE empty (id int PRIMARY KEY, ts timestamptz NOT NULL);
CREATE TABLE "Mixed Case" ("Order" int PRIMARY KEY, "select" timestamptz NOT NULL,
  "Group" text);
INSERT INTO "Mixed Case" SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', 'g'
  FROM generate_series(1, 10000) g;
CREATE VIEW recent AS SELECT id, ts, v FROM plain WHERE id % 2 = 0;
"""

TABLES = {
    "plain": {"method": "inserter", "cursor": "ts", "batch_rows": 3000},
    "nokey": {"method": "inserter", "cursor": "ts", "batch_rows": 3000},
    "upd": {"method": "updater", "cursor": "changed"},
    "snap": {"method": "snapshot", "exclude": ["secret"]},
    "empty": {"method": "inserter", "cursor": "ts"},
    "Mixed Case": {"method": "updater", "cursor": "select"},
    "recent": {"method": "inserter", "cursor": "ts", "key": ["id"]},
}


@pytest.fixture(scope="module")
def source(cluster):
    db = new_database(cluster)
    db.execute(SOURCE_SQL)
    return db


@pytest.fixture(scope="module", params=ENGINES)
def built(request, cluster, source, tmp_path_factory):
    """A target holding every table of TABLES after one run."""
    url = new_target(request.param, cluster, tmp_path_factory.mktemp("rep"))
    cfg = config(url, {"app": (source.standby_url, TABLES)})
    runs = run_once(cfg, jobs=2)
    return request.param, url, cfg, runs


def equal(url, source, table, relation=None):
    mine, theirs = hashes(url, source.primary_url, "app", table, relation)
    assert mine == theirs, table


def test_every_method_builds_its_table(built, source):
    _, url, _, runs = built
    assert {r.table: (r.status, r.rows) for r in runs} == {
        "public.plain": ("ok", 10000), "public.nokey": ("ok", 10000),
        "public.upd": ("ok", 10000), "public.snap": ("ok", 10000),
        "public.empty": ("ok", 0), "public.Mixed Case": ("ok", 10000),
        "public.recent": ("ok", 5000)}
    assert all(r.error is None and r.target.schema == "app" for r in runs)
    for t in ("public.plain", "public.nokey", "public.upd", "public.empty",
              "public.Mixed Case", "public.recent"):
        equal(url, source, t)
    # the excluded column is absent, the rest equal
    d = stored(url, "app", "public.snap")
    assert [c.name for c in d.columns] == ["id", "label"]
    assert query(url, "SELECT count(*), count(DISTINCT label) FROM app.snap") == [(10000, 10000)]


def test_keys_and_plain_indexes_follow_the_capabilities(built):
    kind, url, _, _ = built
    if kind == "duckdb":  # no ART index: merges join on the key (docs/replicate.md)
        assert query(url, "SELECT count(*) FROM duckdb_indexes()") == [(0,)]
        return
    rows = query(url, "SELECT c.relname, i.indisprimary, pg_get_indexdef(i.indexrelid) FROM "
                 "pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE "
                 "i.indrelid = 'app.plain'::regclass ORDER BY 1")
    defs = sorted(r[2].split(" USING ")[1] for r in rows)
    assert defs == ["btree (id)", "btree (ts)", "btree (v)"]  # no expression, no partial
    assert [r[1] for r in rows].count(True) == 1
    assert query(url, "SELECT count(*) FROM pg_index WHERE indisprimary AND "
                 "indrelid = 'app.\"Mixed Case\"'::regclass") == [(1,)]


def test_a_second_run_reads_only_the_boundary_and_snapshot_is_unchanged(built, source):
    _, url, cfg, _ = built
    runs = {r.table: r for r in run_once(cfg, ["snap", "app.empty", "app.public.upd"])}
    assert runs["public.snap"].status == "unchanged" and runs["public.snap"].rows == 0
    assert runs["public.empty"].rows == 0
    assert runs["public.upd"].rows == 0  # nothing committed since: no boundary re-read
    equal(url, source, "public.upd")


def test_names_resolve_or_list_the_candidates(built):
    _, _, cfg, _ = built
    assert resolve(cfg, "app.public.plain")[1].name == "plain"
    assert resolve(cfg, "app.plain")[1].name == "plain"
    with pytest.raises(ConfigError) as info:
        resolve(cfg, "nope")
    assert "app.public.plain" in (info.value.hint or "")


@pytest.fixture(params=ENGINES)
def fresh(request, cluster, tmp_path):
    """An empty target and a fresh source database."""
    return request.param, new_target(request.param, cluster, tmp_path), new_database(cluster)


def test_new_rows_and_updated_ranges_arrive_value_by_value(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO ev SELECT g, now() - interval '2 days' + g * interval '1 s', 'a' "
               "FROM generate_series(1, 10000) g; "
               "CREATE TABLE log (ts timestamptz NOT NULL, v int); "
               "INSERT INTO log SELECT now() - interval '2 days' + g * interval '1 s', g "
               "FROM generate_series(1, 10000) g")
    cfg = config(url, {"app": (db.standby_url, {
        "ev": {"method": "updater", "cursor": "ts", "batch_rows": 700},
        "log": {"method": "inserter", "cursor": "ts", "batch_rows": 700}})})
    assert [r.rows for r in run_once(cfg)] == [10000, 10000]
    db.execute("INSERT INTO ev SELECT g, now() - interval '1 day' + g * interval '1 s', 'b' "
               "FROM generate_series(10001, 20000) g; "
               "UPDATE ev SET v = 'changed', ts = now() WHERE id BETWEEN 500 AND 1500; "
               "INSERT INTO log SELECT now() - interval '1 day' + g * interval '1 s', g "
               "FROM generate_series(10001, 20000) g")
    runs = run_once(cfg)
    assert all(r.status == "ok" for r in runs)
    equal(url, db, "public.ev")
    equal(url, db, "public.log")
    run_once(cfg)  # again: the boundary re-read doubles nothing
    equal(url, db, "public.log")
    assert query(url, "SELECT count(*) FROM app.log") == [(20000,)]


def test_filtered_columns_and_row_condition(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL, site int, "
               "pii text); INSERT INTO t SELECT g, '2026-01-01'::timestamptz + g * "
               "interval '1 s', g % 4, 'x' FROM generate_series(1, 10000) g")
    cfg = config(url, {"app": (db.standby_url, {"t": {
        "method": "inserter", "cursor": "ts", "columns": ["id", "ts", "site"],
        "where": "site IN (1, 3)"}})})
    assert run_once(cfg)[0].rows == 5000
    assert [c.name for c in stored(url, "app", "public.t").columns] == ["id", "ts", "site"]
    assert query(url, "SELECT count(*), min(site), max(site) FROM app.t") == [(5000, 1, 3)]


def test_ten_thousand_rows_on_one_timestamp_progress_in_batches_of_500(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE tie (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "INSERT INTO tie SELECT g, '2026-03-01 12:00' FROM generate_series(1, 10000) g")
    cfg = config(url, {"app": (db.standby_url, {"tie": {
        "method": "inserter", "cursor": "ts", "batch_rows": 500}})})
    assert run_once(cfg)[0].rows == 10000
    equal(url, db, "public.tie")


def test_a_long_transaction_committing_after_a_refresh_is_not_lost(fresh):
    import psycopg

    _, url, db = fresh
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "INSERT INTO ev SELECT g, now() - interval '1 hour' + g * interval '1 s' "
               "FROM generate_series(1, 100) g")
    cfg = config(url, {"app": (db.standby_url, {"ev": {"method": "inserter", "cursor": "ts"}})})
    late = psycopg.connect(db.primary_url)
    late.execute("INSERT INTO ev VALUES (1000, now() - interval '30 minutes')")
    db.execute("INSERT INTO ev VALUES (101, now())")
    assert run_once(cfg)[0].rows == 101
    late.commit()
    late.close()
    db.sync()
    assert run_once(cfg)[0].status == "ok"
    assert query(url, "SELECT count(*) FROM app.ev WHERE id = 1000") == [(1,)]
    equal(url, db, "public.ev")


def test_truncate_of_a_snapshot_source_is_replicated(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE s (id int PRIMARY KEY, v text); "
               "INSERT INTO s SELECT g, 'v' FROM generate_series(1, 100) g")
    cfg = config(url, {"app": (db.standby_url, {"s": {"method": "snapshot"}})})
    run_once(cfg)
    db.execute("TRUNCATE s; INSERT INTO s VALUES (1, 'v')")  # the same first row
    assert (run_once(cfg)[0].status, run_once(cfg)[0].status) == ("ok", "unchanged")
    assert query(url, "SELECT count(*) FROM app.s") == [(1,)]
    db.execute("TRUNCATE s")
    assert run_once(cfg)[0].status == "ok"
    assert query(url, "SELECT count(*) FROM app.s") == [(0,)]


def test_two_sources_into_one_target(fresh, cluster):
    _, url, db = fresh
    other = new_database(cluster)
    for d in (db, other):
        d.execute("CREATE TABLE site (id int PRIMARY KEY, name text); "
                  "INSERT INTO site SELECT g, 'n' FROM generate_series(1, 10) g")
    cfg = config(url, {"matomo": (db.standby_url, {"site": {"method": "snapshot"}}),
                       "analytics_meta": (other.standby_url, {"site": {"method": "snapshot"}})})
    runs = run_once(cfg)
    assert sorted(str(r.target) for r in runs) == ["analytics_meta.site", "matomo.site"]
    with pytest.raises(ConfigError):
        resolve(cfg, "site")
    assert resolve(cfg, "matomo.site")[0].name == "matomo"


def test_column_changes(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL, a text, b text, "
               "n int); INSERT INTO t SELECT g, now() - interval '1 hour' + g * interval '1 s',"
               " 'a', 'b', g FROM generate_series(1, 100) g; "
               "CREATE TABLE s (id int PRIMARY KEY, n int, gone text); "
               "INSERT INTO s SELECT g, g, 'x' FROM generate_series(1, 10) g")
    cfg = config(url, {"app": (db.standby_url, {
        "t": {"method": "updater", "cursor": "ts"},
        "s": {"method": "snapshot", "drop_columns": True}})})
    run_once(cfg)
    db.execute("ALTER TABLE t ADD COLUMN c int; ALTER TABLE t DROP COLUMN b; "
               "ALTER TABLE t ALTER COLUMN n TYPE bigint; "
               "INSERT INTO t VALUES (101, now(), 'a', 1, 7); "
               "ALTER TABLE s DROP COLUMN gone; ALTER TABLE s ALTER COLUMN n TYPE text")
    runs = run_once(cfg)
    assert [r.status for r in runs] == ["ok", "ok"], runs
    names = [c.name for c in stored(url, "app", "public.t").columns]
    assert names == ["id", "ts", "a", "n", "c", "b"]  # b kept
    assert query(url, "SELECT c, b FROM app.t WHERE id = 101") == [(7, None)]
    # (the ALTER ... TYPE rewrote the source table: every row has a new xmin, so the
    # lookback window was read again and b is NULL in every row written since)
    assert [c.name for c in stored(url, "app", "public.s").columns] == ["id", "n"]
    assert query(url, "SELECT n FROM app.s WHERE id = 3") == [("3",)]
    # a type the replica cannot convert: a clear error naming --resync, nothing changed
    # ('a' in the replica is no integer)
    db.execute("ALTER TABLE t ALTER COLUMN a TYPE int USING 0; "
               "UPDATE t SET a = 5, ts = now() WHERE id = 1")
    (run,) = run_once(cfg, ["t"])
    assert run.status == "failed" and "--resync" in (run.error or "") and run.exit_code == 7
    assert resync(cfg, "t").status == "ok"
    equal(url, db, "public.t")


def test_repull_all_and_a_range(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO t SELECT g, '2026-01-01'::timestamptz + g * interval '1 hour', 'a'"
               " FROM generate_series(1, 1000) g; "
               "CREATE TABLE k (ts timestamptz NOT NULL, v text); "
               "INSERT INTO k SELECT '2026-01-01'::timestamptz + g * interval '1 hour', 'a' "
               "FROM generate_series(1, 1000) g")
    cfg = config(url, {"app": (db.standby_url, {"t": {"method": "updater", "cursor": "ts"},
                                                "k": {"method": "inserter", "cursor": "ts"}})})
    run_once(cfg)
    # changed behind the watermark without moving the cursor: only a repull finds it
    db.execute("UPDATE t SET v = 'b' WHERE id <= 100; UPDATE k SET v = 'b' WHERE "
               "ts < '2026-01-03'")
    r = repull(cfg, "t", "2026-01-01 00:00", "2026-01-02 00:00")
    assert (r.status, r.rows) == ("ok", 24)
    assert query(url, "SELECT count(*) FROM app.t WHERE v = 'b'") == [(24,)]
    r = repull(cfg, "k", "2026-01-01", "2026-01-03")
    assert r.rows == 48
    equal(url, db, "public.k")
    assert repull(cfg, "t").rows == 1000
    equal(url, db, "public.t")
    r = repull(cfg, "t", "not a time")
    assert r.status == "failed" and r.exit_code == ConfigError.exit_code
    assert "--from/--to" in (r.error or "")
    # bounds the wrong way round: said so (it moved 0 rows and said ok)
    r = repull(cfg, "t", "2026-01-03 00:00", "2026-01-02 00:00")
    assert (r.status, r.exit_code) == ("failed", 2) and "is after --to" in (r.error or "")
    db.execute("CREATE TABLE n (id bigint PRIMARY KEY); INSERT INTO n VALUES (1)")
    numbered = config(url, {"app": (db.standby_url, {"n": {
        "method": "inserter", "cursor": "id", "boundary": 1, "lookback": 1}})})
    run_once(numbered)
    r = repull(numbered, "n", "1.5")  # the hint speaks of the cursor's kind
    assert r.exit_code == 2 and "hint: give cursor values like 1000" in (r.error or "")


def test_pause_resume_and_resync_touch_one_table(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY "
               "KEY, v text); INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1, 'x')")
    cfg = config(url, {"app": (db.standby_url, {"a": {"method": "snapshot"},
                                                "b": {"method": "snapshot"}})})
    run_once(cfg)
    set_paused(cfg, "a", True)
    db.execute("INSERT INTO a VALUES (2, 'y'); INSERT INTO b VALUES (2, 'y')")
    assert [r.status for r in run_once(cfg)] == ["paused", "ok"]
    assert query(url, "SELECT count(*) FROM app.a") == [(1,)]
    set_paused(cfg, "a", False)
    assert [r.status for r in run_once(cfg)] == ["ok", "unchanged"]
    before = query(url, "SELECT v FROM app.b ORDER BY id")
    assert resync(cfg, "a").rows == 2
    assert query(url, "SELECT v FROM app.b ORDER BY id") == before


def test_a_table_locked_by_another_run_is_skipped(fresh, tmp_path):
    import subprocess
    import sys

    import psycopg

    kind, url, db = fresh
    db.execute("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)")
    cfg = config(url, {"app": (db.standby_url, {"a": {"method": "snapshot"},
                                                "b": {"method": "snapshot"}})})
    run_once(cfg)
    if kind == "duckdb":  # another process has the file open: every table is skipped
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
             "print('open', flush=True); time.sleep(60)", url],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "open\n"
            runs = run_once(cfg)
            assert [r.status for r in runs] == ["locked", "locked"]
            assert "lock" in (runs[0].error or "")
        finally:
            holder.kill()
            holder.wait()
        assert [r.status for r in run_once(cfg)] == ["unchanged", "unchanged"]
        return
    with psycopg.connect(url) as other:  # a run holding a's lock in its transaction
        other.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("replicate:app:public.a")])
        assert [r.status for r in run_once(cfg)] == ["locked", "unchanged"]
        # asked for by name, a repull or resync that did not happen is exit 7, not 0
        from support.cli import error_lines, run_cli
        from support.replicate import config_text

        path = tmp_path / "r.toml"
        path.write_text(config_text(url, {"app": (db.standby_url, {
            "a": {"method": "snapshot"}, "b": {"method": "snapshot"}})}))
        for action in ("--repull", "--resync"):
            out = run_cli("replicate", "--config", str(path), action, "a")
            assert out.exit_code == 7, out.stderr
            assert "another run is refreshing it" in error_lines(out)[0]
    assert [r.status for r in run_once(cfg)] == ["unchanged", "unchanged"]


def test_a_tampered_state_row_is_an_integrity_error(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE a (id int PRIMARY KEY)")
    cfg = config(url, {"app": (db.standby_url, {"a": {"method": "snapshot"}})})
    run_once(cfg)
    query(url, "UPDATE topoff.replicate_tables SET state = '{\"v\": 1, \"xmin\": -1}'")
    (run,) = run_once(cfg)
    assert run.status == "failed" and run.exit_code == IntegrityError.exit_code
    from support.replicate import target
    with target(url) as engine, pytest.raises(IntegrityError):
        StateStore(engine).all()  # type: ignore[arg-type]


def test_privileges_survive_a_snapshot_refresh_and_readers_see_whole_tables(cluster, tmp_path):
    import psycopg

    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE TABLE s (id int PRIMARY KEY, v text); "
               "INSERT INTO s SELECT g, 'a' FROM generate_series(1, 10000) g")
    cfg = config(url, {"app": (db.standby_url, {"s": {"method": "snapshot"}})})
    run_once(cfg)
    role = f"reader_{db.name}"
    query(url, f'CREATE ROLE "{role}"; GRANT USAGE ON SCHEMA app TO "{role}"; '
               f'GRANT SELECT ON app.s TO "{role}"')
    db.execute("UPDATE s SET v = 'b' WHERE id <= 5000")
    with psycopg.connect(url) as reader:  # a reader in the middle of the refresh's life
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert reader.execute("SELECT count(*) FROM app.s").fetchone() == (10000,)
        assert run_once(cfg)[0].status == "ok"
        assert reader.execute("SELECT count(*), count(*) FILTER (WHERE v = 'b') FROM app.s"
                              ).fetchone() == (10000, 0)  # its snapshot: the old rows, whole
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*), count(*) FILTER (WHERE v = 'b') FROM app.s"
                              ).fetchone() == (10000, 5000)
    assert query(url, f"SELECT has_table_privilege('{role}', 'app.s', 'SELECT')") == [(True,)]
    equal(url, db, "public.s")


def test_an_enum_that_gains_a_label_keeps_refreshing(fresh):
    _, url, db = fresh
    db.execute("CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE TABLE t (id int PRIMARY KEY, "
               "ts timestamptz NOT NULL, m mood); INSERT INTO t VALUES (1, now(), 'ok')")
    cfg = config(url, {"app": (db.standby_url, {"t": {"method": "updater", "cursor": "ts"}})})
    run_once(cfg)
    db.execute("ALTER TYPE mood ADD VALUE 'happy'")
    db.execute("INSERT INTO t VALUES (2, now(), 'happy')")
    (run,) = run_once(cfg)
    assert run.status == "ok", run.error
    assert query(url, "SELECT id, m::text FROM app.t ORDER BY id") == [(1, "ok"), (2, "happy")]


def test_a_tampered_definition_is_an_integrity_error(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE a (id int PRIMARY KEY, ts timestamptz NOT NULL)")
    cfg = config(url, {"app": (db.standby_url, {"a": {"method": "updater", "cursor": "ts"}})})
    run_once(cfg)
    for bad in ('{"method": "updater", "columns": [{"name": "id", "type": "int); DROP"}], '
                '"primary_key": ["id"], "cursor": "ts", "cursor_type": null, '
                '"cursor_timezone": ""}', "not json", '{"method": 1}'):
        query(url, "UPDATE topoff.replicate_tables SET definition = "
                   f"'{bad.replace(chr(39), chr(39) * 2)}'")
        (run,) = run_once(cfg)
        assert run.status == "failed" and run.exit_code == IntegrityError.exit_code, run.error


def test_a_primary_source_is_refused_unless_allowed(fresh):
    from topoff.errors import SafetyError

    _, url, db = fresh
    db.execute("CREATE TABLE a (id int PRIMARY KEY)")
    tables = {"a": {"method": "snapshot"}}
    (run,) = run_once(config(url, {"app": (db.primary_url, tables)}))
    assert run.status == "failed" and run.exit_code == SafetyError.exit_code
    # replicate has no --source or --allow-primary: the hint names its config's keys
    assert "allow_primary = true" in (run.error or "") and "--" not in (run.error or "")
    (run,) = run_once(config(url, {"app": (db.primary_url, tables)}, allow_primary=True))
    assert run.status == "ok"


def test_the_repeated_hour_of_a_fall_back_is_read_again(fresh):
    _, url, db = fresh
    # Europe/Paris turns its clocks back at 03:00 on 2026-10-25: 02:00-03:00 happens twice
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL); "
               "INSERT INTO t SELECT g, '2026-10-25 01:00'::timestamp + g * interval '1 min' "
               "FROM generate_series(1, 90) g")  # up to 02:30, the first pass
    cfg = config(url, {"app": (db.standby_url, {"t": {
        "method": "inserter", "cursor": "ts", "boundary": "10m", "lookback": "10m",
        "cursor_timezone": "Europe/Paris"}})})
    assert run_once(cfg)[0].rows == 90
    # the second pass of the hour: rows written at 02:05..02:15 again, below watermark -
    # boundary (02:20) although they are new
    db.execute("INSERT INTO t SELECT 1000 + g, '2026-10-25 02:04'::timestamp + "
               "g * interval '1 min' FROM generate_series(1, 11) g")
    assert run_once(cfg)[0].status == "ok"
    equal(url, db, "public.t")


def test_a_snapshot_column_whose_type_changes_but_hashes_alike_is_copied_again(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE s (id int PRIMARY KEY, n int); "
               "INSERT INTO s SELECT g, g FROM generate_series(1, 100) g")
    cfg = config(url, {"app": (db.standby_url, {"s": {"method": "snapshot"}})})
    run_once(cfg)
    db.execute("ALTER TABLE s ALTER COLUMN n TYPE bigint")  # the same text, the same hash
    (run,) = run_once(cfg)
    assert (run.status, run.rows) == ("ok", 100)
    assert query(url, "SELECT count(n), sum(n) FROM app.s") == [(100, 5050)]
    assert run_once(cfg)[0].status == "unchanged"


def test_a_view_whose_key_is_not_unique_is_a_config_error(cluster, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE TABLE t (id int, ts timestamptz NOT NULL); INSERT INTO t VALUES "
               "(1, now()), (1, now()); CREATE VIEW v AS SELECT id, ts FROM t")
    cfg = config(url, {"app": (db.standby_url, {"v": {"method": "inserter", "cursor": "ts",
                                                      "key": ["id"]}})})
    (run,) = run_once(cfg)
    assert run.status == "failed" and run.exit_code == ConfigError.exit_code, run.error
    assert "not unique" in (run.error or "")
    assert query(url, "SELECT to_regclass('app.v') IS NULL") == [(True,)]  # nothing kept


def test_a_value_duckdb_cannot_type_widens_the_column_during_a_refresh(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL, n numeric(10,2));"
               " INSERT INTO t SELECT g, now(), g FROM generate_series(1, 10) g")
    cfg = config(url, {"app": (db.standby_url, {"t": {"method": "updater", "cursor": "ts"}})})
    run_once(cfg)
    db.execute("INSERT INTO t VALUES (11, now(), 'NaN'); UPDATE t SET n = 2.5, ts = now() "
               "WHERE id = 1")
    (run,) = run_once(cfg)
    assert run.status == "ok", run.error
    equal(url, db, "public.t")


def test_an_inserter_row_inserted_again_under_its_key_replaces_itself(fresh):
    """New rows above the watermark go straight into the table on PostgreSQL; one whose key
    is already there (deleted and inserted again with a later cursor) still replaces it."""
    _, url, db = fresh
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO ev SELECT g, now() - interval '1 day' + g * interval '1 s', 'a' "
               "FROM generate_series(1, 5000) g")
    cfg = config(url, {"app": (db.standby_url, {"ev": {
        "method": "inserter", "cursor": "ts", "batch_rows": 700}})})
    assert run_once(cfg)[0].rows == 5000
    db.execute("INSERT INTO ev SELECT g, now() - interval '2 hours' + g * interval '1 s', 'b' "
               "FROM generate_series(5001, 7000) g")
    (run,) = run_once(cfg)
    assert (run.status, run.rows) == ("ok", 2000)  # the new rows, no boundary re-read
    equal(url, db, "public.ev")
    db.execute("DELETE FROM ev WHERE id IN (3, 6000); INSERT INTO ev VALUES "
               "(3, now() - interval '1 minute', 'again'), (6000, now(), 'again'), "
               "(7001, now(), 'c')")
    (run,) = run_once(cfg)
    assert run.status == "ok", run.error
    equal(url, db, "public.ev")
    assert query(url, "SELECT count(*) FROM app.ev") == [(7001,)]
    assert query(url, "SELECT id FROM app.ev WHERE v = 'again' ORDER BY id") == [(3,), (6000,)]


def test_a_table_that_lost_its_key_index_still_refreshes(fresh):
    """ON CONFLICT needs the key index; without it the refresh runs the delete-join way."""
    engine, url, db = fresh
    db.execute("CREATE TABLE u (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO u SELECT g, now() - interval '1 hour', 'a' "
               "FROM generate_series(1, 100) g")
    cfg = config(url, {"app": (db.standby_url, {"u": {"method": "updater", "cursor": "ts"}})})
    run_once(cfg)
    if engine == "postgresql":
        query(url, "ALTER TABLE app.u DROP CONSTRAINT u_pkey")
        assert query(url, "SELECT count(*) FROM pg_index WHERE indisprimary AND "
                     "indrelid = 'app.u'::regclass") == [(0,)]
    db.execute("UPDATE u SET v = 'b', ts = now() WHERE id <= 10; "
               "INSERT INTO u VALUES (101, now(), 'c')")
    (run,) = run_once(cfg)
    assert run.status == "ok", run.error
    equal(url, db, "public.u")
