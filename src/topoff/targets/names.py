"""Schema names a replica's tables may not land in, and names the target takes for one.

A dataset (untrusted: its manifest names its schemas) and a replicate config put tables
into schemas of the target. Some schemas are not theirs to write: ``topoff`` holds the
replica's state (the sync ledger, ``topoff.replicate_tables``), ``_topoff_build`` the
build tables of replicate's parallel first copies, and each engine keeps some for itself
(PostgreSQL every ``pg_*`` and ``information_schema``; DuckDB its catalogs ``system`` and
``temp``, the name a replica file is opened under, and its catalog schemas). DuckDB's names
ignore the case of ASCII letters (``"TOPOFF"`` is ``topoff``), PostgreSQL's quoted names
do not. PostgreSQL keeps 63 bytes of a name and cuts the rest silently: a longer name
(MariaDB's may be 64 characters of up to 4 bytes) is refused, never cut.
"""

from __future__ import annotations

from topoff.targets.base import TableDef

#: the schemas topoff keeps its own objects in, on every SQL target
STATE_SCHEMAS = ("topoff", "_topoff_build")
#: the database name a DuckDB replica file is opened under (targets/duckdb/connect.py)
DUCKDB_CATALOG = "topoff_replica"
DUCKDB_OWN = ("system", "temp", DUCKDB_CATALOG, "information_schema", "pg_catalog")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str, folds_case: bool) -> str:
    """``name`` as the target compares it: DuckDB lowers ASCII letters only."""
    return name.translate(_ASCII_LOWER) if folds_case else name


def reserved_schema(name: str, folds_case: bool) -> str | None:
    """Why no replicated table may land in schema ``name`` (a DuckDB target when
    ``folds_case``, else PostgreSQL), or None."""
    folded = fold(name, folds_case)
    if folded in STATE_SCHEMAS:
        return "topoff keeps its own state there"
    if folds_case and folded in DUCKDB_OWN:
        return "DuckDB keeps that name for itself"
    if not folds_case and (folded == "information_schema" or folded.startswith("pg_")):
        return "PostgreSQL keeps that name for itself"
    return None


def too_long(d: TableDef, limit: int | None) -> tuple[str, str] | None:
    """(what, name) of the first name of ``d`` (schema, table, a column) longer than
    ``limit`` UTF-8 bytes, or None."""
    if limit is None:
        return None
    for what, value in (("schema", d.target.schema), ("table name", d.target.name),
                        *(("column", c.name) for c in d.columns)):
        if len(value.encode()) > limit:
            return what, value
    return None
