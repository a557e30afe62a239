"""PostgreSQL types in DuckDB: the column type, and the expression that turns the CSV text
PostgreSQL wrote (COPY, with topoff's session settings) into it.

| PostgreSQL                              | DuckDB          | how the CSV text is read            |
|-----------------------------------------|-----------------|-------------------------------------|
| smallint, integer, bigint, oid          | SMALLINT, INTEGER, BIGINT | cast                      |
| real, double precision                  | FLOAT, DOUBLE   | cast (NaN, Infinity kept)           |
| numeric(p,s) with p <= 38               | DECIMAL(p,s)    | cast, exact                         |
| numeric (no precision), p > 38          | DOUBLE          | cast; 15-17 significant digits      |
| boolean                                 | BOOLEAN         | cast of t / f                       |
| text, varchar(n), char(n), name, citext | VARCHAR         | as is (char(n) keeps its padding)   |
| json, jsonb                             | JSON            | cast (validated), text kept as is   |
| timestamp with time zone                | TIMESTAMPTZ     | cast of "... +00" (UTC), infinity   |
| timestamp without time zone             | TIMESTAMP       | cast, infinity kept                 |
| date, time, time with time zone         | DATE, TIME, TIMETZ | cast                             |
| interval                                | INTERVAL        | cast after dropping "+" signs       |
| bytea                                   | BLOB            | unhex of the "\\x..." hex form      |
| uuid                                    | UUID            | cast                                |
| enum types                              | VARCHAR         | the label                           |
| 1-D arrays of integers, text, enums,    | INTEGER[],      | parsed from {a,"b c",NULL}          |
| boolean                                 | VARCHAR[], ...  |                                     |
| other arrays, multi-dimensional arrays  | VARCHAR         | PostgreSQL's array text             |
| everything else (inet, money, xml, ...) | VARCHAR         | PostgreSQL's text form              |
"""

from __future__ import annotations

from topoff.canonical import DUCKDB_LIST_ELEMENTS
from topoff.dataset.manifest import Column
from topoff.pgtypes import FLOATS, INTS, Family, family

#: turns PostgreSQL's array text into a list of strings (quotes, backslashes, NULL)
PG_ARRAY_MACRO = r"""
CREATE OR REPLACE TEMP MACRO topoff_pg_array(s) AS
CASE WHEN s IS NULL THEN NULL WHEN s = '{}' THEN []::VARCHAR[] ELSE
  list_transform(regexp_extract_all(s[2:-2], '"(?:[^"\\]|\\.)*"|[^,]+'),
    lambda x: CASE WHEN x = 'NULL' THEN NULL
                   WHEN starts_with(x, '"') THEN regexp_replace(x[2:-2], '\\(.)', '\1', 'g')
                   ELSE x END)
END
"""


def _scalar(f: Family) -> str:
    k = f.kind
    if k == "int":
        return INTS[f.pg_type]
    if k == "float":
        return FLOATS[f.pg_type]
    if k == "numeric":
        return f"DECIMAL({f.precision},{f.scale})"
    return {
        "numeric_any": "DOUBLE", "bool": "BOOLEAN", "json": "JSON",
        "timestamptz": "TIMESTAMPTZ", "timestamp": "TIMESTAMP", "date": "DATE", "time": "TIME",
        "timetz": "TIMETZ", "interval": "INTERVAL", "bytea": "BLOB", "uuid": "UUID",
    }.get(k, "VARCHAR")


def duckdb_type(c: Column) -> str:
    f = family(c.type, c.enum)
    if f.kind == "array":
        assert f.element is not None
        if f.element.kind in DUCKDB_LIST_ELEMENTS:
            return _scalar(f.element) + "[]"
        return "VARCHAR"
    return _scalar(f)


def load_expression(text: str, c: Column) -> str:
    """Expression converting the CSV text ``text`` (a quoted VARCHAR column) to the column."""
    f = family(c.type, c.enum)
    target = duckdb_type(c)
    if f.kind == "array":
        if target == "VARCHAR":
            return text
        return f"CAST(topoff_pg_array({text}) AS {target})"
    if target == "VARCHAR":
        return text
    if f.kind == "bytea":
        return f"unhex(substr({text}, 3))"
    if f.kind == "interval":
        return f"CAST(replace({text}, '+', '') AS INTERVAL)"
    return f"CAST({text} AS {target})"
