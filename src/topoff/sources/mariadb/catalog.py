"""What a MariaDB database holds: base tables, their columns (mapped), primary keys, sizes.

Everything comes from information_schema, which shows a user only what it may SELECT.
MariaDB's JSON is a LONGTEXT with a ``json_valid(`col`)`` check: such columns are found in
information_schema.CHECK_CONSTRAINTS and mapped to JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mysql.connector import errors as my_errors

from topoff.errors import SourceError
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.types import MariaColumn, map_column, quote_ident

_COLUMNS = """
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_MAXIMUM_LENGTH,
       NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, EXTRA, CHARACTER_SET_NAME,
       COLLATION_NAME
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY ORDINAL_POSITION
"""
_PRIMARY = """
SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY'
ORDER BY ORDINAL_POSITION
"""
_PREFIXES = """
SELECT COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY'
  AND SUB_PART IS NOT NULL
"""
_TABLES = """
SELECT TABLE_NAME, TABLE_ROWS, ENGINE FROM information_schema.TABLES
WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'
ORDER BY TABLE_NAME
"""
_DENIED = (1142, 1143)  # ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR
_CHECKS = """
SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s
"""


@dataclass(frozen=True)
class MariaTable:
    schema: str
    name: str
    columns: list[MariaColumn]
    primary_key: list[str]
    estimated_rows: int
    engine: str
    #: (column, length) of each primary key column indexed by its first characters (bytes,
    #: for a binary column) only: ``PRIMARY KEY (k(10))``
    prefixes: tuple[tuple[str, int], ...] = ()

    @property
    def qualified(self) -> str:
        """`schema`.`table`, quoted for SQL."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def column(self, name: str) -> MariaColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


KEY_HINT = ("set key = [...] to columns compared as bytes (numbers, times, binary, CHAR "
            "under a _bin collation, VARCHAR under a _nopad_bin or MySQL's _0900_bin one), or "
            "to this key if its values are never respelled; or use method = \"snapshot\"")


def inexact_key(table: MariaTable, key: Sequence[str]) -> str | None:
    """Why ``key`` holds values a replica, comparing bytes, tells apart as one key of the
    source (its collation folds case or accents, or ignores trailing spaces), or None.
    CHAR drops trailing spaces as it is read, so a PAD SPACE binary collation is exact
    there; ENUM and SET compare by label number. A primary key column indexed by a prefix
    holds one row for all values sharing it, whatever their collation."""
    if prefix := _prefix(table, key):
        name, length, unit = prefix
        return (f"key column {name!r} is indexed by its first {length} {unit} only "
                f"(PRIMARY KEY ({name}({length}))): values that share them are one key")
    for name in key:
        c = table.column(name)
        coll = c.collation
        if not coll or coll == "binary" or c.logical.get("kind") in ("enum", "set"):
            continue
        # NO PAD: MariaDB's _nopad_ collations, MySQL 8's _0900_ ones (utf8mb4_0900_bin)
        nopad = "_nopad_" in coll or "_0900_" in coll
        if coll.endswith("_bin") and (nopad or c.native.lower().startswith("char")):
            continue
        fold = ("'a' and 'a '" if coll.endswith("_bin") else "'abc' and 'ABC'")
        return f"key column {name!r} is {c.native} under collation {coll} ({fold} are one key)"
    return None


def _prefix(table: MariaTable, key: Sequence[str]) -> tuple[str, int, str] | None:
    """The first column of ``key`` (the primary key) indexed by a prefix only: its name,
    the prefix's length and its unit (characters, bytes for a binary column), or None."""
    prefixes = dict(table.prefixes) if list(key) == table.primary_key else {}
    for name in key:
        if name in prefixes:
            coll = table.column(name).collation
            return name, prefixes[name], ("characters" if coll and coll != "binary"
                                          else "bytes")
    return None


def key_refusal(table: MariaTable, key: Sequence[str], replicas: str
                ) -> tuple[str, str] | None:
    """The message and hint refusing ``key`` for a merge by key (see :func:`inexact_key`),
    or None; ``replicas``: where a merge would keep an old row (``the replica``)."""
    why = inexact_key(table, key)
    if why is None:
        return None
    prefix = _prefix(table, key)
    if prefix is None:
        return (f"{why}; a key respelled on the source would stay in {replicas} beside the "
                "new one", KEY_HINT)
    name, length, unit = prefix
    return (f"{why}; a value written over one that shares them would stay in {replicas} "
            "beside it", f"set key = [...] to columns the primary key holds whole, or to "
            f"this key if no value of {name!r} is ever written over one sharing its first "
            f"{length} {unit}; or use method = \"snapshot\"")


def _rows(conn: Any, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return [tuple(_text(v) for v in r) for r in cur.fetchall()]
    except my_errors.Error as e:
        raise SourceError(f"cannot read the catalog: {e.msg}",
                          hint="the user needs SELECT on the exported tables") from None
    finally:
        cur.close()


def _text(v: Any) -> Any:
    return v.decode("utf-8") if isinstance(v, bytes | bytearray) else v


def _every_column_readable(conn: Any, schema: str, table: str, shown: int) -> None:
    """SourceError when the user may SELECT only some columns (column privileges):
    information_schema hides the others, which a dataset or replica would silently lack."""
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT * FROM {quote_ident(schema)}.{quote_ident(table)} LIMIT 0")
        cur.fetchall()
    except my_errors.Error as e:
        if e.errno not in _DENIED:
            raise read_failed(f"reading {schema}.{table}", e,
                              hint="check that the user may SELECT it") from None
        raise SourceError(f"the source user may read only some columns of {schema}.{table} "
                          f"(column privileges; {shown} shown): the others would be left "
                          "out", hint=f"GRANT SELECT ON {quote_ident(schema)}."
                          f"{quote_ident(table)} to the user; leave columns out with "
                          '"private" (export) or exclude (replicate)') from None
    finally:
        cur.close()


def json_columns(conn: Any, schema: str, table: str) -> frozenset[str]:
    """Columns of ``table`` with MariaDB's JSON check (``json_valid(`name`)``)."""
    try:
        checks = _rows(conn, _CHECKS, (schema, table))
    except SourceError:  # MySQL < 8.0.16 and MariaDB < 10.2 have no CHECK_CONSTRAINTS
        return frozenset()
    found = set()
    for (clause,) in checks:
        text = str(clause).strip()
        if text.lower().startswith("json_valid(`") and text.endswith("`)"):
            found.add(text[len("json_valid(`"):-2].replace("``", "`"))
    return frozenset(found)


def list_tables(conn: Any, schema: str) -> list[tuple[str, int]]:
    """(name, estimated rows) of every base table in ``schema``."""
    return [(str(n), int(r or 0)) for n, r, _e in _rows(conn, _TABLES, (schema,))]


def read_table(conn: Any, schema: str, table: str) -> MariaTable:
    """The table's columns (mapped), primary key and estimated size; SourceError if absent."""
    keys = ("COLUMN_NAME", "DATA_TYPE", "COLUMN_TYPE", "IS_NULLABLE",
            "CHARACTER_MAXIMUM_LENGTH", "NUMERIC_PRECISION", "NUMERIC_SCALE",
            "DATETIME_PRECISION", "EXTRA", "CHARACTER_SET_NAME", "COLLATION_NAME")
    rows = _rows(conn, _COLUMNS, (schema, table))
    if not rows:
        raise SourceError(f"table {schema}.{table} not found on the MariaDB source",
                          hint="check the table name and that the user may SELECT it")
    jsons = json_columns(conn, schema, table)
    columns = [map_column(dict(zip(keys, r, strict=True)), jsons) for r in rows]
    # a system-versioned table's key holds its hidden ROW END column, which COLUMNS does
    # not list (nor SELECT * read): among the current rows, the rest is the key
    names = {c.name for c in columns}
    pk = [k for r in _rows(conn, _PRIMARY, (schema, table)) if (k := str(r[0])) in names]
    size = _rows(conn, "SELECT TABLE_ROWS, ENGINE FROM information_schema.TABLES "
                       "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (schema, table))
    est, engine = size[0] if size else (0, "")
    _every_column_readable(conn, schema, table, len(columns))
    prefixes = tuple((str(n), int(p)) for n, p in _rows(conn, _PREFIXES, (schema, table)))
    return MariaTable(schema=schema, name=table, columns=columns, primary_key=pk,
                      estimated_rows=int(est or 0), engine=str(engine or ""),
                      prefixes=prefixes)
