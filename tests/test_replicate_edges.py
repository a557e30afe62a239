"""``topoff replicate`` at the edges of cursor and key values, into both SQL targets:
values a watermark cannot move past, keys equal by type but not by text."""

from __future__ import annotations

import pytest

from support.replicate import config, new_database, new_target, query
from topoff.errors import TargetError
from topoff.replicate.engine import resync, run_once
from topoff.replicate.operate import reconcile

ENGINES = ["duckdb", "postgresql"]


@pytest.fixture
def source(cluster):
    return new_database(cluster)


@pytest.mark.parametrize("kind", ENGINES)
def test_a_cursor_nothing_can_follow_stops_the_table_instead_of_new_rows(source, cluster,
                                                                          tmp_path, kind):
    source.execute("""
        CREATE TABLE t (id int PRIMARY KEY, ts timestamptz);
        INSERT INTO t VALUES (1, '2026-01-01'), (2, 'infinity');
        CREATE TABLE d (id int PRIMARY KEY, c date);
        INSERT INTO d VALUES (1, '2026-01-01'), (2, 'infinity');
        CREATE TABLE n (id int PRIMARY KEY, c numeric(10,2));
        INSERT INTO n VALUES (1, 1.5), (2, 'NaN');""")
    url = new_target(kind, cluster, tmp_path)
    tables = {"t": {"method": "updater", "cursor": "ts"},
              "d": {"method": "inserter", "cursor": "c"},
              "n": {"method": "inserter", "cursor": "c", "boundary": 0, "lookback": 5}}
    runs = run_once(config(url, {"app": (source.standby_url, tables)}, allow_primary=True))
    # the watermark would be infinity (NaN): every later row would be left out, exit 0
    assert {r.table: r.status for r in runs} == dict.fromkeys(
        ("public.t", "public.d", "public.n"), "failed")
    assert {r.exit_code for r in runs} == {3}
    err = {r.table: r.error or "" for r in runs}
    assert "holds infinity" in err["public.t"] and "isfinite(ts)" in err["public.t"]
    assert "holds NaN" in err["public.n"] and "c <> 'NaN'" in err["public.n"]
    # the hint's row condition lets the table go on, and new rows arrive
    tables["t"]["where"] = "isfinite(ts)"
    tables["d"]["where"] = "isfinite(c)"
    tables["n"]["where"] = "c <> 'NaN'"
    cfg = config(url, {"app": (source.standby_url, tables)}, allow_primary=True)
    assert {r.status for r in run_once(cfg)} == {"ok"}
    source.execute("INSERT INTO t VALUES (3, now()); INSERT INTO d VALUES (3, 'today'); "
                   "INSERT INTO n VALUES (3, 2.5)")
    assert [r.rows for r in run_once(cfg)] == [1, 1, 1]
    for name in ("t", "d", "n"):
        assert query(url, f"SELECT id FROM app.{name} ORDER BY id") == [(1,), (3,)]


def test_a_key_equal_to_the_one_held_but_written_otherwise_replaces_it(source, cluster,
                                                                      tmp_path):
    source.execute("""
        CREATE TABLE g (id float8 PRIMARY KEY);
        INSERT INTO g VALUES (0), (2);
        CREATE TABLE n (id numeric PRIMARY KEY, ts timestamptz NOT NULL, v text);
        INSERT INTO n VALUES (1, '2026-01-01', 'a'), (2, '2026-01-01', 'b');""")
    url = new_target("postgresql", cluster, tmp_path)  # the merge by ON CONFLICT
    cfg = config(url, {"app": (source.standby_url, {
        "g": {"method": "snapshot"}, "n": {"method": "updater", "cursor": "ts"}})})
    assert {r.status for r in run_once(cfg)} == {"ok"}
    # an equal key written otherwise (-0 for 0, 2.00 for 2): the replica takes the source's
    source.execute("""
        DELETE FROM g WHERE id = 0; INSERT INTO g VALUES ('-0');
        DELETE FROM n WHERE id = 2; INSERT INTO n VALUES (2.00, '2026-01-02', 'b');""")
    assert [r.rows for r in run_once(cfg)] == [1, 1]
    assert query(url, "SELECT CAST(id AS text) FROM app.g ORDER BY id") == [("-0",), ("2",)]
    assert query(url, "SELECT CAST(id AS text), v FROM app.n ORDER BY id") == [
        ("1", "a"), ("2.00", "b")]
    assert {r.status for r in run_once(cfg)} == {"unchanged", "ok"}


@pytest.mark.parametrize("kind", ENGINES)
def test_a_primary_key_changed_on_the_source_is_followed_or_refused(source, cluster,
                                                                   tmp_path, kind):
    source.execute("""
        CREATE TABLE k (id int PRIMARY KEY, id2 int NOT NULL, ts timestamptz NOT NULL, v text);
        INSERT INTO k SELECT g, g, '2026-01-01', 'x' FROM generate_series(1, 5) g;""")
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {"k": {"method": "updater",
                                                           "cursor": "ts"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    source.execute("""
        ALTER TABLE k DROP CONSTRAINT k_pkey; ALTER TABLE k ADD PRIMARY KEY (id, id2);
        INSERT INTO k VALUES (1, 2, '2026-01-02', 'other');""")
    (run,) = run_once(cfg)
    want = [(1, 1, "x"), (1, 2, "other")]
    if kind == "postgresql":  # its key index is on (id): merged by it, (1, 1) was replaced
        assert run.status == "failed" and run.exit_code == 7
        assert "key changed from (id) to (id, id2)" in (run.error or "")
        assert "--resync" in (run.error or "")
        assert query(url, "SELECT id, id2, v FROM app.k WHERE id = 1") == [(1, 1, "x")]
        with pytest.raises(TargetError, match="key changed"):
            reconcile(cfg, "k")
        resync(cfg, "k")
    else:  # no key index: the merges join on the new key
        assert (run.status, run.rows) == ("ok", 1)
    assert query(url, "SELECT id, id2, v FROM app.k WHERE id = 1 ORDER BY id2") == want
    assert run_once(cfg)[0].status == "ok"


def test_a_primary_key_changed_on_the_source_fails_an_iceberg_table(source, tmp_path):
    source.execute("""
        CREATE TABLE k (id int PRIMARY KEY, id2 int NOT NULL, ts timestamptz NOT NULL);
        INSERT INTO k SELECT g, g, '2026-01-01' FROM generate_series(1, 5) g;""")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                       'warehouse = "warehouse"\nnamespace = "unused"\n')
    cfg = config(f"iceberg:{catalog}", {"app": (source.standby_url, {
        "k": {"method": "updater", "cursor": "ts"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    source.execute("ALTER TABLE k DROP CONSTRAINT k_pkey; ALTER TABLE k ADD PRIMARY KEY "
                   "(id, id2); INSERT INTO k VALUES (1, 2, '2026-01-02')")
    (run,) = run_once(cfg)
    assert (run.status, run.exit_code) == ("failed", 7)
    assert "key changed from (id) to (id, id2)" in (run.error or "")


def test_a_numeric_cursor_without_precision_is_refused_in_words_that_say_so(source, cluster,
                                                                          tmp_path):
    source.execute("CREATE TABLE n (id int PRIMARY KEY, c numeric); "
                   "INSERT INTO n VALUES (1, 1)")
    url = new_target("duckdb", cluster, tmp_path)
    (run,) = run_once(config(url, {"app": (source.standby_url, {
        "n": {"method": "inserter", "cursor": "c", "boundary": 0, "lookback": 5}})}))
    assert (run.status, run.exit_code) == ("failed", 2)
    assert "numeric without precision and scale" in (run.error or "")
    assert "numeric(20,0)" in (run.error or "")


@pytest.mark.parametrize("kind", ENGINES)
def test_a_lower_bound_before_the_cursor_type_s_first_value_reads_from_the_start(
        source, cluster, tmp_path, kind):
    """``watermark - boundary`` below the cursor type's range: an integer's was refused by
    the source (exit 6, every later refresh too), an oid's wrapped round (-5 is oid
    4294967291: new rows were never read, exit 0), a timestamp's before year 1 was an
    internal error, a date's or timestamp's before 4714-11-24 BC was refused (exit 6)."""
    source.execute("""
        CREATE TABLE b (id int PRIMARY KEY, c bigint NOT NULL);
        INSERT INTO b VALUES (1, -9223372036854775808);
        CREATE TABLE s (id int PRIMARY KEY, c smallint NOT NULL);
        INSERT INTO s VALUES (1, -32768);
        CREATE TABLE o (id int PRIMARY KEY, c oid NOT NULL);
        INSERT INTO o VALUES (1, 5);
        CREATE TABLE a (id int PRIMARY KEY, c timestamp NOT NULL);
        INSERT INTO a VALUES (1, '0001-01-01 00:00:00');
        CREATE TABLE z (id int PRIMARY KEY, c timestamptz NOT NULL);
        INSERT INTO z VALUES (1, '4714-11-24 00:00:00+00 BC');
        CREATE TABLE d (id int PRIMARY KEY, c date NOT NULL);
        INSERT INTO d VALUES (1, '4714-11-24 BC');""")
    url = new_target(kind, cluster, tmp_path)
    numbers = {"boundary": 10, "lookback": 10}
    tables = {"b": {"method": "inserter", "cursor": "c", **numbers},
              "s": {"method": "updater", "cursor": "c", **numbers},
              "o": {"method": "inserter", "cursor": "c", **numbers},
              "a": {"method": "updater", "cursor": "c", "boundary": "1h"},
              "z": {"method": "updater", "cursor": "c", "boundary": "1h"},
              "d": {"method": "inserter", "cursor": "c", "boundary": "1d"}}
    cfg = config(url, {"app": (source.standby_url, tables)}, allow_primary=True)
    assert [r.rows for r in run_once(cfg)] == [1] * 6
    source.execute("""
        INSERT INTO b VALUES (2, -9223372036854775807); INSERT INTO s VALUES (2, -32767);
        INSERT INTO o VALUES (2, 6), (3, 4294967295);
        INSERT INTO a VALUES (2, '0001-01-01 00:30:00');
        INSERT INTO z VALUES (2, '4714-11-24 00:30:00+00 BC');
        INSERT INTO d VALUES (2, '4714-11-25 BC');""")
    runs = run_once(cfg)
    assert [(r.status, r.error) for r in runs] == [("ok", None)] * 6
    for name in ("b", "s", "a", "z", "d"):
        assert query(url, f"SELECT id FROM app.{name} ORDER BY id") == [(1,), (2,)]
    assert query(url, "SELECT id FROM app.o ORDER BY id") == [(1,), (2,), (3,)]
    assert {r.status for r in run_once(cfg)} <= {"ok", "unchanged"}


def test_an_unconstrained_numeric_key_written_otherwise_replaces_its_row_on_duckdb(
        source, cluster, tmp_path):
    source.execute("""
        CREATE TABLE n (id numeric PRIMARY KEY, ts timestamptz NOT NULL, v text);
        INSERT INTO n VALUES (1, '2026-01-01', 'a'), (2, '2026-01-01', 'b'),
                             (3.50, '2026-01-01', 'c'), (10, '2026-01-01', 'd');""")
    url = new_target("duckdb", cluster, tmp_path)  # the numeric is kept as its text there
    cfg = config(url, {"app": (source.standby_url, {"n": {"method": "updater",
                                                           "cursor": "ts"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    # equal keys in other text (2.00 for 2, 3.5 for 3.50): one row each, the source's text
    source.execute("""
        UPDATE n SET id = 2.00, ts = '2026-01-02', v = 'B' WHERE id = 2;
        UPDATE n SET id = 3.5, ts = '2026-01-02', v = 'C' WHERE id = 3.5;""")
    assert [r.rows for r in run_once(cfg)] == [2]
    assert query(url, "SELECT id, v FROM app.n ORDER BY v") == [
        ("2.00", "B"), ("3.5", "C"), ("1", "a"), ("10", "d")]
    # and a key whose digits only look alike (1 and 10, 2.00 and 20) stays its own row
    source.execute("INSERT INTO n VALUES (20, '2026-01-03', 'e'), (1.0, '2026-01-03', 'x') "
                   "ON CONFLICT (id) DO UPDATE SET v = 'A', ts = '2026-01-03'")
    run_once(cfg)
    assert query(url, "SELECT id, v FROM app.n ORDER BY v") == [
        ("1", "A"), ("2.00", "B"), ("3.5", "C"), ("10", "d"), ("20", "e")]


def test_an_unconstrained_numeric_key_written_otherwise_replaces_its_row_on_iceberg(
        source, tmp_path):
    from topoff.targets.iceberg.config import open_catalog, read_settings

    source.execute("""
        CREATE TABLE n (id numeric PRIMARY KEY, ts timestamptz NOT NULL, v text);
        INSERT INTO n VALUES (1, '2026-01-01', 'a'), (2, '2026-01-01', 'b'),
                             (3.50, '2026-01-01', 'c'), (10, '2026-01-01', 'd'),
                             (-7.0, '2026-01-01', 'e');""")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                       'warehouse = "warehouse"\nnamespace = "unused"\n')
    url = f"iceberg:{catalog}"  # the numeric is a string there
    cfg = config(url, {"app": (source.standby_url, {"n": {"method": "updater",
                                                           "cursor": "ts"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    source.execute("""
        UPDATE n SET id = 2.00, ts = '2026-01-02', v = 'B' WHERE id = 2;
        UPDATE n SET id = 3.5, ts = '2026-01-02', v = 'C' WHERE id = 3.5;
        UPDATE n SET id = -7, ts = '2026-01-02', v = 'E' WHERE id = -7;
        INSERT INTO n VALUES (1.0000000000000000000001, '2026-01-02', 'f')""")
    assert [r.rows for r in run_once(cfg)] == [4]
    table = open_catalog(read_settings(url)).load_table(("app", "n"))
    got = sorted((r["v"], r["id"]) for r in table.scan().to_arrow().to_pylist())
    assert got == [("B", "2.00"), ("C", "3.5"), ("E", "-7"), ("a", "1"), ("d", "10"),
                   ("f", "1.0000000000000000000001")]


def test_a_composite_key_with_an_unconstrained_numeric_written_otherwise_replaces_its_row(
        source, tmp_path):
    from topoff.targets.iceberg.config import open_catalog, read_settings

    source.execute("""
        CREATE TABLE p (id int, n numeric, ts timestamptz NOT NULL, v text,
                        PRIMARY KEY (id, n));
        INSERT INTO p VALUES (1, 2, '2026-01-01', 'a'), (1, 3.50, '2026-01-01', 'b'),
                             (2, 2, '2026-01-01', 'c'), (1, -7.0, '2026-01-01', 'd');""")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                       'warehouse = "warehouse"\nnamespace = "unused"\n')
    url = f"iceberg:{catalog}"
    cfg = config(url, {"app": (source.standby_url, {"p": {"method": "updater",
                                                           "cursor": "ts"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    source.execute("""
        UPDATE p SET n = 2.00, ts = '2026-01-02', v = 'A' WHERE id = 1 AND n = 2;
        UPDATE p SET n = 3.5, ts = '2026-01-02', v = 'B' WHERE n = 3.5;
        UPDATE p SET n = -7, ts = '2026-01-02', v = 'D' WHERE n = -7;
        INSERT INTO p VALUES (2, 2.0000000000000000000001, '2026-01-02', 'e')""")
    assert [r.rows for r in run_once(cfg)] == [4]
    table = open_catalog(read_settings(url)).load_table(("app", "p"))
    got = sorted((r["id"], r["n"], r["v"]) for r in table.scan().to_arrow().to_pylist())
    assert got == [(1, "-7", "D"), (1, "2.00", "A"), (1, "3.5", "B"), (2, "2", "c"),
                   (2, "2.0000000000000000000001", "e")]


@pytest.mark.parametrize("kind", ENGINES)
def test_a_watermark_at_minus_infinity_reads_later_rows(source, cluster, tmp_path, kind):
    """A first refresh whose largest cursor value was -infinity kept it as the watermark;
    every later refresh then failed on the source ('cannot subtract infinite timestamps',
    exit 3) and the table took no row again."""
    source.execute("""
        CREATE TABLE a (id int PRIMARY KEY, c timestamptz NOT NULL);
        INSERT INTO a VALUES (1, '-infinity');
        CREATE TABLE b (id int PRIMARY KEY, c date NOT NULL);
        INSERT INTO b VALUES (1, '-infinity');
        CREATE TABLE l (id int PRIMARY KEY, c timestamp NOT NULL);
        INSERT INTO l VALUES (1, '-infinity');""")
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {
        "a": {"method": "inserter", "cursor": "c"}, "b": {"method": "updater", "cursor": "c"},
        "l": {"method": "inserter", "cursor": "c"}})}, allow_primary=True)
    assert [r.rows for r in run_once(cfg)] == [1, 1, 1]
    source.execute("""
        INSERT INTO a VALUES (2, now() - interval '1 h'), (3, '-infinity');
        INSERT INTO b VALUES (2, current_date - 1), (3, '-infinity');
        INSERT INTO l VALUES (2, localtimestamp - interval '1 h'), (3, '-infinity');""")
    runs = run_once(cfg)
    assert [(r.status, r.rows, r.error) for r in runs] == [("ok", 2, None)] * 3
    assert [r.rows for r in run_once(cfg)] == [0, 0, 0]
    for name in ("a", "b", "l"):
        assert query(url, f"SELECT id FROM app.{name} ORDER BY id") == [(1,), (2,), (3,)]
