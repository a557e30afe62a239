"""A text in the output form of a type DuckDB or Iceberg replicas hold as text that still
spells no value PostgreSQL takes and writes so (a cidr with bits right of its mask) is
refused by both targets as PostgreSQL's input function refuses it, and its canonical
spelling is loaded: the test cluster's own cast of each text is the oracle. They were
stored as written (a regular expression sees the form, not the value)."""

from __future__ import annotations

import duckdb
import psycopg
import pyarrow as pa

from topoff.dataset.manifest import Column
from topoff.targets.duckdb.checked import NOT_A_VALUE
from topoff.targets.duckdb.types import MACROS, MALFORMED_ARRAY, load_expression, misfit_check
from topoff.targets.duckdb.values import check_values
from topoff.targets.iceberg.table import schema_of
from topoff.targets.iceberg.types import (
    Unparsable,
    ValueError_,
    array_delimiter,
    convert,
    form_of,
)

#: (type, text): each refused or loaded as the test cluster's PostgreSQL does
CASES = [
    ("cidr", "10.0.0.0/8"), ("cidr", "10.0.0.1/8"), ("cidr", "10.128.0.0/9"),
    ("cidr", "10.64.0.0/9"), ("cidr", "::ffff:1.2.3.0/120"), ("cidr", "::ffff:1.2.3.4/120"),
    ("cidr", "2001:db8::/32"), ("cidr", "2001:db8::1/32"), ("cidr", "0.0.0.0/0"),
    ("cidr", "1.0.0.0/0"), ("cidr[]", "{10.0.0.0/8,10.0.0.1/8}"), ("cidr[]", "{10.0.0.0/8}"),
]


def _postgresql(pg: psycopg.Connection, pg_type: str, text: str) -> str:
    """``loaded`` when PostgreSQL reads ``text`` and writes it back so, else ``refused``."""
    try:
        with pg.transaction():
            out = pg.execute(f"SELECT %s::{pg_type}::text", [text]).fetchone()
    except psycopg.Error:
        return "refused"
    return "loaded" if out is not None and out[0] == text else "refused"


def _duckdb(con: duckdb.DuckDBPyConnection, pg_type: str, text: str) -> str:
    """What the DuckDB target's load does with ``text``: its check of the values kept as
    text, then its load expression (a column that holds a multi-dimensional array is
    widened to text first, as a sync does)."""
    c = Column("c", pg_type)
    con.execute("CREATE OR REPLACE TEMP TABLE source AS SELECT ?::VARCHAR AS c", [text])
    misfit = misfit_check("c", c)
    row = con.execute(f"SELECT {misfit} FROM source").fetchone() if misfit else None
    widened = {"c"} if row and row[0] else set()
    try:
        check_values(con, [c], widened, "source")
        con.execute(f"SELECT CAST({load_expression('c', c, bool(widened))} AS VARCHAR) "
                    "FROM source").fetchall()
    except duckdb.Error as e:
        return "refused" if NOT_A_VALUE in str(e) or MALFORMED_ARRAY in str(e) else str(e)
    return "loaded"


def _iceberg(pg_type: str, text: str) -> str:
    """What the Iceberg target's conversion does with ``text``: ``cannot hold`` for a valid
    value it has no type for (a multi-dimensional array: exit 7)."""
    c = Column("c", pg_type)
    try:
        convert(pa.array([text], pa.string()), schema_of([c]).fields[0].field_type,
                array_delimiter(c), form_of(c))
    except Unparsable:
        return "refused"
    except ValueError_:
        return "cannot hold"
    return "loaded"


def test_a_text_in_its_types_form_is_refused_as_postgresql_refuses_its_value(db):
    with psycopg.connect(db.primary_url) as pg:
        pg.execute("SET datestyle = ISO; SET intervalstyle = postgres; SET timezone = UTC; "
                   "SET extra_float_digits = 1")
        con = duckdb.connect()
        for macro in MACROS:
            con.execute(macro)
        wrong, verdicts = [], set()
        for pg_type, text in CASES:
            want = _postgresql(pg, pg_type, text)
            verdicts.add(want)
            duck, ice = _duckdb(con, pg_type, text), _iceberg(pg_type, text)
            if duck != want or ice not in (want, "cannot hold" if want == "loaded" else ""):
                wrong.append((pg_type, text, want, duck, ice))
        con.close()
    assert not wrong, "\n".join(map(repr, wrong))
    assert verdicts == {"loaded", "refused"}

