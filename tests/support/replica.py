"""Replicas for the consumer tests, and small helpers to publish a dataset to sync from.

The ``replicas`` fixture is parametrized over both targets: ``duckdb`` (a file in the
test's tmp_path) and ``postgresql`` (a fresh database on the session cluster's primary).
``replicas.new()`` makes another empty replica of the same kind (e.g. the reference an
interrupted sync is compared with); ``replica`` is the first one.

:func:`contents` reads every table of a replica back (sorted rows, values normalised so
that two replicas of the same engine compare equal when they hold the same data), and
:func:`ledger` / :func:`steps` read topoff's ledger, so that a test can assert the complete
end state of a replica.

The fixtures live in support/replica_fixtures.py; test modules load them with
``pytest_plugins = ["support.replica_fixtures"]``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from click.testing import CliRunner, Result
from psycopg.types.datetime import TimestampLoader, TimestamptzLoader

from support.pg import Database, make_config
from topoff.config import Config
from topoff.dataset.layout import Window
from topoff.demo import sample
from topoff.demo.cluster import ThrowawayCluster
from topoff.export.full import ExportResult, export_full
from topoff.export.incremental import export_incremental
from topoff.stores import open_store

ENGINES = ["duckdb", "postgresql"]
_names = itertools.count(1)

#: the five tables of the datanommer sample, as the dataset names them
TABLES = ["public.messages", "public.users_messages", "public.packages_messages",
          "public.users", "public.packages"]


def today() -> date:
    return datetime.now(UTC).date()


def day(n: int) -> date:
    """``n`` UTC days before today (day(1) is yesterday)."""
    return today() - timedelta(days=n)


# -- replicas ------------------------------------------------------------------------------

@dataclass
class Replicas:
    """Makes empty replicas of one kind; removes the PostgreSQL ones at the end."""

    kind: str
    tmp: Path
    cluster: ThrowawayCluster
    databases: list[str] = field(default_factory=list)

    def new(self) -> str:
        n = next(_names)
        if self.kind == "duckdb":
            return str(self.tmp / f"replica{n}.duckdb")
        name = f"r{os.getpid()}_{n}"
        self.cluster.primary.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.cluster.primary.url(name)

    def close(self) -> None:
        for name in self.databases:
            with contextlib.suppress(Exception):
                self.cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def is_postgres(location: str) -> bool:
    return location.startswith("postgresql://")


class _InfinityTimestamp(TimestampLoader):
    """psycopg cannot make a datetime of 'infinity': give the text instead."""

    def load(self, data: Any) -> Any:
        if bytes(data) in (b"infinity", b"-infinity"):
            return bytes(data).decode()
        return super().load(data)


class _InfinityTimestamptz(TimestamptzLoader):
    def load(self, data: Any) -> Any:
        if bytes(data) in (b"infinity", b"-infinity"):
            return bytes(data).decode()
        return super().load(data)


def connect_pg(url: str) -> psycopg.Connection:
    """An autocommit connection whose infinite timestamps come back as text."""
    conn = psycopg.connect(url, autocommit=True)
    conn.adapters.register_loader("timestamp", _InfinityTimestamp)
    conn.adapters.register_loader("timestamptz", _InfinityTimestamptz)
    return conn


class Reader:
    """One open connection to a replica (duckdb or psycopg); ``?`` placeholders for both."""

    def __init__(self, location: str) -> None:
        self.pg = is_postgres(location)
        self.conn: Any = connect_pg(location) if self.pg else duckdb.connect(location)

    def close(self) -> None:
        self.conn.close()

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.pg:
            cur = self.conn.execute(statement.replace("?", "%s"), list(params) or None)
        else:
            cur = self.conn.execute(statement, list(params))
        return cur.fetchall() if cur.description else []

    def user_tables(self) -> list[str]:
        """Qualified names of the replica's tables outside topoff's ledger schema."""
        if self.pg:
            where = "table_schema NOT IN ('topoff', 'pg_catalog', 'information_schema')"
        else:
            where = "table_schema <> 'topoff' AND table_catalog = current_database()"
        return [r[0] for r in self.query(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            f"WHERE {where} AND table_type = 'BASE TABLE' ORDER BY 1")]

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        found = self.query(f"SELECT * FROM {_quoted(table)}")
        return sorted((tuple(normalize(v) for v in r) for r in found), key=repr)

    def contents(self) -> dict[str, list[tuple[Any, ...]]]:
        return {t: self.rows(t) for t in self.user_tables()}

    def ledger(self) -> dict[str, tuple[Any, ...]]:
        found = self.query("SELECT dataset, origin, base, base_sequence, status, "
                           "last_sequence, tables, since, target_schema FROM topoff.replicas")
        return {r[0]: tuple(int(v) if isinstance(v, int) else v for v in r[1:]) for r in found}

    def steps(self) -> list[tuple[Any, ...]]:
        found = self.query("SELECT dataset, publication, step, sequence, rows "
                           "FROM topoff.applied")
        return sorted(((r[0], r[1], r[2], int(r[3]), None if r[4] is None else int(r[4]))
                       for r in found), key=repr)


@contextlib.contextmanager
def reader(location: str) -> Iterator[Reader]:
    r = Reader(location)
    try:
        yield r
    finally:
        r.close()


def query(location: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with reader(location) as r:
        return r.query(statement, params)


def normalize(value: Any) -> Any:
    """A value in a form that compares (and sorts by repr) the same for equal data."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list | tuple):
        return tuple(normalize(v) for v in value)
    if isinstance(value, Decimal) and value.is_nan():
        return "NaN"
    return value


def _quoted(table: str) -> str:
    schema, name = table.split(".", 1)
    return f'"{schema}"."{name}"'


def user_tables(location: str) -> list[str]:
    """Qualified names of the replica's tables outside topoff's ledger schema."""
    with reader(location) as r:
        return r.user_tables()


def rows(location: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of a replica table, normalised and sorted."""
    with reader(location) as r:
        return r.rows(table)


def columns(location: str, table: str) -> list[tuple[str, str]]:
    """(name, type) of a replica table's columns, in order."""
    schema, name = table.split(".", 1)
    return [(r[0], r[1]) for r in query(
        location, "SELECT column_name, data_type FROM information_schema.columns WHERE "
        "table_schema = ? AND table_name = ? ORDER BY ordinal_position", [schema, name])]


def contents(location: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the replica (outside the ledger) and its sorted rows."""
    with reader(location) as r:
        return r.contents()


def ledger(location: str) -> dict[str, tuple[Any, ...]]:
    """topoff.replicas without the update time: dataset -> (origin, base, base_sequence,
    status, last_sequence, tables, since, target_schema)."""
    with reader(location) as r:
        return r.ledger()


def steps(location: str) -> list[tuple[Any, ...]]:
    """topoff.applied without the times: (dataset, publication, step, sequence, rows)."""
    with reader(location) as r:
        return r.steps()


def end_state(location: str) -> dict[str, Any]:
    """What an interrupted-then-resumed sync must leave exactly as an uninterrupted one:
    every table's rows, the ledger's replicas rows and its applied steps."""
    with reader(location) as r:
        return {"tables": r.contents(), "ledger": r.ledger(), "steps": r.steps()}


def assert_no_duplicates(location: str, table: str = "public.messages",
                         key: str = "id") -> None:
    (dupes,) = query(location, f'SELECT count(*) FROM (SELECT "{key}" FROM {_quoted(table)} '
                     f'GROUP BY "{key}" HAVING count(*) > 1) d')[0]
    assert dupes == 0, f"{table}: {dupes} values of {key} appear more than once"


def source_rows(db: Database, table: str) -> int:
    return db.standby_query(f"SELECT count(*) FROM {table}")[0][0]


# -- publishing ----------------------------------------------------------------------------

def fill(db: Database, days: int = 3, per_day: int = 100, last_day: date | None = None) -> None:
    """The datanommer sample: ``days`` days of ``per_day`` messages ending ``last_day``
    (default: the day before yesterday, so that yesterday is left for a "next day")."""
    with db.primary() as conn:
        sample.fill(conn, days=days, per_day=per_day, last_day=last_day or day(2))
    db.sync()


def add_messages(db: Database, d: date, n: int, tag: str | None = None) -> None:
    with db.primary() as conn:
        sample.add_messages(conn, d, n, tag=tag)
    db.sync()


def nommer_config(db: Database, **export: Any) -> Config:
    """The example config, one day of lookback (fewer publications), small files."""
    settings: dict[str, Any] = {"lookback_days": 1}
    settings.update(export)
    return make_config(db, **settings)


def publish_full(config: Config, url: str) -> ExportResult:
    with open_store(url) as store:
        return export_full(config, store)


def publish_day(config: Config, url: str, d: date) -> ExportResult:
    with open_store(url) as store:
        return export_incremental(config, store, Window.day(d))


def publish_standard(config: Config, url: str) -> list[str]:
    """A full export and the days up to the day before yesterday; the publication ids."""
    ids = [p.id for p in publish_full(config, url).publications]
    ids += [p.id for p in publish_day(config, url, day(2)).publications]
    return ids


def wait_for_next_second() -> None:
    """Full exports are named by the second of their snapshot: two in one second clash."""
    now = time.time()
    time.sleep(math.ceil(now) - now + 0.01)


# -- the command line ----------------------------------------------------------------------

@contextlib.contextmanager
def keep_logger() -> Iterator[None]:
    """The CLI points topoff's logger at the runner's stream; put it back afterwards."""
    logger = logging.getLogger("topoff")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    try:
        yield
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        for h in saved[0]:
            logger.addHandler(h)
        logger.propagate, logger.level = saved[1], saved[2]


def cli(*args: str) -> Result:
    """Run ``topoff ARGS`` in-process (click's CliRunner); stdout and stderr apart."""
    from topoff.cli import cli as topoff_cli

    with keep_logger():
        return CliRunner().invoke(topoff_cli, list(args), catch_exceptions=False)
