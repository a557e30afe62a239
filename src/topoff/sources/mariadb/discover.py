"""What a MariaDB (or MySQL) source holds, as ``topoff init``, ``topoff export full``
without ``--config`` and ``topoff check-config`` see it: :class:`FoundTable` entries, as
:mod:`topoff.sources.discover` gives for PostgreSQL.

A MariaDB database plays the part of a PostgreSQL schema: a table is named
``database.table``, and ``--schema NAME`` picks databases. Without it, the URL's database
is read (every database the user may see that is not a system one when the URL names
none). Base tables and system-versioned tables are listed with their columns as
:mod:`topoff.sources.mariadb.types` maps them, their primary key, the columns that lead an
index and the table's estimated rows; views apart (exported only when a configuration
names them); sequences not at all. information_schema shows a user only what it may
SELECT; a table whose columns are only partly readable (column privileges) is listed as
not readable. A primary key under a collation that folds case, accents or trailing spaces
counts as folding (replicas compare bytes: :func:`topoff.sources.mariadb.catalog.
inexact_key`), which keeps such a table from being suggested as an upsert.
"""

from __future__ import annotations

import difflib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from topoff.errors import ConfigError, SourceError
from topoff.sources.discover import FoundTable
from topoff.sources.mariadb.catalog import _rows, inexact_key, read_table

_SYSTEM = ("information_schema", "mysql", "performance_schema", "sys")
_DATABASES = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME"
_TABLES = """
SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES
WHERE TABLE_SCHEMA = %s AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW')
ORDER BY TABLE_NAME
"""
_LEADING = """
SELECT DISTINCT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND SEQ_IN_INDEX = 1
"""


def databases(conn: Any) -> list[str]:
    """The databases the user may see, system ones left out."""
    return [str(n) for (n,) in _rows(conn, _DATABASES, ()) if str(n).lower() not in _SYSTEM]


def _chosen(conn: Any, only: list[str] | None, current: str) -> list[str]:
    available = databases(conn)
    for name in only or []:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=1)
            raise ConfigError(f"database {name!r} does not exist on the MariaDB source, or "
                              "the user may see nothing in it"
                              + (f" (did you mean {close[0]!r}?)" if close else ""),
                              hint=f"databases: {', '.join(available) or '(none)'}")
    if only:
        return list(dict.fromkeys(only))
    return [current] if current else available


def _table(conn: Any, schema: str, name: str, kind: str, leading: set[str]) -> FoundTable:
    relkind = "v" if kind == "VIEW" else "r"
    try:
        mt = read_table(conn, schema, name)
    except SourceError:  # columns the user may not read, a view that no longer resolves
        return FoundTable(schema, name, relkind, -1.0, False)
    found = FoundTable(schema, name, relkind, float(mt.estimated_rows), True,
                       columns=[(c.name, c.type) for c in mt.columns],
                       primary_key=list(mt.primary_key),
                       indexed={c for c in leading if any(m.name == c for m in mt.columns)},
                       natives={c.name: c.native for c in mt.columns})
    if mt.primary_key and inexact_key(mt, mt.primary_key) is not None:
        found.folding = set(mt.primary_key)
    return found


def discover(conn: Any, only: list[str] | None, current: str,
             include_views: bool = True) -> list[FoundTable]:
    """The tables (and views) of the chosen databases (see above), in name order."""
    out = []
    for schema in _chosen(conn, only, current):
        leading: dict[str, set[str]] = {}
        for table, column in _rows(conn, _LEADING, (schema,)):
            leading.setdefault(str(table), set()).add(str(column))
        for name, kind in _rows(conn, _TABLES, (schema,)):
            if kind == "VIEW" and not include_views:
                continue
            out.append(_table(conn, schema, str(name), str(kind),
                              leading.get(str(name), set())))
    return out


def read_source(url: str, allow_primary: bool, only: list[str] | None = None,
                application_name: str = "topoff init") -> tuple[str, list[FoundTable]]:
    """The database's name and its tables, read as an export reads: from a replica unless
    ``allow_primary``, in one consistent snapshot."""
    from topoff.sources.mariadb.source import MariaSource

    with MariaSource(url, allow_primary, application_name) as source:
        info = source.open()
        found = discover(source.conn, only, source.target.database)
        return info.database or ",".join(sorted({t.schema for t in found})), found


def without_password(url: str) -> str:
    """``url`` as given, less the password of its user part (a config file names the
    source without it: the client reads MYSQL_PWD or an option file)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
