"""The texts a load keeps as they are checked as values, beyond their form (textvalues.py):
a cidr's bits right of its mask, a range's bounds in order, a multi-dimensional array's
shape... A Python function a value, before the load: for the few types that have such a
check, on the texts in their form (checked.py refuses the others itself), in one pass over
the source. A text that fails stops the load with the error checked.py's expressions
raise (a damaged publication, exit 6), before anything of it is applied.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from topoff.canonical import duck_ident
from topoff.dataset.manifest import Column
from topoff.pgtypes import family
from topoff.targets.duckdb.checked import NOT_A_VALUE, fewer_too, form_ok
from topoff.targets.duckdb.types import duckdb_type
from topoff.targets.textforms import element_rule, rule
from topoff.targets.textvalues import exact

#: rows fetched at once (as Arrow: a tuple a row costs twice the checks)
_BATCH = 10_000


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _checks(c: Column, widened: set[str]) -> list[tuple[str, str]]:
    """For a column with texts checked as values: (the SQL of the list of its texts to
    check, NULL for none; the name of their check, textvalues.exact) each."""
    f = family(c.type, c.enum)
    x = duck_ident(c.name)
    if f.kind == "array" and f.element is not None and (
            c.name in widened or duckdb_type(c) == "VARCHAR"):
        # a multi-dimensional array's text, whole; a one-dimensional one's elements (a
        # box[]'s, separated by ";", each box's corners checked: its text, whole)
        if f.element.pg_type == "box":
            return [(f"CASE WHEN {x} IS NOT NULL THEN [{x}] END", "array:box")]
        out = [(f"CASE WHEN NOT topoff_pg_array_ok({x}) THEN [{x}] END",
                "array:" + f.element.pg_type)]
        r = element_rule(f.element.pg_type)
        if r is not None and r.exact is not None:
            suspect = f" AND regexp_matches(topoff_e, {_lit(r.suspect)})" if r.suspect else ""
            rows = ""
            if f.element.kind == "float" and r.suspect:
                # the few texts checked.shortest cannot decide, in the arrays holding one (a
                # float's suspect is no anchored expression)
                suspect = (f" AND (CASE WHEN regexp_matches(topoff_e, {_lit(r.suspect)}) "
                           f"THEN {fewer_too('topoff_e', f.element.pg_type)} END)")
                rows = f" AND regexp_matches({x}, {_lit(r.suspect)})"
            out.append((f"CASE WHEN topoff_pg_array_ok({x}){rows} THEN list_filter("
                        f"topoff_pg_array_trimmed({x}), lambda topoff_e: "
                        f"{form_ok('topoff_e', r)}{suspect}) END", r.exact))
        return out
    r = rule(c.type)
    if f.kind == "array" or r is None or r.exact is None:
        return []
    suspect = f" AND regexp_matches({x}, {_lit(r.suspect)})" if r.suspect else ""
    return [(f"CASE WHEN {form_ok(x, r)}{suspect} THEN [{x}] END", r.exact)]


def check_values(con: duckdb.DuckDBPyConnection, columns: Sequence[Column], widened: set[str],
                 source: str) -> None:
    """Refuse a text of ``source`` (CSV text: files, or staged text rows) that is in its
    type's form but no value PostgreSQL writes so (the module's docstring)."""
    checks = [(c, sql, name) for c in columns for sql, name in _checks(c, widened)]
    if not checks:
        return
    # each check written once (DuckDB binds what a statement repeats again: with SELECT and
    # WHERE naming the same expressions, 82 ms of CPU a load for 12 such columns, now 56)
    listed = ", ".join(f"{sql} AS topoff_v{k}" for k, (_, sql, _) in enumerate(checks))
    reader = con.sql(
        f"SELECT * FROM (SELECT {listed} FROM {source}) WHERE "
        + " OR ".join(f"topoff_v{k} IS NOT NULL" for k in range(len(checks)))
    ).to_arrow_reader(_BATCH)
    try:
        for batch in reader:
            for (c, _, name), texts in zip(checks, batch.columns, strict=True):
                bad = next((t for t in texts.flatten().to_pylist()
                            if t is not None and not exact(name, t)), None)
                if bad is not None:
                    pg_type = family(c.type, c.enum).pg_type
                    raise duckdb.InvalidInputException(
                        f"column {c.name!r}: \"{bad[:40]}\"{NOT_A_VALUE}{pg_type}")
    finally:
        reader.close()  # else the connection refuses any other statement (a rollback)
