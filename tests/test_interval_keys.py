"""An interval key is one key for PostgreSQL whenever its span is ('1 day' = '24:00:00',
'1 mon' = '30 days', '1 year' = '360 days': 30-day months, 24-hour days), though its text
differs. A key rewritten so (an upsert export's, an updater's) replaces its row in every
target, alone or in a composite key; a key near one that changed stays its own row."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from support.pg import make_config
from support.replica import day, publish_day, publish_full, query
from support.replicate import config, new_database, new_target
from test_iceberg_sync import catalog_file, iceberg_rows
from topoff.replicate.engine import run_once
from topoff.sync import sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]

TABLES = """
CREATE TABLE singles (k interval PRIMARY KEY, name text NOT NULL, ts timestamptz NOT NULL);
CREATE TABLE pairs (id int, k interval, name text NOT NULL, ts timestamptz NOT NULL,
                    PRIMARY KEY (id, k));
CREATE INDEX ON singles (ts); CREATE INDEX ON pairs (ts);
"""
#: the keys of a domain over a domain over interval: the outer domain's base type is the
#: inner domain, which was taken for a type of its own (keys matched by their text)
DOMAINS = ("CREATE DOMAIN span AS interval; "
           "CREATE DOMAIN span_of AS span CHECK (VALUE IS NOT NULL); "
           + TABLES.replace(" k interval", " k span_of"))
FIRST = [("1 day", "a"), ("1 mon", "b"), ("1 day 01:00:00", "c"), ("-01:00:00", "d"),
         ("2 days", "e"), ("1 year", "f")]
#: each key rewritten as another text of the same span, and the row's name changed
RESPELLED = [("24:00:00", "1 day", "A"), ("30 days", "1 mon", "B"),
             ("25:00:00", "1 day 01:00:00", "C"), ("-1 days +23:00:00", "-01:00:00", "D"),
             ("360 days", "1 year", "F")]
AFTER = ["A", "B", "C", "D", "F", "e", "near"]


def _fill(db, ts: datetime) -> None:
    for k, name in FIRST:
        db.execute("INSERT INTO singles VALUES (%s, %s, %s)", [k, name, ts])
        db.execute("INSERT INTO pairs VALUES (1, %s, %s, %s), (2, %s, %s, %s)",
                   [k, name, ts, k, name.upper() + "2", ts])


def _respell(db, ts: datetime) -> None:
    for new, old, name in RESPELLED:
        db.execute("UPDATE singles SET k = %s, name = %s, ts = %s WHERE k = %s",
                   [new, name, ts, old])
        db.execute("UPDATE pairs SET k = %s, name = %s, ts = %s WHERE id = 1 AND k = %s",
                   [new, name, ts, old])
    # a key one microsecond from one that changed: its own row
    db.execute("INSERT INTO singles VALUES ('2 days 00:00:00.000001', 'near', %s)", [ts])
    db.execute("INSERT INTO pairs VALUES (1, '2 days 00:00:00.000001', 'near', %s)", [ts])


def _names(rows: list[tuple], at: int) -> list[str]:
    return sorted(str(r[at]) for r in rows)


TOML = """
dataset = "spans"

[tables.singles]
method = "upsert"
cursor = "ts"

[tables.pairs]
method = "upsert"
cursor = "ts"
"""


def _publish_and_respell(db, tmp_path):
    _fill(db, datetime.combine(day(4), time(), tzinfo=UTC))
    cfg = make_config(db, TOML, lookback_days=1)
    url = str(tmp_path / "published")
    publish_full(cfg, url)
    return cfg, url


def _second_day(db, cfg, url) -> None:
    _respell(db, datetime.combine(day(1), time(12), tzinfo=UTC))
    db.sync()
    publish_day(cfg, url, day(1))


def test_an_upsert_key_respelled_replaces_its_row_on_duckdb_and_postgresql(db, replica,
                                                                           tmp_path):
    db.execute(TABLES)
    cfg, url = _publish_and_respell(db, tmp_path)
    sync(url, replica)
    _second_day(db, cfg, url)
    sync(url, replica)
    assert _names(query(replica, "SELECT name FROM public.singles"), 0) == AFTER
    assert _names(query(replica, "SELECT name FROM public.pairs WHERE id = 1"), 0) == AFTER
    assert query(replica, "SELECT count(*) FROM public.pairs WHERE id = 2")[0][0] == 6
    report = verify(replica, db.standby_url)
    assert report.equal, report.to_json()


@pytest.mark.parametrize("tables", [TABLES, DOMAINS], ids=["interval", "domains"])
def test_an_upsert_key_respelled_replaces_its_row_on_iceberg(db, tmp_path, tables):
    db.execute(tables)
    cfg, url = _publish_and_respell(db, tmp_path)
    target = catalog_file(tmp_path)
    sync(url, target)
    _second_day(db, cfg, url)
    sync(url, target)
    singles = iceberg_rows(target, "public.singles")
    assert _names(singles, 1) == AFTER
    assert ("24:00:00", "A") in [r[:2] for r in singles]  # the source's new text
    pairs = iceberg_rows(target, "public.pairs")
    assert _names([r for r in pairs if r[0] == 1], 2) == AFTER
    assert len([r for r in pairs if r[0] == 2]) == 6
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


@pytest.mark.parametrize(("kind", "tables"), [
    ("duckdb", TABLES), ("postgresql", TABLES), ("iceberg", TABLES), ("duckdb", DOMAINS),
    ("iceberg", DOMAINS)], ids=["duckdb", "postgresql", "iceberg", "duckdb-domains",
                                "iceberg-domains"])
def test_an_updater_key_respelled_replaces_its_row(cluster, tmp_path, kind, tables):
    source = new_database(cluster)
    source.execute(tables)
    _fill(source, datetime(2026, 1, 1, tzinfo=UTC))
    if kind == "iceberg":
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                           'warehouse = "warehouse"\nnamespace = "unused"\n')
        url = f"iceberg:{catalog}"
    else:
        url = new_target(kind, cluster, tmp_path)
    tables = {t: {"method": "updater", "cursor": "ts"} for t in ("singles", "pairs")}
    cfg = config(url, {"app": (source.standby_url, tables)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok"]
    _respell(source, datetime(2026, 1, 2, tzinfo=UTC))
    assert sorted(r.rows for r in run_once(cfg)) == [6, 6]
    if kind == "iceberg":
        from topoff.targets.iceberg.config import open_catalog, read_settings

        catalog_ = open_catalog(read_settings(url))
        singles = catalog_.load_table(("app", "singles")).scan().to_arrow().to_pylist()
        pairs = catalog_.load_table(("app", "pairs")).scan().to_arrow().to_pylist()
        assert sorted(r["name"] for r in singles) == AFTER
        assert {(r["k"], r["name"]) for r in singles} >= {("24:00:00", "A"),
                                                           ("-1 days +23:00:00", "D")}
        assert sorted(r["name"] for r in pairs if r["id"] == 1) == AFTER
        assert len([r for r in pairs if r["id"] == 2]) == 6
    else:
        assert _names(query(url, "SELECT name FROM app.singles"), 0) == AFTER
        assert _names(query(url, "SELECT name FROM app.pairs WHERE id = 1"), 0) == AFTER
        assert query(url, "SELECT count(*) FROM app.pairs WHERE id = 2")[0][0] == 6


def test_the_span_text_is_one_for_each_span_postgresql_takes_as_one_key(db):
    """Random intervals and extreme ones, grouped by PostgreSQL's own equality: one text
    for each group, a different one for each other group."""
    import pyarrow as pa

    from topoff.targets.iceberg.spans import span_text

    extremes = ["178000000 years", "-178000000 years", "2562047788:00:54.775807",
                "-2562047788:00:54.775807", "1 mon -30 days", "-1 mon 30 days", "00:00:00",
                "-00:00:00.000001", "1 day -00:00:00.000001", "23:59:59.999999",
                "-11 mons +1 day -48:00:00.5", "1 year -360 days +00:00:00.000001"]
    if db.primary().info.server_version >= 170000:
        extremes += ["infinity", "-infinity"]
    groups = db.execute(
        "WITH v AS (SELECT make_interval(years => (random() * 4 - 2)::int, "
        "months => (random() * 30 - 15)::int, days => (random() * 70 - 35)::int, "
        "hours => (random() * 60 - 30)::int, mins => (random() * 4 - 2)::int, "
        "secs => round((random() * 4 - 2)::numeric, (random() * 6)::int)) AS i "
        "FROM generate_series(1, 4000) UNION ALL SELECT unnest(%s::interval[])) "
        "SELECT array_agg(DISTINCT i::text) FROM v GROUP BY i", [extremes])
    assert len(groups) > 500 and any(len(g) > 1 for (g,) in groups)
    every = [t for (texts,) in groups for t in texts]
    span = dict(zip(every, span_text(pa.array(every)).to_pylist(), strict=True))
    seen: dict[str, list[str]] = {}
    for (texts,) in groups:
        spans = {span[t] for t in texts}
        assert len(spans) == 1, texts
        (one,) = spans
        assert one not in seen, (texts, seen.get(one))
        seen[one] = texts


ARRAYS = """
CREATE TABLE singles (k interval[] PRIMARY KEY, name text NOT NULL, ts timestamptz NOT NULL);
CREATE TABLE pairs (id int, k int[], name text NOT NULL, ts timestamptz NOT NULL,
                    PRIMARY KEY (id, k));
CREATE INDEX ON singles (ts); CREATE INDEX ON pairs (ts);
INSERT INTO singles VALUES ('{1 day}', 'a', now() - interval '4 days');
INSERT INTO pairs VALUES (1, '{1}', 'a', now() - interval '4 days');
"""


def test_an_array_key_is_refused_by_an_iceberg_upsert(db, tmp_path):
    """An Iceberg list cannot be matched by a delete by key: a key with an array column
    ('{1 day}' and '{24:00:00}' one key of interval[]) is refused with exit 7 naming it
    (a composite one stopped the second sync with a TypeError, exit 70)."""
    from topoff.errors import TargetError

    db.execute(ARRAYS)
    cfg = make_config(db, TOML, lookback_days=1)
    url = str(tmp_path / "published")
    publish_full(cfg, url)
    db.execute("UPDATE singles SET k = '{24:00:00}', name = 'A', ts = now() - interval '1 day'"
               "; UPDATE pairs SET name = 'A', ts = now() - interval '1 day'")
    db.sync()
    publish_day(cfg, url, day(1))
    with pytest.raises(TargetError) as info:
        sync(url, catalog_file(tmp_path))
    assert info.value.exit_code == 7
    assert "array" in info.value.message and "'k'" in info.value.message, info.value.message


def test_an_array_key_is_refused_by_an_iceberg_updater(cluster, tmp_path):
    source = new_database(cluster)
    source.execute(ARRAYS)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                       'warehouse = "warehouse"\nnamespace = "unused"\n')
    tables = {t: {"method": "updater", "cursor": "ts"} for t in ("singles", "pairs")}
    cfg = config(f"iceberg:{catalog}", {"app": (source.standby_url, tables)})
    for _ in range(2):
        for run in run_once(cfg):
            assert (run.status, run.exit_code) == ("failed", 7), run
            assert "array" in (run.error or "") and "'k'" in (run.error or ""), run.error
    tables = {t: {"method": "snapshot"} for t in ("singles", "pairs")}
    cfg = config(f"iceberg:{catalog}", {"app": (source.standby_url, tables)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok"]
