"""An order-independent content hash of rows that PostgreSQL and DuckDB compute alike.

Each row becomes a canonical text (one canonical expression per column, joined by the unit
separator, NULL written as the record separator); the hash of a set of rows is the sum of
the first 60 bits of each row text's md5, plus the row count. Order does not matter, any
changed, added or removed row changes the sum (with probability 1 - 2^-60), and both
engines can compute it where the data lives (after data-diff's checksum).

Two profiles exist for PostgreSQL: ``exact`` (a value's own text, for comparisons between
PostgreSQL databases and the hashes in manifests) and ``duckdb`` (the form the DuckDB
target keeps, e.g. an unconstrained numeric compared as a double) so that ``verify`` can
hash the source the way the DuckDB replica holds it.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from topoff.dataset.manifest import Column
from topoff.pgtypes import Family, family

UNIT_SEP = "\x1f"
NULL_MARK = "\x1e"
#: element families that the DuckDB target keeps as LIST (others as the array's text)
DUCKDB_LIST_ELEMENTS = frozenset({"int", "text", "enum", "bool"})
_FLOAT_FMT = "9.99999999999999EEEE"


def _pg_float(expr: sql.Composable) -> sql.Composable:
    # 15 significant digits in C's %.14e form, as DuckDB's printf('%.14e') writes them
    return sql.SQL(
        "CASE WHEN {e} = 'NaN' THEN 'nan' WHEN {e} = 'Infinity' THEN 'inf' "
        "WHEN {e} = '-Infinity' THEN '-inf' ELSE trim(to_char({e}, {fmt})) END"
    ).format(e=sql.SQL("({})::float8").format(expr), fmt=sql.Literal(_FLOAT_FMT))


def pg_value(col: sql.Composable, fam: Family, profile: str = "exact") -> sql.Composable:
    """Canonical text of one PostgreSQL column value (NULL stays NULL)."""
    k = fam.kind
    if k in ("timestamptz", "timestamp"):
        return sql.SQL(
            "CASE WHEN isfinite({c}) THEN (extract(epoch FROM {c}) * 1000000)::bigint::text "
            "ELSE {c}::text END").format(c=col)
    if k == "bytea":
        return sql.SQL("encode({}, 'hex')").format(col)
    if profile == "duckdb":
        if k in ("float", "numeric_any"):
            return _pg_float(col)
        if k == "interval":
            return _pg_float(sql.SQL("extract(epoch FROM {})").format(col))
        if k == "array" and fam.element and fam.element.kind in DUCKDB_LIST_ELEMENTS:
            return sql.SQL("array_to_json({})::text").format(col)
        if k == "other":
            # DuckDB keeps the text COPY wrote (the type's output function); a cast to text
            # can differ from it (inet: '::1'::inet::text is '::1/128'), concat() cannot
            return sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE concat({c}) END").format(
                c=col)
    return sql.SQL("{}::text").format(col)


def duckdb_value(col: str, fam: Family) -> str:
    """Canonical text of one DuckDB column value, for a column loaded by the DuckDB target."""
    k = fam.kind
    if k in ("timestamptz", "timestamp"):
        return f"CASE WHEN isfinite({col}) THEN epoch_us({col})::VARCHAR ELSE {col}::VARCHAR END"
    if k == "bytea":
        return f"lower(hex({col}))"
    if k in ("float", "numeric_any"):
        return _duck_float(col)
    if k == "interval":
        return _duck_float(f"epoch({col})")
    if k == "bpchar":
        return f"rtrim({col}, ' ')"
    if k == "array" and fam.element and fam.element.kind in DUCKDB_LIST_ELEMENTS:
        return f"to_json({col})::VARCHAR"
    return f"{col}::VARCHAR"


def _duck_float(expr: str) -> str:
    e = f"({expr})::DOUBLE"
    return (f"CASE WHEN isnan({e}) THEN 'nan' WHEN isinf({e}) AND {e} > 0 THEN 'inf' "
            f"WHEN isinf({e}) THEN '-inf' ELSE printf('%.14e', {e}) END")


def duck_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pg_hash_sum(columns: Sequence[Column], profile: str = "exact",
                alias: str | None = None) -> sql.Composable:
    """The hash (as text) of the rows, for a select list."""
    parts = []
    for c in columns:
        ident = sql.Identifier(alias, c.name) if alias else sql.Identifier(c.name)
        parts.append(sql.SQL("coalesce({}, {})").format(
            pg_value(ident, family(c.type, c.enum), profile), sql.Literal(NULL_MARK)))
    row = sql.SQL("concat_ws({}, {})").format(sql.Literal(UNIT_SEP), sql.SQL(", ").join(parts))
    return sql.SQL(
        "coalesce(sum(('x' || substr(md5({}), 1, 15))::bit(60)::bigint), 0)::text").format(row)


def pg_row_hash(columns: Sequence[Column], profile: str = "exact",
                alias: str | None = None) -> sql.Composable:
    """``count(*), hash`` select-list items for the given columns (hash as text)."""
    return sql.SQL("count(*), {}").format(pg_hash_sum(columns, profile, alias))


def duckdb_row_hash(columns: Sequence[Column]) -> str:
    parts = [f"coalesce({duckdb_value(duck_ident(c.name), family(c.type, c.enum))}, chr(30))"
             for c in columns]
    row = f"concat_ws(chr(31), {', '.join(parts)})"
    return (f"count(*), coalesce(sum(('0x' || substr(md5({row}), 1, 15))::BIGINT), 0)::VARCHAR")
