"""PostgreSQL column types sorted into families that targets and hashes treat alike.

The input is a column's type as ``format_type()`` prints it (domains resolved), plus its
enum labels when it is an enum. Everything that maps types (the DuckDB target, the
canonical row hash) starts from :func:`family`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMERIC = re.compile(r"^numeric\((\d+),\s*(-?\d+)\)$|^numeric\((\d+)\)$")
_TS = re.compile(r"^timestamp(\(\d\))? (with|without) time zone$")
_TIME = re.compile(r"^time(\(\d\))? (with|without) time zone$")

INTS = {"smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT", "oid": "BIGINT"}
FLOATS = {"real": "FLOAT", "double precision": "DOUBLE"}
TEXTS = ("text", "character varying", "name", "citext", '"char"')


@dataclass(frozen=True)
class Family:
    """What kind of value a column holds; ``element`` is set for one-dimensional arrays."""

    kind: str  # int float numeric numeric_any bool text bpchar json timestamptz timestamp
    #            date time timetz interval bytea uuid enum other array
    pg_type: str
    precision: int | None = None
    scale: int | None = None
    element: Family | None = None


def family(pg_type: str, enum: list[str] | None = None) -> Family:
    t = pg_type.strip()
    if t.endswith("[]"):
        inner = t[:-2]
        if inner.endswith("[]"):  # arrays of arrays are not distinguished by PostgreSQL
            return Family("other", t)
        return Family("array", t, element=family(inner, enum))
    if enum is not None:
        return Family("enum", t)
    if t in INTS:
        return Family("int", t)
    if t in FLOATS:
        return Family("float", t)
    if t == "numeric":
        return Family("numeric_any", t)
    m = _NUMERIC.match(t)
    if m:
        p = int(m.group(1) or m.group(3))
        s = int(m.group(2) or 0) if m.group(1) else 0
        return Family("numeric", t, precision=p, scale=s) if p <= 38 and 0 <= s <= p else \
            Family("numeric_any", t)
    if t == "boolean":
        return Family("bool", t)
    if t in TEXTS or t.startswith("character varying("):
        return Family("text", t)
    if t == "character" or t.startswith("character("):
        return Family("bpchar", t)
    if t in ("json", "jsonb"):
        return Family("json", t)
    m = _TS.match(t)
    if m:
        return Family("timestamptz" if m.group(2) == "with" else "timestamp", t)
    m = _TIME.match(t)
    if m:
        return Family("timetz" if m.group(2) == "with" else "time", t)
    if t == "date":
        return Family("date", t)
    if t == "interval" or t.startswith("interval"):
        return Family("interval", t)
    if t == "bytea":
        return Family("bytea", t)
    if t == "uuid":
        return Family("uuid", t)
    return Family("other", t)


def is_time_cursor(pg_type: str) -> bool:
    return family(pg_type).kind in ("timestamptz", "timestamp", "date")


# A type name as format_type() prints it: words, optional schema qualification, optional
# (precision[, scale]), optional "with/without time zone", optional [] suffixes.
_SAFE_TYPE = re.compile(
    r'^(?:"[A-Za-z_][A-Za-z0-9_ ]*"|[A-Za-z_][A-Za-z0-9_]*)'
    r'(?:\.(?:"[A-Za-z_][A-Za-z0-9_ ]*"|[A-Za-z_][A-Za-z0-9_]*))?'
    r'(?: [a-z]+)*(?:\(\d+(?:,\s*-?\d+)?\))?(?: (?:with|without) time zone)?(?:\[\])*$'
)


def is_safe_type_name(pg_type: str) -> bool:
    """Whether a type name read from a manifest may be written into DDL as it is.

    Datasets can come from anywhere; a manifest is data and must never inject SQL.
    """
    return bool(_SAFE_TYPE.match(pg_type)) and ";" not in pg_type and "--" not in pg_type
