"""Whether the texts of a jsonb column are each one JSON value, for an Iceberg replica.

The texts are already in jsonb_out's tokens (textforms.py: no white space but ", " and
": ", no comma trailing or doubled); what that form cannot see is their structure: a
bracket unbalanced or crossed (``{"a": [1}``, ``]``), a colon outside an object, two
values. DuckDB's ``json_valid`` (yyjson, in C) reads them as Arrow hands them over: 0.1
CPU seconds per 100,000 texts of 200 bytes, where a parse in Python cost 0.5 and made the
first build of a datanommer-shaped replica 2.5 times slower. The keys' order (jsonb's)
and a key twice are not checked (docs/targets.md).
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa

_local = threading.local()
_lock = threading.Lock()
_database: list[duckdb.DuckDBPyConnection] = []


def _connection() -> duckdb.DuckDBPyConnection:
    """A cursor of this thread's own on the process's one in-memory DuckDB (one thread:
    the writers have their own; its start costs about 35 MB and 0.05 s of CPU, once)."""
    con = getattr(_local, "con", None)
    if con is None:
        with _lock:
            if not _database:
                _database.append(duckdb.connect(config={"threads": 1}))
            con = _local.con = _database[0].cursor()
    return con


def first_invalid(arr: pa.Array) -> str | None:
    """The first text of ``arr`` that is no single JSON value, None when all are (or NULL)."""
    if arr.null_count == len(arr):
        return None
    con = _connection()
    rel = con.from_arrow(pa.table({"v": arr}))
    rows = rel.filter("v IS NOT NULL AND NOT json_valid(v)").limit(1).fetchall()
    return str(rows[0][0]) if rows else None
