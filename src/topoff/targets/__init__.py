"""Replicas a dataset is synced into: a PostgreSQL database or a DuckDB file."""

from __future__ import annotations

import contextlib
from pathlib import Path

from topoff.errors import ConfigError, LockedError, TargetError
from topoff.targets.base import Capabilities, ReplicaState, TableDef, TableRef, Target

__all__ = ["Capabilities", "ReplicaState", "TableDef", "TableRef", "Target", "duckdb_path",
           "new_duckdb_file", "open_target", "remove_duckdb_file", "target_kind"]

_LOCATION_HINT = ("use postgresql://user@host/db, a libpq string such as 'host=H dbname=D', "
                  "a DuckDB file path such as replica.duckdb (or duckdb://PATH), or "
                  "iceberg:CATALOG.toml")


def _is_conninfo(location: str) -> bool:
    """A libpq ``key=value`` string whose every key libpq knows (``host=db dbname=x``)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        return bool(conninfo_to_dict(location))
    except ProgrammingError:
        return False


def target_kind(location: str) -> str:
    low = location.lower()
    if low.startswith(("postgresql://", "postgres://")):
        return "postgresql"
    if low.startswith("duckdb://"):
        return "duckdb"
    if "://" in location:
        raise ConfigError(f"unsupported replica location {location!r}", hint=_LOCATION_HINT)
    if "=" in location:
        if _is_conninfo(location):
            return "postgresql"
        raise ConfigError(
            f"{location!r} is neither a PostgreSQL connection string nor a DuckDB file name",
            hint="libpq strings use known keys (host=, port=, dbname=, user=...); a DuckDB "
            "file name with '=' in it must be written duckdb://PATH")
    return "duckdb"


def duckdb_path(location: str) -> Path | None:
    """The DuckDB file a location names, or None for a PostgreSQL location."""
    if target_kind(location) != "duckdb":
        return None
    path = location[len("duckdb://"):] if location.lower().startswith("duckdb://") \
        else location
    return Path(path).expanduser()


def new_duckdb_file(location: str) -> Path | None:
    """The DuckDB file ``location`` names when it does not exist yet (opening it creates it)."""
    path = duckdb_path(location)
    return path if path is not None and not path.exists() else None


def remove_duckdb_file(path: Path) -> None:
    """Remove a DuckDB file and its write-ahead log (a replica a failed run created)."""
    for p in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def open_target(location: str, create: bool = True, memory_limit: str | None = None) -> Target:
    """The replica a location names: ``postgresql://...`` or a libpq ``key=value`` string,
    or a DuckDB file (the default).

    With ``create`` false (status, verify), a DuckDB file that does not exist is not made:
    the target is empty instead. ``memory_limit``: DuckDB's (see targets.duckdb.resources).
    An Iceberg location (``iceberg:catalog.toml``) is not a SQL engine: sync and status
    route it to targets/iceberg before they get here; other commands refuse it.
    """
    from topoff.targets.iceberg import is_iceberg

    if is_iceberg(location):
        raise TargetError(f"{location}: this command does not work on an Iceberg replica yet",
                          hint="topoff sync and topoff status do; see docs/iceberg.md")
    path = duckdb_path(location)
    if path is None:
        from topoff.targets.postgres import PostgresTarget

        try:
            return PostgresTarget(location)
        except TargetError as e:
            if "database does not exist" in e.message:
                e.hint = ("create it first (`createdb NAME`, or CREATE DATABASE as a role that "
                          "may), or give the name of an existing database")
            raise
    from topoff.targets.duckdb import DuckDBTarget

    try:
        return DuckDBTarget(path, create, memory_limit)
    except TargetError as e:
        if "lock" in e.message.lower():  # another process has the file open
            raise LockedError(e.message, hint=e.hint) from None
        raise
