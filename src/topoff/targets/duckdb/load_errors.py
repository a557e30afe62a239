"""What a failure of DuckDB while it loads a data file into a table means: a row longer
than DuckDB may read, a load that needs more memory than its limit, a valid value DuckDB
cannot hold (a timestamp after 294246 AD), or a text that is no value of its column's
declared type (a damaged publication, as PostgreSQL's COPY and an Iceberg replica report
it). Anything else is left to targets/errors.py."""

from __future__ import annotations

import re

import duckdb

from topoff.errors import IntegrityError, TargetError, TopoffError
from topoff.targets.duckdb.checked import NOT_A_VALUE
from topoff.targets.duckdb.types import MALFORMED_ARRAY
from topoff.targets.errors import MALFORMED_HINT

#: a conversion error of a valid PostgreSQL timestamp DuckDB cannot hold (after 294246 AD)
_BEYOND_DUCKDB = re.compile(r'timestamp field value out of range: "\d{6,}-')


def _malformed(table: str, detail: str) -> IntegrityError:
    detail = detail.removeprefix("Conversion Error: ").removeprefix("Invalid Input Error: ")
    return IntegrityError(f"a data file of {table} is malformed ({detail})",
                          hint=MALFORMED_HINT)


def load_error(e: duckdb.Error, table: str, memory_limit: str, max_line: int
               ) -> TopoffError | None:
    """The TopoffError ``e``, raised while a file was loaded into ``table``, means (None:
    not one of a load's own)."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, duckdb.OutOfMemoryException):
        return TargetError(f"{table}: DuckDB needs more memory than its limit ({memory_limit})",
                           hint="give the sync more memory with --memory-limit")
    if isinstance(e, duckdb.InvalidInputException):
        if MALFORMED_ARRAY in first or NOT_A_VALUE in first:  # checked.py's, or
            # topoff_pg_array's: a text PostgreSQL reads as no value of the column's type
            return _malformed(table, first)
        if "CSV Error" not in first or not ("Maximum line size" in str(e)
                                            or "buffer_size" in str(e)):
            return None
        return TargetError(
            f"{table}: DuckDB cannot read a row ({first}); rows longer than "
            f"{max_line // 2**20} MiB, a quarter of the memory limit, cannot be read",
            hint="give the sync more memory with --memory-limit (a row may be up to a "
            "quarter of it, 256MB at most)")
    if isinstance(e, duckdb.ConversionException | duckdb.OutOfRangeException):
        if not _BEYOND_DUCKDB.search(first):  # a text no source writes for its type
            return _malformed(table, first)
        return TargetError(f"{table}: a value does not fit its DuckDB column ({first})",
                           hint="DuckDB cannot hold this value (timestamps after 294246 AD); "
                           "sync into PostgreSQL, or correct the value on the source")
    return None
