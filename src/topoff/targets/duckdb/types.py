"""PostgreSQL types in DuckDB: the column type, and the expression that turns the CSV text
PostgreSQL wrote (COPY, with topoff's session settings) into it.

Every value valid in PostgreSQL either loads exactly or is kept as PostgreSQL's own text;
"checked" reads a text as PostgreSQL's input function does, refusing what it refuses
(checked.py):

| PostgreSQL                              | DuckDB          | how the CSV text is read            |
|-----------------------------------------|-----------------|-------------------------------------|
| smallint, integer, bigint, oid          | SMALLINT, INTEGER, BIGINT | checked                   |
| real, double precision                  | FLOAT, DOUBLE   | checked (NaN, ±Infinity, -0 kept)   |
| numeric(p,s) with p <= 38               | DECIMAL(p,s)    | checked, exact; NaN: see "widened"  |
| numeric (no precision), p > 38, s < 0   | VARCHAR         | checked text, every digit           |
| boolean                                 | BOOLEAN         | checked (t, yes, on, 1 ...)         |
| text, varchar(n), char(n), name, citext | VARCHAR         | checked length (char(n) padded)     |
| jsonb                                   | JSON            | jsonb_out's tokens, cast, as is     |
| json                                    | JSON            | text kept as is; see "widened"      |
| timestamp with time zone                | TIMESTAMPTZ     | checked "... +00" (UTC), BC, ±inf  |
| timestamp without time zone             | TIMESTAMP       | checked, BC and ±infinity kept      |
| date                                    | DATE            | checked, BC and ±infinity kept      |
| time, time with time zone               | TIME, TIMETZ    | checked (24:00:00 kept)             |
| interval                                | INTERVAL        | checked form, cast without "+" signs|
| bytea                                   | BLOB            | unhex of the checked hex form       |
| uuid                                    | UUID            | cast                                |
| enum types                              | VARCHAR         | one of the labels                   |
| 1-D arrays of integers, text, enums,    | INTEGER[],      | parsed from {a,"b c",NULL}; see     |
| boolean                                 | VARCHAR[], ...  | "widened"                           |
| other arrays, multi-dimensional arrays  | VARCHAR         | PostgreSQL's array text             |
| everything else (inet, money, xml, ...) | VARCHAR         | PostgreSQL's text form, checked     |

The DuckDB type follows the column's ``logical`` type (docs/dataset-format.md, "Column
types"), the table above being what the types of a PostgreSQL source give; a source with
other integer widths adds: ``int`` 8 is TINYINT, an unsigned ``int`` goes to the next wider
signed type (8 -> SMALLINT, 16 -> INTEGER, 32 -> BIGINT) and unsigned 64 to UBIGINT;
``set`` and ``bits`` are VARCHAR. The CSV text is read by the column's PostgreSQL ``type``.

PostgreSQL writes a BC date as ``0044-03-15 BC``; DuckDB reads negative years (``-0043``
is 44 BC, as in ISO 8601), so the year is rewritten before the cast.

Widened columns: a few values of a type do not fit the DuckDB type chosen for it: NaN in a
numeric(p,s) (DECIMAL has no NaN), a multi-dimensional value or explicit lower bounds
(``[0:1]={1,2}``) in an array column declared one-dimensional, a lone UTF-16 surrogate
escape in a json value. Before a load, the files are checked for them (only for tables
with such columns); when one is found, the column becomes VARCHAR holding PostgreSQL's
text for every row (existing rows converted exactly, see :func:`stored_as_text`), and stays
so. Nothing is lost and the sync does not stop.

The one value that cannot be kept: a timestamp after 294246 AD (PostgreSQL goes to
294276 AD, DuckDB's TIMESTAMP stops earlier); such a load fails with a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence

from topoff.canonical import DUCKDB_LIST_ELEMENTS, case_twin, duck_ident, pg_array_text
from topoff.dataset.logical import Logical
from topoff.dataset.manifest import Column
from topoff.errors import TargetError
from topoff.pgtypes import Family, family, parse_type
from topoff.targets.duckdb import checked
from topoff.targets.names import fold

#: turns PostgreSQL's array text into a list of strings (quotes, backslashes, NULL in any
#: case), for a text topoff_pg_array_ok accepts (``{1,2`` and ``{a,}`` it does not) and
#: with no white space (PG_TRIMMED_MACRO reads those)
PG_ARRAY_MACRO = r"""
CREATE OR REPLACE TEMP MACRO topoff_pg_array(s) AS
CASE WHEN s IS NULL THEN NULL WHEN s = '{}' THEN []::VARCHAR[] ELSE
  list_transform(regexp_extract_all(s[2:-2], '"(?:[^"\\]|\\.)*"|[^,]+'),
    lambda x: CASE WHEN upper(x) = 'NULL' THEN NULL
                   WHEN starts_with(x, '"') THEN regexp_replace(x[2:-2], '\\(.)', '\1', 'g')
                   ELSE x END)
END
"""
#: topoff_pg_array of a text with white space: around elements it is dropped (array_in)
PG_TRIMMED_MACRO = r"""
CREATE OR REPLACE TEMP MACRO topoff_pg_array_trimmed(s) AS
CASE WHEN s IS NULL THEN NULL
  WHEN regexp_full_match(s, '\{[ \t\n\r\v\f]*\}') THEN []::VARCHAR[] ELSE
  list_transform(list_transform(
    regexp_extract_all(s[2:-2], '[ \t\n\r\v\f]*"(?:[^"\\]|\\.)*"[ \t\n\r\v\f]*|[^,]+'),
    lambda x: trim(x, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13))),
    lambda x: CASE WHEN upper(x) = 'NULL' THEN NULL
                   WHEN starts_with(x, '"') THEN regexp_replace(x[2:-2], '\\(.)', '\1', 'g')
                   ELSE x END)
END
"""
#: one element of an array's text: quoted (white space around it), or unquoted holding
#: something besides white space
PG_ELEMENT_MACRO = r"""
CREATE OR REPLACE TEMP MACRO topoff_pg_element() AS
'([ \t\n\r\v\f]*"([^"\\]|\\.)*"[ \t\n\r\v\f]*|[^{}",\\]*[^{}",\\ \t\n\r\v\f][^{}",\\]*)'
"""
#: whether a text is a one-dimensional array's text (elements: topoff_pg_element)
PG_ARRAY_OK_MACRO = r"""
CREATE OR REPLACE TEMP MACRO topoff_pg_array_ok(s) AS
regexp_full_match(s, '\{(' || topoff_pg_element() || '(,' || topoff_pg_element()
                     || ')*|[ \t\n\r\v\f]*)\}')
"""
#: one array element as array_out writes it (quoted when empty, NULL-like, or holding
#: braces, quotes, commas, backslashes or white space)
PG_QUOTE_MACRO = r"""
CREATE OR REPLACE TEMP MACRO topoff_pg_quote(x) AS
CASE WHEN x IS NULL THEN 'NULL'
     WHEN x = '' OR upper(x) = 'NULL' OR regexp_matches(x, '[{}",\\\s\v]')
     THEN '"' || replace(replace(x, '\', '\\'), '"', '\"') || '"'
     ELSE x END
"""
MACROS = (PG_ELEMENT_MACRO, PG_ARRAY_OK_MACRO, PG_ARRAY_MACRO, PG_TRIMMED_MACRO,
          PG_QUOTE_MACRO)
MALFORMED_ARRAY = "malformed array literal: "


#: DuckDB's integer types by bits; an unsigned one goes to the next wider signed type (an
#: oid stays BIGINT, as replicas made before ``logical`` have it), 64 unsigned to UBIGINT
_INTS = {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}
_WIDER = {8: "SMALLINT", 16: "INTEGER", 32: "BIGINT", 64: "UBIGINT"}
_SIMPLE = {"bool": "BOOLEAN", "json": "JSON", "date": "DATE", "interval": "INTERVAL",
           "bytes": "BLOB", "uuid": "UUID"}


def _scalar(lg: Logical) -> str:
    """The DuckDB type of a logical type (not an array)."""
    k = lg.kind
    if k == "int":
        assert lg.bits is not None
        return (_WIDER if lg.unsigned else _INTS)[lg.bits]
    if k == "float":
        return "FLOAT" if lg.bits == 32 else "DOUBLE"
    if k == "decimal":
        p, s = lg.precision, lg.scale or 0
        return f"DECIMAL({p},{s})" if p is not None and p <= 38 else "VARCHAR"
    if k in ("timestamp", "time"):
        return k.upper() + ("TZ" if lg.zone else "")
    return _SIMPLE.get(k, "VARCHAR")  # text, enum, set, bits, other


def duckdb_type(c: Column) -> str:
    """The DuckDB type a column is created with, from its logical type (the manifest's
    ``logical``, or the one derived from its ``type``)."""
    lg = c.logical
    if lg.kind == "array":
        assert lg.element is not None
        f = family(c.type, c.enum)  # the text form of the elements: parsed as a list
        if f.element is not None and f.element.kind in DUCKDB_LIST_ELEMENTS:
            return _scalar(lg.element) + "[]"
        return "VARCHAR"
    return _scalar(lg)


def _ad_year(text: str) -> str:
    """PostgreSQL's "YYYY-MM-DD... BC" as DuckDB's "-(YYYY-1)-MM-DD..." (1 BC is year 0);
    NULL for a text whose year is no number (checked.datetime refuses it before it reads
    this)."""
    year = f"TRY_CAST(split_part({text}, '-', 1) AS BIGINT) - 1"
    rest = f"substr({text}, strpos({text}, '-'), length({text}) - strpos({text}, '-') - 2)"
    return (f"CASE WHEN ends_with({text}, ' BC') THEN (CASE WHEN {year} = 0 THEN '0000' "
            f"ELSE '-' || CAST({year} AS VARCHAR) END) || {rest} ELSE {text} END")


def read_once(text: str, c: Column, widened: bool = False) -> str | None:
    """What :func:`load_expression` of the column reads several times (a date's or
    timestamp's text as DuckDB reads it), or None: selected once beside the CSV text and
    handed to it as ``once``, the load's statement is a third as long, and DuckDB binds
    it in a third of the time."""
    f = family(c.type, c.enum)
    if widened or duckdb_type(c) == "VARCHAR" or f.kind not in ("date", "timestamp",
                                                                 "timestamptz"):
        return None
    return _ad_year(text)


def load_expression(text: str, c: Column, widened: bool = False,
                    once: str | None = None) -> str:
    """Expression converting the CSV text ``text`` (a quoted VARCHAR column) to the column
    (``widened``: the column is VARCHAR in the replica, see the module's docstring). The
    text is in the form of the column's PostgreSQL ``type``, so that decides how it is read.
    ``once``: a column holding :func:`read_once` of ``text``."""
    f = family(c.type, c.enum)
    target = duckdb_type(c)
    kept_as_text = widened or target == "VARCHAR"
    if f.kind in ("numeric", "numeric_any") and kept_as_text:
        return checked.numeric_text(text, c, f)
    if kept_as_text:  # (an array kept as text is PostgreSQL's text: its elements checked)
        if f.kind in ("text", "bpchar", "enum"):
            return checked.text(text, c, f)
        return checked.form(text, c, f) or text
    if f.kind == "array":
        return f"CAST({_elements(text, c, f, target[:-2])} AS {target})"
    if f.kind == "bytea":
        return checked.bytea(text, c.name)
    if f.kind == "uuid":  # DuckDB reads uuid_in's spellings; its error names no column
        return checked.named_cast(text, "UUID", c.name, f.pg_type)
    if f.kind == "interval":
        return f"CAST(replace({checked.form(text, c, f)}, '+', '') AS INTERVAL)"
    if f.kind in ("date", "timestamp", "timestamptz"):
        return checked.datetime(text, f, once or _ad_year(text), target, c.name)
    if f.kind in ("time", "timetz"):
        return checked.datetime(text, f, text, target, c.name)
    if f.kind == "int":
        return checked.integer(text, target, c.name, f.pg_type)
    if f.kind == "float":
        return checked.floating(text, target, c.name, f.pg_type)
    if f.kind == "bool":
        return checked.boolean(text, c.name)
    if f.kind == "numeric":
        return checked.cast(text, target, c.name, f.pg_type)
    if f.kind == "json":  # jsonb: jsonb_out's tokens (textforms.py), then the JSON cast
        return f"CAST({checked.form(text, c, f) or text} AS {target})"
    return f"CAST({text} AS {target})"


def typed_select(source: str, columns: Sequence[Column], widened: set[str]) -> str:
    """The SELECT of the columns read from the CSV texts of ``source`` (the files'
    ``read_csv``, or a table of texts), each by :func:`load_expression`."""
    taken = {fold(c.name, True) for c in columns}
    exprs, helpers = [], []
    for i, c in enumerate(columns):
        x = duck_ident(c.name)
        once = read_once(x, c, c.name in widened)
        if once is not None:  # beside the texts, under a name none of the columns has
            name = f"topoff_once_{i}"
            while fold(name, True) in taken:
                name += "_"
            taken.add(name)
            helpers.append(f"{once} AS {duck_ident(name)}")
            once = duck_ident(name)
        exprs.append(f"{load_expression(x, c, c.name in widened, once)} AS {x}")
    if helpers:
        source = f"(SELECT *, {', '.join(helpers)} FROM {source})"
    return f"SELECT {', '.join(exprs)} FROM {source}"


#: an array's text as array_out writes it for integers and booleans: read by a cast
_CANONICAL = {"int": r"\{((-?[0-9]+|NULL)(,(-?[0-9]+|NULL))*)?\}",
              "bool": r"\{(([tf]|NULL)(,([tf]|NULL))*)?\}"}


def _elements(text: str, c: Column, f: Family, target: str) -> str:
    """The list of an array's elements, each read by its type's rules (checked.py); the
    text array_out writes (no white space) by a plain cast or transform first."""
    e, element = "topoff_e", f.element
    assert element is not None
    if element.kind == "int":
        one = checked.integer(e, target, c.name, element.pg_type)
    elif element.kind == "bool":
        one = checked.boolean(e, c.name, element.pg_type)
    elif element.kind == "enum" or (element.kind in ("text", "bpchar")
                                    and parse_type(element.pg_type).mods):
        # a label; a varchar(n)'s or char(n)'s n characters at most
        one = checked.text(e, Column(c.name, element.pg_type, enum=c.enum), element)
    else:
        one = e
    items = f"list_transform(topoff_pg_array_trimmed({text}), lambda {e}: {one})"
    slow = checked.checked(text, f"topoff_pg_array_ok({text})", items, c.name, f.pg_type)
    if element.kind in _CANONICAL and element.pg_type != "oid":
        fast, plain = f"regexp_full_match({text}, '{_CANONICAL[element.kind]}')", \
            f"CAST(topoff_pg_array({text}) AS {target}[])"
    else:
        fast = f"(topoff_pg_array_ok({text}) AND NOT regexp_matches({text}, " \
               r"'[ \t\n\r\v\f]'))"
        plain = f"list_transform(topoff_pg_array({text}), lambda {e}: {one})"
    return f"(CASE WHEN {fast} THEN {plain} ELSE {slow} END)"


def misfit_check(text: str, c: Column) -> str | None:
    """A condition true for the CSV texts the column's DuckDB type cannot hold exactly
    (then the column is widened to VARCHAR), or None when every value fits."""
    f = family(c.type, c.enum)
    if f.kind == "numeric":
        return checked.is_nan(text)
    if f.kind == "array" and duckdb_type(c) != "VARCHAR":
        return f"(starts_with({text}, '[') OR starts_with({text}, '{{{{'))"
    if f.kind == "json" and f.pg_type == "json":
        return f"NOT json_valid({text})"
    return None


def stored_as_text(expr: str, c: Column) -> str:
    """A value of the column's DuckDB type as PostgreSQL's text (to widen a column)."""
    f = family(c.type, c.enum)
    if f.kind == "array":
        assert f.element is not None
        return pg_array_text(expr, f.element)
    return f"CAST({expr} AS VARCHAR)"  # DECIMAL(p,s) prints its scale, JSON its text


def columns_ddl(table: str, columns: list[Column]) -> str:
    """The column list of a CREATE TABLE; two names that differ only in the case of ASCII
    letters (one column for DuckDB) are refused."""
    for i, c in enumerate(columns):
        twin = case_twin([d.name for d in columns[:i]], c.name)
        if twin is not None:
            raise TargetError(
                f"{table} has columns {twin!r} and {c.name!r}, one name for DuckDB (it "
                "ignores the case of letters in names)", hint="leave the table out "
                "(--tables), or use a PostgreSQL or Iceberg replica, which keep both")
    return ", ".join(f"{duck_ident(c.name)} {duckdb_type(c)}" for c in columns)
