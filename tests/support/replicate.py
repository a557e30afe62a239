"""Helpers for the ``topoff replicate`` tests: a source database, a target of either kind,
configs written as TOML, and comparisons by the canonical hash (verify's code)."""

from __future__ import annotations

import itertools
import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from support.pg import Database
from topoff.config_writer import toml_value
from topoff.demo.cluster import ThrowawayCluster
from topoff.replicate.config import ReplicateConfig, parse_replicate
from topoff.replicate.engine import open_target
from topoff.replicate.store import StateStore
from topoff.targets.base import TableDef, TableRef
from topoff.targets.postgres.target import hash_table

_names = itertools.count(1)


def new_database(cluster: ThrowawayCluster, prefix: str = "rs") -> Database:
    name = f"{prefix}{os.getpid()}_{next(_names)}"
    cluster.create_database(name)
    return Database(name, cluster)


def new_target(kind: str, cluster: ThrowawayCluster, tmp: Path) -> str:
    if kind == "duckdb":
        return str(tmp / f"replica{next(_names)}.duckdb")
    return new_database(cluster, "rt").primary_url


def config(target: str, sources: dict[str, tuple[str, dict[str, dict[str, object]]]],
           **source_extra: object) -> ReplicateConfig:
    """``sources``: name -> (url, {table: settings})."""
    return parse_replicate(tomllib.loads(config_text(target, sources, **source_extra)))


def config_text(target: str, sources: dict[str, tuple[str, dict[str, dict[str, object]]]],
                **source_extra: object) -> str:
    lines = ["[replicate]", f"target = {toml_value(target)}"]
    for name, (url, tables) in sources.items():
        lines += [f"[replicate.sources.{name}]", f"url = {toml_value(url)}"]
        lines += [f"{k} = {toml_value(v)}" for k, v in source_extra.items()]
        for tname, settings in tables.items():
            lines.append(f"[replicate.sources.{name}.tables.{toml_value(tname)}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


@contextmanager
def target(url: str) -> Iterator[object]:
    engine = open_target(url)
    try:
        yield engine
    finally:
        engine.close()


def stored(url: str, source: str, table: str) -> TableDef:
    with target(url) as engine:
        d = StateStore(engine).definition(source, table)  # type: ignore[arg-type]
        assert d is not None
        return d


def hashes(url: str, source_url: str, source: str, table: str,
           source_relation: tuple[str, str] | None = None) -> tuple[tuple, tuple]:
    """(target's (count, hash), source's (count, hash)) of the replicated columns."""
    with target(url) as engine:
        d = StateStore(engine).definition(source, table)  # type: ignore[arg-type]
        assert d is not None
        mine = engine.hash_rows(d, False)[None]  # type: ignore[attr-defined]
        columns = engine.stored_columns(d)  # type: ignore[attr-defined]
        profile = "exact" if engine.capabilities.native_types else "duckdb"  # type: ignore[attr-defined]
    schema, name = source_relation or tuple(table.split(".", 1))
    src = TableDef(table, TableRef(schema, name), d.method, columns, [], None, None, "")
    with psycopg.connect(source_url) as conn:
        theirs = hash_table(conn, src, False, None, None, profile)[None]
    return mine, theirs


def query(url: str, statement: str) -> list[tuple]:
    with target(url) as engine:
        return engine.execute(statement)  # type: ignore[attr-defined]
