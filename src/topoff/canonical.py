"""An order-independent content hash of rows that PostgreSQL and DuckDB compute alike.

Each row becomes a canonical text (one canonical expression per column, joined by the unit
separator U+001F, NULL written as the record separator U+001E); inside a value that may hold
any character, U+001D, U+001E and U+001F are each written after an escaping U+001D, so no
value's text is NULL's or holds a separator, and two different rows never give one text
(values without these characters, nearly all, are written as they are: hashes stored before
the escaping stay valid for them). The hash of a set of rows is the sum of
the first 60 bits of each row text's md5, plus the row count. Order does not matter, any
changed, added or removed row changes the sum (with probability 1 - 2^-60), and both
engines can compute it where the data lives (after data-diff's checksum).

Two profiles exist for PostgreSQL: ``exact`` (a value's own text, for comparisons between
PostgreSQL databases and the hashes in manifests) and ``duckdb`` (a spelling DuckDB can
compute from the value it holds) so that ``verify`` can hash the source the way the DuckDB
replica holds it. Both are exact: every value PostgreSQL and the DuckDB replica can tell
apart gives a different text (floats by 17 significant digits, intervals by
months, days and microseconds, dates by their day number, arrays by PostgreSQL's text).
Types without a DuckDB counterpart are compared by their output function's text, which is
what COPY writes; that text is the value as a replica receives it (an XML declaration,
which xml_out drops, is not part of it).
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from topoff.dataset.manifest import Column
from topoff.pgtypes import Family, family

UNIT_SEP = "\x1f"
NULL_MARK = "\x1e"
ESCAPE = "\x1d"
#: families whose canonical text may hold any character, and so is escaped (the others are
#: digits, signs, hex, spaces and letters of the types' own output)
FREE_TEXT = frozenset({"text", "bpchar", "json", "enum", "other", "array"})
#: element families that the DuckDB target keeps as LIST (others as the array's text)
DUCKDB_LIST_ELEMENTS = frozenset({"int", "text", "enum", "bool"})


#: 17 significant digits tell every double apart; both engines round the exact binary
#: value to them correctly (C's %.16e), where shortest round-trip forms can differ
_FLOAT_FMT = "9.9999999999999999EEEE"


#: the first microsecond since 1970 that a bigint cannot count (an untyped literal: it takes
#: the column's type, timestamp or timestamptz, both counted from 1970-01-01 00:00 UTC)
_FAR = "294247-01-10 04:00:54.775807+00"


def _pg_float(col: sql.Composable) -> sql.Composable:
    return sql.SQL(
        "CASE WHEN {e} = 'NaN' THEN 'nan' WHEN {e} = 'Infinity' THEN 'inf' "
        "WHEN {e} = '-Infinity' THEN '-inf' ELSE trim(to_char({e}, {fmt})) END"
    ).format(e=sql.SQL("({})::float8").format(col), fmt=sql.Literal(_FLOAT_FMT))


def _duck_float(col: str) -> str:
    e = f"CAST({col} AS DOUBLE)"  # a real widens to a double exactly, on both sides
    return (f"CASE WHEN isnan({e}) THEN 'nan' WHEN isinf({e}) AND {e} > 0 THEN 'inf' "
            f"WHEN isinf({e}) THEN '-inf' ELSE printf('%.16e', {e}) END")


def _pg_interval(col: sql.Composable) -> sql.Composable:
    # months, days and microseconds: the three parts PostgreSQL and DuckDB both keep
    return sql.SQL(
        "(extract(year FROM {c}) * 12 + extract(month FROM {c}))::bigint::text || ' ' || "
        "extract(day FROM {c})::bigint::text || ' ' || (extract(hour FROM {c}) * 3600000000 "
        "+ extract(minute FROM {c}) * 60000000 + extract(microseconds FROM {c}))::bigint::text"
    ).format(c=col)


def pg_escaped(text: sql.Composable) -> sql.Composable:
    """``text`` with U+001D, U+001E and U+001F each after an escaping U+001D."""
    for ch in (ESCAPE, NULL_MARK, UNIT_SEP):
        text = sql.SQL("replace({}, {}, {})").format(text, sql.Literal(ch),
                                                     sql.Literal(ESCAPE + ch))
    return text


def pg_value(col: sql.Composable, fam: Family, profile: str = "exact") -> sql.Composable:
    """Canonical text of one PostgreSQL column value (NULL stays NULL)."""
    text = _pg_text(col, fam, profile)
    return pg_escaped(text) if fam.kind in FREE_TEXT else text


def _pg_text(col: sql.Composable, fam: Family, profile: str) -> sql.Composable:
    k = fam.kind
    if k in ("timestamptz", "timestamp"):
        # microseconds since 1970; past 294247-01-10 (PostgreSQL goes on to 294276) they
        # pass a bigint, and extract(epoch) rounds: days and the time of day, in numeric
        utc = sql.SQL("({} AT TIME ZONE 'UTC')").format(col) if k == "timestamptz" else col
        return sql.SQL(
            "CASE WHEN NOT isfinite({c}) THEN {c}::text WHEN {c} < {far} "
            "THEN (extract(epoch FROM {c}) * 1000000)::bigint::text "
            "ELSE (({u}::date - date '1970-01-01')::numeric * 86400000000 "
            "+ round(extract(epoch FROM {u}::time) * 1000000))::text END"
        ).format(c=col, u=utc, far=sql.Literal(_FAR))
    if k == "bytea":
        return sql.SQL("encode({}, 'hex')").format(col)
    if k == "other":
        # what COPY writes (the type's output function): a cast to text can differ from it
        # (inet: '::1'::inet::text is '::1/128'; xml: the cast keeps the XML declaration,
        # which COPY drops). num_nulls: a composite of NULL fields IS NULL, but is a value.
        return sql.SQL("CASE WHEN num_nulls({c}) = 1 THEN NULL ELSE concat({c}) END").format(
            c=col)
    if profile == "duckdb":
        if k == "float":
            return _pg_float(col)
        if k == "interval":
            return _pg_interval(col)
        if k == "date":
            return sql.SQL("CASE WHEN isfinite({c}) THEN ({c} - date '1970-01-01')::text "
                           "ELSE {c}::text END").format(c=col)
    return sql.SQL("{}::text").format(col)


def duckdb_escaped(text: str) -> str:
    """SQL: ``text`` escaped as :func:`pg_escaped` does."""
    for ch in (29, 30, 31):
        text = f"replace({text}, chr({ch}), chr(29) || chr({ch}))"
    return text


def duckdb_value(col: str, fam: Family) -> str:
    """Canonical text of one DuckDB column value, for a column loaded by the DuckDB target
    (``fam``: the family of the column as the replica stores it, see stored_columns)."""
    text = _duckdb_text(col, fam)
    return duckdb_escaped(text) if fam.kind in FREE_TEXT else text


def _duckdb_text(col: str, fam: Family) -> str:
    k = fam.kind
    if k in ("timestamptz", "timestamp"):
        return f"CASE WHEN isfinite({col}) THEN epoch_us({col})::VARCHAR ELSE {col}::VARCHAR END"
    if k == "date":
        return (f"CASE WHEN isfinite({col}) THEN CAST({col} - DATE '1970-01-01' AS VARCHAR) "
                f"ELSE {col}::VARCHAR END")
    if k == "bytea":
        return f"lower(hex({col}))"
    if k == "float":
        return _duck_float(col)
    if k == "interval":
        return (f"CAST(datepart('year', {col}) * 12 + datepart('month', {col}) AS VARCHAR) || ' ' "
                f"|| CAST(datepart('day', {col}) AS VARCHAR) || ' ' || CAST("
                f"datepart('hour', {col}) * 3600000000 + datepart('minute', {col}) * 60000000 "
                f"+ datepart('microseconds', {col}) AS VARCHAR)")
    if k == "bpchar":
        return f"rtrim({col}, ' ')"
    if k == "numeric" and fam.precision and fam.scale == fam.precision:
        # DuckDB prints a DECIMAL(p,p) without PostgreSQL's leading zero ('.5', '-.5')
        return (f"CASE WHEN {col} < 0 THEN '-0' || substr({col}::VARCHAR, 2) "
                f"ELSE '0' || {col}::VARCHAR END")
    if k == "array" and fam.element and fam.element.kind in DUCKDB_LIST_ELEMENTS:
        return pg_array_text(col, fam.element)
    return f"{col}::VARCHAR"


#: one element of a box[] as array_out writes it: as topoff_pg_quote, quoted when it holds
#: the array's delimiter ``;`` (a box's own commas are not quoted)
_QUOTE_BOX = r"""CASE WHEN x IS NULL THEN 'NULL'
     WHEN x = '' OR upper(x) = 'NULL' OR regexp_matches(x, '[{}";\\\s\v]')
     THEN '"' || replace(replace(x, '\', '\\'), '"', '\"') || '"'
     ELSE x END"""


def pg_array_text(expr: str, element: Family, delimiter: str = ",") -> str:
    """A DuckDB list as PostgreSQL's array text (what array_out writes, its elements
    separated by ``delimiter``: ``;`` for box[]); needs the topoff_pg_quote macro of the
    DuckDB target."""
    if element.kind == "bool":
        item = "CASE WHEN x THEN 't' WHEN NOT x THEN 'f' END"
    elif element.kind == "int":
        item = "CAST(x AS VARCHAR)"
    else:
        item = "x"
    quoted = f"topoff_pg_quote({item})"
    if delimiter == ";":  # box[]: elements of text
        quoted = _QUOTE_BOX
    return (f"CASE WHEN {expr} IS NULL THEN NULL ELSE '{{' || array_to_string("
            f"list_transform({expr}, lambda x: {quoted}), '{delimiter}') || '}}' END")


def duck_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def case_twin(names: Sequence[str], name: str) -> str | None:
    """The first of ``names`` that DuckDB takes for ``name`` (its identifiers ignore the
    case of ASCII letters: "A" and "a" are one column), or None."""
    folded = name.encode().lower()
    return next((n for n in names if n.encode().lower() == folded), None)


def pg_hash_sum(columns: Sequence[Column], profile: str = "exact",
                alias: str | None = None) -> sql.Composable:
    """The hash (as text) of the rows, for a select list."""
    parts: list[sql.Composable] = []
    for c in columns:
        ident = sql.Identifier(alias, c.name) if alias else sql.Identifier(c.name)
        parts.append(sql.SQL("coalesce({}, {})").format(
            pg_value(ident, family(c.type, c.enum), profile), sql.Literal(NULL_MARK)))
    # no column compared (an Iceberg table of float arrays only): each row's text is ''
    row = sql.SQL("concat_ws({}, {})").format(sql.Literal(UNIT_SEP),
                                              sql.SQL(", ").join(parts or [sql.Literal("")]))
    return sql.SQL(
        "coalesce(sum(('x' || substr(md5({}), 1, 15))::bit(60)::bigint), 0)::text").format(row)


def pg_row_hash(columns: Sequence[Column], profile: str = "exact",
                alias: str | None = None) -> sql.Composable:
    """``count(*), hash`` select-list items for the given columns (hash as text)."""
    return sql.SQL("count(*), {}").format(pg_hash_sum(columns, profile, alias))


def duckdb_row_hash(columns: Sequence[Column]) -> str:
    parts = [f"coalesce({duckdb_value(duck_ident(c.name), family(c.type, c.enum))}, chr(30))"
             for c in columns]
    row = f"concat_ws(chr(31), {', '.join(parts) or repr('')})"
    return (f"count(*), coalesce(sum(('0x' || substr(md5({row}), 1, 15))::BIGINT), 0)::VARCHAR")
