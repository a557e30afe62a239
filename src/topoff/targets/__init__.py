"""Replicas a dataset is synced into: a PostgreSQL database or a DuckDB file."""

from __future__ import annotations

from pathlib import Path

from topoff.errors import TargetError
from topoff.targets.base import Capabilities, ReplicaState, TableDef, TableRef, Target

__all__ = ["Capabilities", "ReplicaState", "TableDef", "TableRef", "Target", "open_target",
           "target_kind"]


def target_kind(location: str) -> str:
    low = location.lower()
    if low.startswith(("postgresql://", "postgres://")):
        return "postgresql"
    if low.startswith("duckdb://"):
        return "duckdb"
    if "://" in location:
        raise TargetError(f"unsupported replica location {location!r}",
                          hint="use postgresql://user@host/db, or a DuckDB file path such as "
                          "replica.duckdb")
    return "duckdb"


def open_target(location: str, create: bool = True, memory_limit: str | None = None) -> Target:
    """The replica a location names: ``postgresql://...``, or a DuckDB file (the default).

    With ``create`` false (status, verify), a DuckDB file that does not exist is not made:
    the target is empty instead. ``memory_limit``: DuckDB's (see targets.duckdb.resources).
    """
    kind = target_kind(location)
    if kind == "postgresql":
        from topoff.targets.postgres import PostgresTarget

        return PostgresTarget(location)
    from topoff.targets.duckdb import DuckDBTarget

    path = location.removeprefix("duckdb://") if location.lower().startswith("duckdb://") \
        else location
    return DuckDBTarget(Path(path).expanduser(), create, memory_limit)
