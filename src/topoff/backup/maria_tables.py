"""Per-table row counts and content hashes of a MariaDB database, for the drill.

Computed the same way at backup time (in the snapshot the dump read, see
:mod:`topoff.backup.maria_backup`) and after the drill's restore, by the server: for each
row, every column's bytes as the server prints them (``CAST(c AS BINARY)``: text in its
character set, numbers and temporal values as text, BLOBs and BIT as their bytes) in hex,
NULL as ``N``, joined by commas; the first 60 bits of each row's MD5 are summed. Hex keeps
the separator out of the values, so two different rows never give the same text.

Timestamps are read in UTC (the session's time zone, topoff's connection settings); DOUBLE
values are compared in the server's shortest text form, the same on both sides when the
drill's server is a version that prints them alike (docs/backups.md). Backups that say
``"hash_form": 3`` in finished.json (this version's) hash FLOAT values as the text of the
double of the same value (``CAST(CAST(c AS DOUBLE) AS BINARY)``: the server prints a FLOAT
with 6 digits, in which two floats can look alike), and a value longer than 1 KiB as ``M``
and its MD5 (the server's ``HEX()`` of one longer than half its ``max_allowed_packet`` is
NULL, which hashed like a NULL). Form 2 hashed ``HEX()`` of the double, which is the hex
of its integer part (1.2345678 and 1.23457 alike); form 1 (no ``hash_form``) the 6 digits
and every value's hex. A drill hashes in the form its backup recorded. A
system-versioned table is hashed with every version when the backup dumped its history
(``"history": true``, :mod:`.maria_history`). From form 3 a sequence is hashed too, by
its definition (its position is read outside any snapshot, and restored up to its cache
past the source's: docs/backups.md).

The digest is MD5, or SHA-256 on a server that computes no MD5 (a FIPS build:
``"hash_digest": "sha256"`` in finished.json, the drill computes the same); a server that
computes neither is refused before the dump (:func:`backup_digest`), and a row whose
digest is NULL all the same is never left out of the sum (:func:`checked_sum`): the
table's hash would not see it.
"""

from __future__ import annotations

from typing import Any

from mysql.connector import errors as my_errors

from topoff.errors import SourceError
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.rowhash import MY2, MY3, NULL_WEIGHT, computed, summed
from topoff.sources.mariadb.types import quote_ident

_TABLES_Q = ("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
             "DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') "
             "ORDER BY TABLE_NAME")
#: a sequence's position, read outside any snapshot and restored past the source's cache
_POSITION = ("next_not_cached_value", "cycle_count")
#: finished.json's ``hash_form`` of this version's hashes (absent: the earlier form)
HASH_FORM = 3
#: the forms a drill can compute (:data:`HASH_FORM` and earlier ones)
FORMS = (1, 2, 3)
_LONG = 1024  # bytes: a longer value is hashed as its MD5
_COLUMNS_Q = ("SELECT COLUMN_NAME, DATA_TYPE, COALESCE(GENERATION_EXPRESSION, '') FROM "
              "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
              "ORDER BY ORDINAL_POSITION")
_PERIOD = ("ROW START", "ROW END")
#: finished.json's ``hash_digest``: the SQL of each digest (MD5 when absent)
DIGESTS = {"md5": "MD5({})", "sha256": "SHA2({}, 256)"}


def backup_digest(probe: tuple[Any, ...]) -> str:
    """The digest the tables are hashed with, from the row of
    :data:`topoff.sources.mariadb.rowhash.HASH_PROBE` (SHA2, MD5 of ``'abc'``)."""
    usable = computed(probe)
    if MY2 in usable:
        return "md5"
    if MY3 in usable:
        return "sha256"
    raise SourceError("the MariaDB server computes neither MD5() nor SHA2(), which the "
                      "backup's table hashes need (both gave NULL or another digest)",
                      hint="back up from a server built with TLS (SHA2) or with MD5; "
                           "nothing was written")


def checked_sum(table: str, total: Any) -> int:
    """The hash sum of a table; a SourceError when a row's digest was NULL."""
    got = summed(total)
    if got is None:
        raise SourceError(f"table {table}: the server's digest of a row was NULL, which a "
                          "table hash cannot leave out",
                          hint="check the server's MD5() and SHA2() and that "
                               "max_allowed_packet holds a row's hashed text")
    return got


def text(v: Any) -> str:
    return bytes(v).decode() if isinstance(v, bytes | bytearray) else str(v)


def rows(conn: Any, stmt: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(stmt, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def _part(column: str, floats: frozenset[str], form: int, digest: str) -> str:
    value = f"CAST({quote_ident(column)} AS {'DOUBLE' if column in floats else 'BINARY'})"
    if column in floats and form >= 3:  # HEX() of a number is that of its integer part
        value = f"CAST({value} AS BINARY)"
    if form < 2:
        return f"IFNULL(HEX({value}), 'N')"
    return (f"IFNULL(IF(OCTET_LENGTH({value}) > {_LONG}, CONCAT('M', "
            f"{DIGESTS[digest].format(value)}), HEX({value})), 'N')")


def hash_sql(table: str, columns: list[str], floats: frozenset[str] = frozenset(),
             history: bool = False, form: int = HASH_FORM, digest: str = "md5") -> str:
    """``floats``: the columns hashed by their exact value; ``history``: every version of
    a system-versioned table; ``form``: :data:`HASH_FORM`, or an earlier one of
    :data:`FORMS`; ``digest``: one of :data:`DIGESTS`. A row whose digest is NULL adds
    NULL_WEIGHT (:func:`checked_sum`)."""
    parts = [_part(c, floats, form, digest) for c in columns]
    row = f"CONCAT_WS(',', {', '.join(parts)})" if parts else "''"
    return (f"SELECT COUNT(*), COALESCE(SUM(IFNULL(CAST(CONV(SUBSTR("
            f"{DIGESTS[digest].format(row)}, 1, 15), 16, 10) AS UNSIGNED), {NULL_WEIGHT})), "
            f"0) FROM {quote_ident(table)}"
            + (" FOR SYSTEM_TIME ALL" if history else ""))


def table_hashes(conn: Any, form: int = HASH_FORM, history: bool = False,
                 digest: str = "md5") -> dict[str, dict[str, Any]]:
    """``{"table": {"rows": n, "hash": "..."}}`` for every table of the connection's
    database (the current database), in the connection's transaction, in hash ``form``
    (:data:`HASH_FORM`, or an earlier one of :data:`FORMS`: the module's docstring). A
    system-versioned table: every version with its ``ROW START`` and ``ROW END`` when
    ``history`` (the backup dumped it), else its current rows without them (a restore
    gives them new values)."""
    try:
        names = [(text(name), text(kind)) for (name, kind) in rows(conn, _TABLES_Q)
                 if form >= 3 or text(kind) != "SEQUENCE"]
    except my_errors.Error as e:
        raise SourceError(f"listing the tables to count and hash failed: {e.msg}",
                          hint="check the connection to the source") from None
    out = {}
    for table, kind in names:
        versioned = kind == "SYSTEM VERSIONED"
        try:
            described = [(text(c), text(t), text(g))
                         for (c, t, g) in rows(conn, _COLUMNS_Q, (table,))
                         if kind != "SEQUENCE" or text(c) not in _POSITION]
            floats = frozenset(c for c, t, _g in described
                               if t == "float" and form >= 2)
            columns = [c for c, _t, g in described if history or g not in _PERIOD]
            if versioned and history and all(g not in _PERIOD for _c, _t, g in described):
                columns += ["row_start", "row_end"]  # implicit: invisible, not listed
            ((count, total),) = rows(conn, hash_sql(table, columns, floats,
                                                    versioned and history, form, digest))
        except my_errors.Error as e:  # a migration's table changed or gone: its own words
            raise read_failed(f"counting and hashing table {table} for the drill", e,
                              hint="the backup user needs SELECT on every table") from None
        out[table] = {"rows": int(count), "hash": str(checked_sum(table, total))}
    return dict(sorted(out.items()))
