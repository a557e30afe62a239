"""The source abstraction: the exporter chooses its way from a source's capabilities.

PostgreSQL declared with only what any engine offers (one reader, no page ranges, no xmin,
no DDL, no locks) still exports every row, and finds late rows by the per-day count and
hash re-check instead of xmin. Manifests of other engines carry their own position.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from support.dataset import read_table
from support.pg import make_config
from topoff.dataset.layout import Window
from topoff.dataset.manifest import Manifest, Snapshot, TableEntry
from topoff.demo import sample
from topoff.errors import ConfigError, IntegrityError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.sources import base
from topoff.sources.base import SourceCapabilities, engine_of, source_class
from topoff.sources.pg_source import PgReader, PostgresSource
from topoff.stores import open_store

TABLES = ["public.messages", "public.users_messages", "public.packages_messages",
          "public.users", "public.packages"]


class PlainSource(PostgresSource):
    """A PostgreSQL source that declares only what every engine can do."""

    capabilities = SourceCapabilities(
        engine="postgresql", exported_snapshot=False, page_ranges=False,
        xmin_change_detection=False, hash_algorithms=("rt1",), pre_data=False,
        table_locks=False)
    opened: ClassVar[list[PlainSource]] = []

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.workers = self.parts_asked = 0
        PlainSource.opened.append(self)

    def worker(self) -> PgReader:
        self.workers += 1
        return super().worker()

    def lock(self, tables: list[Any]) -> None:
        pass  # table_locks is False


class HashlessSource(PlainSource):
    """... whose server computes no content hash either: the exporter hashes what it reads."""

    capabilities = SourceCapabilities(
        engine="postgresql", exported_snapshot=False, page_ranges=False,
        xmin_change_detection=False, hash_algorithms=(), pre_data=False, table_locks=False)


def test_postgresql_declares_what_it_can_do():
    kind = source_class("postgresql://u@h/db")
    assert kind is PostgresSource
    caps = kind.capabilities
    assert caps.engine == "postgresql" and caps.exported_snapshot and caps.page_ranges
    assert caps.xmin_change_detection and caps.pre_data and caps.table_locks
    assert caps.hash_algorithms[0] == "rt1"


@pytest.mark.parametrize("protocol, implementation", [
    (base.Source, PostgresSource), (base.SourceReader, PgReader)])
def test_the_postgresql_source_has_every_member_of_the_contract(protocol, implementation):
    members = [n for n in vars(protocol) if not n.startswith("_")] + \
        list(getattr(protocol, "__annotations__", {}))
    missing = [n for n in members if not hasattr(implementation, n)
               and n not in implementation.__init__.__code__.co_names]
    assert not missing


@pytest.mark.parametrize("url, engine", [
    ("postgresql://u@h:5432/db", "postgresql"), ("postgres://h/db", "postgresql"),
    ("host=h dbname=db user=u", "postgresql"), ("dbname=a://b", "postgresql"),
    ("mysql://u@h/db", "mysql"), ("MariaDB://u@h/db", "mariadb"),
])
def test_the_url_names_the_engine(url, engine):
    assert engine_of(url) == engine


@pytest.mark.parametrize("url, words", [
    ("oracle://u@h/db", "unsupported source URL scheme"),
])
def test_an_engine_without_a_source_is_a_config_error(url, words):
    with pytest.raises(ConfigError, match=words) as info:
        source_class(url)
    assert info.value.exit_code == 2 and info.value.hint


def test_a_full_export_follows_the_capabilities(datanommer, dest):
    config = make_config(datanommer, jobs=2)
    threads: set[str] = set()

    def hook(event: str, **kw: Any) -> None:
        if event == "table_start":
            threads.add(threading.current_thread().name)

    PlainSource.opened.clear()
    store = open_store(str(dest))
    [m] = export_full(config, store, hook=hook, kind=PlainSource).manifests
    [source] = PlainSource.opened
    assert source.workers == 0 and threads == {threading.current_thread().name}
    assert m.schema_files == {} and not (dest / m.publication / "schema").exists()
    assert all(not t.post_data for t in m.tables.values())
    for name in TABLES:
        [(count,)] = datanommer.standby_query(f"SELECT count(*) FROM {name}")
        assert len(read_table(store, m, name).rows) == count == m.tables[name].rows
    assert m.source["engine"] == "postgresql"


def test_late_rows_are_found_without_xmin(datanommer, dest):
    config = make_config(datanommer, lookback_days=1)
    store = open_store(str(dest))
    y = yesterday()
    d = y - timedelta(days=1)
    export_incremental(config.with_export(lookback_days=0), store, Window.day(d),
                       kind=PlainSource)
    quiet = export_incremental(config, store, Window.day(y), kind=PlainSource)
    how = {r["table"]: r["result"] for r in quiet.manifests[-1].rechecked}
    assert set(how.values()) == {"unchanged-hash"}, how  # no xmin test was made
    with datanommer.primary() as conn:
        sample.add_messages(conn, d, 3, tag="late")
    datanommer.sync()
    again = export_incremental(config, store, Window.day(y), kind=PlainSource)
    [m] = again.manifests
    assert m.window == Window.day(d) and m.revision == 2
    rows = read_table(store, m, "public.messages")
    assert sum(x.startswith("late-") for x in rows.column("msg_id")) == 3


# -- a manifest's snapshot: PostgreSQL's fields, or another engine's position -------------

def _manifest(engine: str | None, **snapshot: Any) -> dict[str, Any]:
    snap = Snapshot("2026-11-20T00:00:00+00:00", "0/1", None, 1, 2,
                    "repeatable read, read only", True)
    m = Manifest("full", "full/2026-11-20T000000Z", "d", "now", "0",
                 {} if engine is None else {"engine": engine}, snap,
                 {"s.t": TableEntry("s", "t", "snapshot", [], [])})
    doc = json.loads(m.dumps())
    doc["tables"] = {}
    doc["snapshot"].update(snapshot)
    for k in [k for k, v in snapshot.items() if v is None]:
        del doc["snapshot"][k]
    return doc


def test_another_engines_snapshot_has_its_own_position():
    doc = _manifest("mariadb", lsn=None, xmin=None, xmax=None,
                    position={"binlog_file": "mysql-bin.000042", "binlog_position": 1234,
                              "gtid": "0-1-77"})
    m = Manifest.from_json(doc)
    assert m.engine == "mariadb" and m.snapshot.xmin is None and m.snapshot.lsn is None
    assert m.snapshot.position == {"binlog_file": "mysql-bin.000042",
                                   "binlog_position": 1234, "gtid": "0-1-77"}
    assert Manifest.from_json(json.loads(m.dumps())).snapshot == m.snapshot
    assert Manifest.from_json(_manifest(None)).engine == "postgresql"


@pytest.mark.parametrize("engine, snapshot", [
    ("postgresql", {"xmin": None}),
    (None, {"lsn": None}),
    ("mariadb", {"position": {"gtid": "x\x1b]0;y\x07"}}),
    ("mariadb", {"position": {"n": -1}}),
    ("mariadb", {"position": {"n": True}}),
    ("mariadb", {"position": {"deep": {"a": 1}}}),
    ("mariadb", {"position": {f"k{i}": i for i in range(50)}}),
    ("mariadb", {"position": "mysql-bin.000042:1234"}),
    ("mariadb", {"xmin": -5}),
])
def test_a_hostile_snapshot_position_is_refused(engine, snapshot):
    with pytest.raises((IntegrityError, ValueError)):
        Manifest.from_json(_manifest(engine, **snapshot))


def test_without_a_server_hash_the_rows_read_are_hashed(datanommer, dest):
    """Snapshot tables get the cs1 hash of their rows in key order; days are re-checked
    by it, and unchanged snapshot tables are not published again."""
    config = make_config(datanommer, lookback_days=1)
    store = open_store(str(dest))
    [full] = export_full(config, store, kind=HashlessSource).manifests
    for name in ("public.users", "public.packages"):
        assert (full.tables[name].content_hash or "").startswith("cs1:")
    y = yesterday()
    d = y - timedelta(days=1)
    first = export_incremental(config.with_export(lookback_days=0), store, Window.day(d),
                               kind=HashlessSource)
    assert first.manifests[-1].tables["public.users"].unchanged_since == full.publication
    quiet = export_incremental(config, store, Window.day(y), kind=HashlessSource)
    how = {r["table"]: r["result"] for r in quiet.manifests[-1].rechecked}
    assert set(how.values()) == {"unchanged-hash"}, how
    with datanommer.primary() as conn:
        sample.add_messages(conn, d, 2, tag="late")
    datanommer.sync()
    [m] = export_incremental(config, store, Window.day(y), kind=HashlessSource).manifests
    assert m.window == Window.day(d) and m.revision == 2
    assert (m.tables["public.messages"].content_hash or "").startswith("cs1:")
    rows = read_table(store, m, "public.messages")
    assert sum(x.startswith("late-") for x in rows.column("msg_id")) == 2
