"""``topoff export full|incremental`` from a MariaDB replica, through the Source protocol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from support.cli import error_lines, loaded_modules, run_cli, write_config
from support.dataset import read_dataset, read_table
from support.mariadb import PASSWORD, MariaDatabase
from topoff.config import Config, TableConfig
from topoff.dataset.layout import Window
from topoff.errors import SafetyError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.sources import base
from topoff.sources.base import source_class
from topoff.sources.mariadb.source import MariaReader, MariaSnapshot, MariaSource
from topoff.sources.mariadb.verify import MariaVerifier
from topoff.stores import open_store

DAY = (datetime.now(UTC) - timedelta(days=3)).date()
EVENTS = """
CREATE TABLE events (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  at DATETIME(6) NOT NULL,
  kind ENUM('a','b,c') NOT NULL,
  body TEXT,
  KEY (at)
)
"""


def config_for(url: str) -> Config:
    return Config(dataset="shop", source_url=url, tables=(
        TableConfig(schema=url.rsplit("/", 1)[1], name="events", method="append", cursor="at"),
    )).with_export(jobs=2, retry_backoff=0.05)


def _fill(maria: MariaDatabase) -> None:
    d = DAY.isoformat()
    prev = (DAY - timedelta(days=1)).isoformat()
    maria.execute(EVENTS + f""";
        INSERT INTO events VALUES
          (18446744073709551615, '{d} 00:00:00.000000', 'a', 'first, of the day'),
          (2, '{d} 23:59:59.999999', 'b,c', 'last "quoted"\nline'),
          (3, '{(DAY + timedelta(days=1)).isoformat()} 00:00:00', 'a', NULL),
          (4, '{prev} 12:00:00.5', 'a', ''),
          (5, '{prev} 23:59:59.999999', 'b,c', 'ä😀')""")


def test_source_class_and_capabilities() -> None:
    assert source_class("mariadb://u@h/db") is MariaSource
    assert source_class("mysql://u@h/db") is MariaSource
    caps = MariaSource.capabilities
    assert not caps.xmin_change_detection and not caps.exported_snapshot
    assert caps.hash_algorithms == ("my3", "my2", "my1")


@pytest.mark.parametrize("protocol, implementation", [
    (base.Source, MariaSource), (base.SourceReader, MariaReader),
    (base.SourceSnapshot, MariaSnapshot), (base.SourceVerifier, MariaVerifier)])
def test_the_mariadb_source_has_every_member_of_the_contract(protocol, implementation):
    members = [n for n in vars(protocol) if not n.startswith("_")] + \
        list(getattr(protocol, "__annotations__", {}))
    missing = [n for n in members if not hasattr(implementation, n)
               and n not in implementation.__init__.__code__.co_names
               and n not in getattr(implementation, "__dataclass_fields__", {})]
    assert not missing


def test_full_export_carries_engine_logical_native_and_position(maria: MariaDatabase,
                                                                tmp_path) -> None:
    _fill(maria)
    store = open_store(str(tmp_path / "pub"))
    result = export_full(config_for(maria.replica_url), store)
    [m] = result.manifests
    assert m.engine == "mariadb" and m.source["in_recovery"] is True
    assert PASSWORD not in str(m.to_json())
    pos = m.snapshot.position
    assert pos is not None and pos["binlog_file"] and pos["binlog_position"] > 0
    entry = m.tables[f"{maria.name}.events"]
    cols = {c.name: c for c in entry.columns}
    assert cols["id"].type == "numeric(20,0)" and cols["id"].native == "bigint(20) unsigned"
    assert cols["id"].logical.to_json() == {"kind": "int", "bits": 64, "unsigned": True}
    assert cols["at"].logical.to_json() == {"kind": "timestamp", "precision": 6,
                                            "zone": False}
    assert cols["kind"].enum == ["a", "b,c"]
    assert entry.primary_key == ["id"] and entry.cursor == "at"
    data = read_table(store, m, f"{maria.name}.events")
    assert sorted(data.rows) == sorted([
        ["18446744073709551615", f"{DAY} 00:00:00", "a", "first, of the day"],
        ["2", f"{DAY} 23:59:59.999999", "b,c", 'last "quoted"\nline'],
        ["3", f"{DAY + timedelta(days=1)} 00:00:00", "a", ""],
        ["4", f"{DAY - timedelta(days=1)} 12:00:00.5", "a", ""],
        ["5", f"{DAY - timedelta(days=1)} 23:59:59.999999", "b,c", "ä😀"],
    ])
    ds = read_dataset(store)
    assert [p.id for p in ds.index.publications] == [m.publication]


def test_a_primary_is_refused_without_allow_primary(maria: MariaDatabase, tmp_path) -> None:
    _fill(maria)
    store = open_store(str(tmp_path / "pub"))
    with pytest.raises(SafetyError):
        export_full(config_for(maria.primary_url), store)
    cfg = write_config(tmp_path / "topoff.toml", f"""
dataset = "shop"
[source]
url = "{maria.primary_url}"
[tables.events]
schema = "{maria.name}"
cursor = "at"
""")
    r = run_cli("export", "full", "--config", cfg, "--to", str(tmp_path / "cli"))
    assert r.exit_code == 4, r.output
    err, hint = error_lines(r)
    assert "primary" in err and "--allow-primary" in hint
    assert PASSWORD not in r.output
    ok = export_full(config_for(maria.primary_url).with_overrides(allow_primary=True), store)
    assert ok.manifests[0].source["in_recovery"] is False


def test_a_mariadb_export_loads_no_postgresql_driver(maria: MariaDatabase, tmp_path) -> None:
    """A real ``topoff export incremental`` from MariaDB (a process of its own) loads
    neither psycopg nor the consumers' libraries: start-up is part of every day's run."""
    _fill(maria)
    cfg = write_config(tmp_path / "topoff.toml", f"""
dataset = "shop"
[tables.events]
schema = "{maria.name}"
cursor = "at"
""")
    proc, loaded = loaded_modules(
        ["export", "incremental", "--config", cfg, "--source", maria.replica_url, "--to",
         str(tmp_path / "out"), "--date", DAY.isoformat(), "--quiet"],
        ("psycopg", "duckdb", "pyarrow", "pyiceberg", "boto3", "rich.console", "topoff.sync",
         "topoff.targets", "topoff.replicate", "topoff.backup"))
    assert proc.returncode == 0, proc.stderr
    assert "published incremental/" in proc.stdout
    assert loaded == [], proc.stdout


def test_incremental_days_and_a_late_row_gives_a_new_revision(maria: MariaDatabase,
                                                              tmp_path) -> None:
    _fill(maria)
    store = open_store(str(tmp_path / "pub"))
    config = config_for(maria.replica_url).with_export(lookback_days=2)
    first = export_incremental(config, store, Window.day(DAY))
    by_label = {m.window.label: m for m in first.manifests if m.window}
    assert set(by_label) >= {str(DAY), str(DAY - timedelta(days=1))}
    table = f"{maria.name}.events"
    day_rows = read_table(store, by_label[str(DAY)], table).rows
    # the window is [00:00, 24:00) at full precision: 23:59:59.999999 in, next midnight out
    assert sorted(r[0] for r in day_rows) == ["18446744073709551615", "2"]
    assert by_label[str(DAY)].tables[table].content_hash.startswith("cs1:")

    again = export_incremental(config, store, Window.day(DAY))
    assert again.manifests == [] and set(again.unchanged) >= {str(DAY)}

    # a late row inside the lookback window, committed on the primary after publication
    maria.execute(f"INSERT INTO events VALUES (6, '{DAY - timedelta(days=1)} 08:00:00.000001',"
                  " 'a', 'late')")
    late = export_incremental(config, store, Window.day(DAY))
    [m] = late.manifests
    assert m.window is not None and m.window.label == str(DAY - timedelta(days=1))
    assert m.revision == 2
    rows = read_table(store, m, table).rows
    assert sorted(r[0] for r in rows) == ["4", "5", "6"]
    assert ["6", f"{DAY - timedelta(days=1)} 08:00:00.000001", "a", "late"] in rows


def test_the_commands_end_to_end(maria: MariaDatabase, tmp_path) -> None:
    """export full, export incremental, sync and verify on the command line."""
    _fill(maria)
    cfg = write_config(tmp_path / "shop.toml", f"""
dataset = "shop"
[source]
url = "{maria.replica_url}"
[export]
lookback_days = 1
[tables.events]
schema = "{maria.name}"
method = "append"
cursor = "at"
""")
    out = str(tmp_path / "pub")
    full = run_cli("export", "full", "--config", cfg, "--to", out)
    assert full.exit_code == 0, full.output
    inc = run_cli("export", "incremental", "--config", cfg, "--to", out, "--date", str(DAY))
    assert inc.exit_code == 0, inc.output
    replica = str(tmp_path / "replica.duckdb")
    synced = run_cli("sync", out, replica)
    assert synced.exit_code == 0, synced.output
    checked = run_cli("verify", replica, "--against", maria.replica_url)
    assert checked.exit_code == 0, checked.output
    maria.execute("DELETE FROM events WHERE id = 2")
    differs = run_cli("verify", replica, "--against", maria.replica_url)
    assert differs.exit_code == 1, differs.output
    dry = run_cli("export", "full", "--config", cfg, "--to", out, "--dry-run")
    assert dry.exit_code == 0, dry.output  # tests/test_mariadb_init.py has more
    assert "an export would read 1 tables" in dry.stdout
    assert PASSWORD not in full.output + inc.output + checked.output + dry.output


def test_keyless_and_snapshot_tables_use_the_server_hash(maria: MariaDatabase,
                                                         tmp_path) -> None:
    """A table without a key is re-checked by the server's order-independent hash (my3);
    a snapshot table is published again only when its hash changes; private columns stay
    out; a TIMESTAMP(6) cursor's day is [00:00, 24:00) UTC at full precision."""
    d, prev = DAY.isoformat(), (DAY - timedelta(days=1)).isoformat()
    maria.execute(f"""
        CREATE TABLE hits (at TIMESTAMP(6) NULL, path VARCHAR(50), secret VARCHAR(10));
        INSERT INTO hits VALUES ('{prev} 23:59:59.999999', '/a', 'x'), ('{d} 00:00:00', '/b', 'y'),
          ('{d} 23:59:59.999999', '/c', 'z'), ('{(DAY + timedelta(days=1)).isoformat()} 00:00:00',
          '/d', 'w');
        CREATE TABLE kinds (code CHAR(2) PRIMARY KEY, label VARCHAR(20));
        INSERT INTO kinds VALUES ('a', 'Alpha'), ('b', 'Beta')""")
    db = maria.name
    config = Config(dataset="shop", source_url=maria.replica_url, tables=(
        TableConfig(schema=db, name="hits", cursor="at",
                    columns={"at": "public", "path": "public", "secret": "private"}),
        TableConfig(schema=db, name="kinds", method="snapshot"),
    )).with_export(lookback_days=1)
    store = open_store(str(tmp_path / "pub"))
    first = export_incremental(config, store, Window.day(DAY))
    by_label = {m.window.label: m for m in first.manifests if m.window}
    target = by_label[str(DAY)]
    hits = target.tables[f"{db}.hits"]
    assert [c.name for c in hits.columns] == ["at", "path"]
    assert hits.content_hash is not None and hits.content_hash.startswith("my3:")
    assert sorted(read_table(store, target, f"{db}.hits").rows) == [
        [f"{d} 00:00:00+00", "/b"], [f"{d} 23:59:59.999999+00", "/c"]]
    kinds = target.tables[f"{db}.kinds"]
    assert kinds.content_hash is not None and kinds.content_hash.startswith("my3:")

    assert export_incremental(config, store, Window.day(DAY)).manifests == []

    # a late row in the earlier day, and a changed snapshot table
    maria.execute(f"INSERT INTO hits VALUES ('{prev} 00:00:00.000001', '/late', 'v');"
                  "UPDATE kinds SET label = 'Bravo' WHERE code = 'b'")
    late = export_incremental(config, store, Window.day(DAY))
    labels = sorted((m.window.label, m.revision) for m in late.manifests if m.window)
    assert labels == [(prev, 2), (d, 2)]  # the day with the late row; the snapshot's day
    republished = {m.window.label: m for m in late.manifests if m.window}
    assert sorted(r[1] for r in read_table(store, republished[prev], f"{db}.hits").rows) == [
        "/a", "/late"]
    assert republished[d].tables[f"{db}.hits"].unchanged_since is not None
    assert ["b", "Bravo"] in read_table(store, republished[d], f"{db}.kinds").rows


def test_a_day_stays_open_while_replication_is_stopped(maria: MariaDatabase, tmp_path) -> None:
    """The replica's Seconds_Behind_Master says how far it has applied the primary: with
    replication stopped nothing says the day is complete, so it is refused (exit 4)
    unless forced."""
    _fill(maria)
    store = open_store(str(tmp_path / "pub"))
    config = config_for(maria.replica_url).with_export(lookback_days=0)
    replica = maria.pair.replica
    replica.sql("STOP SLAVE")
    try:
        with pytest.raises(SafetyError, match="replication is stopped") as info:
            export_incremental(config, store, Window.day(DAY))
        assert info.value.exit_code == 4 and "--force" in (info.value.hint or "")
        assert "nothing replayed" not in info.value.message  # it applied every day before
        forced = export_incremental(config, store, Window.day(DAY), force=True)
        assert [m.window.label for m in forced.manifests if m.window] == [str(DAY)]
    finally:
        replica.sql("START SLAVE")
        maria.pair.wait_replica()
