"""Days as users in other zones meet them: real processes under a TZ that is not UTC, a
source database in another zone, rows at the edges of days, the UTC days around clock
changes (23 and 25 hours of wall-clock time), and backup ages."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from support.backup import entry
from support.cli import topoff_under, write_config
from support.dataset import read_table
from support.pg import make_config
from support.replica import day, rows
from support.replicate import new_database
from topoff.dataset.layout import Window
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

# -- a user whose zone is not UTC: real processes under TZ, a source database in another ---

CLIENT_TZ = "Pacific/Chatham"  # +13:45 in December, +12:45 in winter
ZONES_CONFIG = """dataset = "zones"
[source]
url = "{url}"
[export]
lookback_days = 1
retry_backoff = "50ms"
[tables.inst]
method = "append"
cursor = "at"
[tables.wall]
method = "append"
cursor = "at"
cursor_timezone = "America/St_Johns"
"""


def topoff(*args: str, tz: str = CLIENT_TZ) -> subprocess.CompletedProcess[str]:
    return topoff_under(tz, *args)


def edges(d: date) -> list[str]:
    """Instants at the edges of day ``d`` in UTC and in the zones of this file."""
    out = []
    for offset in ("+00", "+05:45", "+14", "-03:30", "+10:30", "+13:45"):
        out += [f"{d} 23:59:59.999999{offset}", f"{d + timedelta(days=1)} 00:00:00{offset}"]
    return out


def insert(db, instants: list[str], walls: list[str]) -> None:
    db.execute("INSERT INTO inst (at) SELECT unnest(%s::timestamptz[])", (instants,))
    db.execute("INSERT INTO wall (at) SELECT unnest(%s::timestamp[])", (walls,))


def test_a_user_in_another_zone_exports_syncs_and_verifies(db, tmp_path):
    """The source database's timezone is Asia/Kathmandu, the client's TZ Pacific/Chatham:
    the days exported are UTC days, every row at a day's edge lands in exactly one, both
    replicas hold the source's values, verify passes and status prints UTC times."""
    db.execute(f'ALTER DATABASE "{db.name}" SET timezone = \'Asia/Kathmandu\'')
    d1, d2 = day(3), day(2)
    db.execute("CREATE TABLE inst (id serial PRIMARY KEY, at timestamptz NOT NULL);"
               "CREATE TABLE wall (id serial PRIMARY KEY, at timestamp NOT NULL)")
    insert(db, edges(day(6)), [e[:26] for e in edges(day(6))])
    cfg = write_config(tmp_path / "zones.toml", ZONES_CONFIG.format(url=db.standby_url))
    pub = str(tmp_path / "pub")
    r = topoff("export", "full", "--config", cfg, "--to", pub)
    assert r.returncode == 0, r.stderr
    # rows at the edges of d1 and d2 (UTC, the zones', and St_Johns' wall clock at UTC
    # midnight: 20:30 in December), committed after the full export
    late = edges(d1 - timedelta(days=1)) + edges(d1) + edges(d2)
    walls = [e[:26] for e in late] + [f"{d} 20:29:59.999999" for d in (d1, d2)] + \
        [f"{d} 20:30:00" for d in (d1, d2)]
    insert(db, late, walls)
    for d in (d1, d2):
        r = topoff("export", "incremental", "--config", cfg, "--to", pub, "--date", str(d))
        assert r.returncode == 0, r.stderr
    index = json.loads((tmp_path / "pub" / "index.json").read_text())
    labels = [p["id"] for p in index["publications"]]
    assert f"incremental/{d1}/r1" in labels and f"incremental/{d2}/r1" in labels, labels
    full = labels[0]  # full/YYYY-MM-DDTHHMMSSZ: its snapshot's second, UTC
    r = topoff("list", pub)
    stamp = datetime.strptime(full[5:], "%Y-%m-%dT%H%M%SZ").strftime("%Y-%m-%d %H:%M:%S")
    assert any(full in line and stamp in line for line in r.stdout.splitlines()), r.stdout
    pg_target = new_database(db.cluster, "rz")  # its readers' zone: Pacific/Kiritimati
    pg_target.execute(f'ALTER DATABASE "{pg_target.name}" SET timezone = '
                      "'Pacific/Kiritimati'")
    for target in (str(tmp_path / "r.duckdb"), pg_target.primary_url):
        r = topoff("sync", pub, target)
        assert r.returncode == 0, r.stderr
        r = topoff("verify", target, "--against", db.standby_url, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        # value by value (instants as instants), up to the end of d2: UTC midnight, in
        # St_Johns' wall clock 20:30 (-03:30)
        for table, end in (("public.inst", datetime(d2.year, d2.month, d2.day, tzinfo=UTC)
                            + timedelta(days=1)),
                           ("public.wall", datetime(d2.year, d2.month, d2.day, 20, 30))):
            theirs = [r for r in rows(db.standby_url, table) if r[1] < end]
            assert rows(target, table) == theirs, (target, table)
        r = topoff("status", target, "--json", "--offline")
        assert r.returncode == 0, r.stderr
        [doc] = json.loads(r.stdout)
        assert doc["last_applied_at"].endswith("+00:00"), doc
        newest = {t["table"]: t["newest"] for t in doc["tables"]}
        assert newest == {"public.inst": f"{d2} 23:59:59.999999+00:00",
                          "public.wall": f"{d2} 20:29:59.999999"}, target
    # an analyst's DuckDB session shows instants in its TimeZone (the host's by default)
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        last = 'SELECT CAST(max("at") AS DATE)::VARCHAR FROM public.inst'
        con.execute(f"SET TimeZone = '{CLIENT_TZ}'")
        assert con.execute(last).fetchall() == [(str(d2 + timedelta(days=1)),)]
        con.execute("SET TimeZone = 'UTC'")
        assert con.execute(last).fetchall() == [(str(d2),)]
    # --since d2: the rows from d2's start on, UTC midnight (St_Johns: 20:30 the day before)
    since = str(tmp_path / "since.duckdb")
    r = topoff("sync", pub, since, "--since", str(d2))
    assert r.returncode == 0, r.stderr
    for table, start, end in (
            ("public.inst", datetime(d2.year, d2.month, d2.day, tzinfo=UTC), timedelta(days=1)),
            ("public.wall", datetime(d1.year, d1.month, d1.day, 20, 30), timedelta(days=1))):
        theirs = [r for r in rows(db.standby_url, table) if start <= r[1] < start + end]
        assert rows(since, table) == theirs, table
    r = topoff("verify", since, "--against", db.standby_url)
    assert r.returncode == 0, r.stdout + r.stderr


# -- days that are 23 or 25 hours long ------------------------------------------------------

DST_DAYS = [  # zone, the UTC day of a change, the stretch of wall-clock time it repeats
    ("Europe/London", date(2026, 3, 29), None),  # 01:00 -> 02:00
    ("Australia/Lord_Howe", date(2026, 4, 4), ("2026-04-05 01:30", "2026-04-05 02:00")),
    ("Australia/Lord_Howe", date(2026, 10, 3), None),  # 02:00 -> 02:30
    ("America/St_Johns", date(2026, 11, 1), ("2026-11-01 01:00", "2026-11-01 02:00")),
    ("Pacific/Chatham", date(2026, 4, 4), ("2026-04-05 02:45", "2026-04-05 03:45")),
]


def utc_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


@pytest.mark.parametrize("zone,change,repeated", DST_DAYS)
def test_days_around_a_clock_change_hold_each_row_once(db, tmp_path, zone, change, repeated):
    """Rows every 7 minutes of wall-clock time (the skipped stretch included, the repeated
    one written twice) and of instants, on the UTC days around a clock change: each row is
    in exactly one day, the day whose bounds (UTC midnights, as wall-clock times of the
    zone) hold it; the replica holds every row and verify passes."""
    tz = ZoneInfo(zone)
    days = [change - timedelta(days=1), change, change + timedelta(days=1)]
    walls = [utc_midnight(d).astimezone(tz).replace(tzinfo=None) for d in
             [*days, days[-1] + timedelta(days=1)]]
    db.execute("CREATE TABLE wall (id serial PRIMARY KEY, t timestamp NOT NULL, pass int); "
               "CREATE TABLE inst (id serial PRIMARY KEY, t timestamptz NOT NULL)")
    db.execute("INSERT INTO wall (t, pass) SELECT g, 1 FROM generate_series(%s::timestamp "
               "- interval '2 h', %s::timestamp + interval '2 h', interval '7 min') g",
               (walls[0], walls[-1]))
    db.execute("INSERT INTO wall (t, pass) SELECT unnest(%s::timestamp[]), 1",
               ([w - timedelta(microseconds=e) for w in walls for e in (0, 1)],))
    instants = [utc_midnight(d) for d in [*days, days[-1] + timedelta(days=1)]]
    db.execute("INSERT INTO inst (t) SELECT g FROM generate_series(%s::timestamptz - "
               "interval '2 h', %s::timestamptz + interval '2 h', interval '7 min') g",
               (instants[0], instants[-1]))
    db.execute("INSERT INTO inst (t) SELECT unnest(%s::timestamptz[])",
               ([i - timedelta(microseconds=e) for i in instants for e in (0, 1)],))
    if repeated:
        db.execute("INSERT INTO wall (t, pass) SELECT g, 2 FROM generate_series("
                   "%s::timestamp, %s::timestamp - interval '1 us', interval '3 min') g",
                   repeated)
    config = make_config(db, f'[tables.wall]\ncursor = "t"\ncursor_timezone = "{zone}"\n'
                         '[tables.inst]\ncursor = "t"\n', lookback_days=0)
    pub = str(tmp_path / "pub")
    found: dict[str, dict[str, date]] = {"wall": {}, "inst": {}}
    with open_store(pub) as store:
        for d in days:
            m = export_incremental(config, store, Window.day(d)).manifests[0]
            for table in found:
                data = read_table(store, m, f"public.{table}")
                for row in data.rows:
                    assert row[0] not in found[table], (table, row, d)  # once
                    found[table][row[0]] = d
        export_full(config, store)  # verify compares the replica's days with the source's
    replica = str(tmp_path / "r.duckdb")
    sync(pub, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    report = verify(replica, db.standby_url)
    assert report.equal, report.to_json()
    for table in ("public.wall", "public.inst"):
        assert rows(replica, table) == rows(db.standby_url, table), table
    for table, bounds in (("wall", walls), ("inst", instants)):
        for row_id, t in db.standby_query(f"SELECT id::text, t FROM {table}"):
            where = [d for d, lo, hi in zip(days, bounds, bounds[1:], strict=False)
                     if lo <= t < hi]
            assert found[table].get(row_id) == (where[0] if where else None), (table, t)


@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "America/St_Johns"])
def test_backups_check_ages_whatever_the_host_zone(tmp_path, tz):
    """The newest backup's age is the same under any TZ, and so is it for a catalog time
    written with another offset."""
    store = tmp_path / "s"
    now = datetime.now(UTC)
    entry(store, "dump.a", 30, now=now)
    entry(store, "dump.b", 3, now=now)  # ended 2h55m ago
    started = store / "catalog" / "dump.b" / "started.json"
    body = json.loads(started.read_text())
    body["started"] = datetime.fromisoformat(body["started"]).astimezone(
        ZoneInfo("Asia/Kathmandu")).isoformat()  # the same instant, +05:45
    started.write_text(json.dumps(body))
    r = topoff("backups", "check", str(store), "--max-age", "3h", tz=tz)
    assert r.returncode == 0 and "dump.b finished 2.9h ago" in r.stdout, r.stdout + r.stderr
    r = topoff("backups", "check", str(store), "--max-age", "2h", tz=tz)
    assert r.returncode == 2 and "2.9h old" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("gone", ["t < '2001-01-01'", "t IS NULL", "t = '-infinity'"])
def test_verify_finds_rows_a_replica_lacks_for_a_zone_s_cursor(db, tmp_path, gone):
    """A timestamp cursor kept in America/St_Johns is compared window by window: a row
    far from the others, or whose cursor is NULL or infinite, that the replica lacks is a
    difference too (the days compared were the replica's own, one either side: such rows
    passed), and a far value costs no window per day in between (a row of 2100, after
    the replica, made verify read 36,500 windows on each side)."""
    db.execute("CREATE TABLE wall (id int PRIMARY KEY, t timestamp)")
    db.execute("INSERT INTO wall SELECT g, %s::timestamp + g * interval '1 h' "
               "FROM generate_series(0, 24 * 3 - 1) g", (day(8),))
    db.execute("INSERT INTO wall VALUES (-1, '2000-01-01 10:00'), (-2, NULL), "
               "(-3, '2100-01-01 10:00'), (-4, '-infinity')")
    cfg = make_config(db, '[tables.wall]\ncursor = "t"\ncursor_timezone = '
                      '"America/St_Johns"\n')
    pub, replica = str(tmp_path / "pub"), str(tmp_path / "r.duckdb")
    with open_store(pub) as store:
        export_full(cfg, store)
    sync(pub, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    assert verify(replica, db.standby_url).equal
    with duckdb.connect(replica) as con:
        con.execute(f"DELETE FROM public.wall WHERE {gone}")
    report = verify(replica, db.standby_url)
    assert not report.equal, report.to_json()
