"""Target-side pieces every source engine's refresh shares: a cursor value as a literal of
the target column's type, and a cursor range of the target replaced by staged rows (the
refresh of a table without a key)."""

from __future__ import annotations

from dataclasses import replace

from topoff.dataset.manifest import Column
from topoff.pgtypes import parse_type
from topoff.targets.base import TableDef, Target
from topoff.targets.merge import merge


def cast_cursor(engine: Target, table: TableDef, text: str) -> str:
    """A cursor value (PostgreSQL's text of it) as a literal of the target's column type."""
    from topoff.targets.duckdb.types import duckdb_type  # imports duckdb: only for it

    col = next(c for c in table.columns if c.name == table.cursor)
    typ = parse_type(col.type).ddl() if engine.capabilities.native_types else duckdb_type(col)
    return f"CAST({engine.literal(text)} AS {typ})"


def replace_range(engine: Target, table: TableDef, stage: str, columns: list[Column],
                  lo: str | None, hi: str, lo_inclusive: bool) -> int:
    """Delete the target rows whose cursor is in the range, insert the staged ones."""
    c = engine.ident(table.cursor or "")
    cond = f"{c} <= {cast_cursor(engine, table, hi)}"
    if lo is not None:
        cond += f" AND {c} {'>=' if lo_inclusive else '>'} {cast_cursor(engine, table, lo)}"
    engine.execute(f"DELETE FROM {engine.ident(table.target.schema, table.target.name)} "
                   f"WHERE {cond}")
    return merge(engine, replace(table, primary_key=[]), columns, stage, "initial")
