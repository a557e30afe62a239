"""System-versioned tables in a MariaDB backup: their history is dumped when it can be.

A plain ``mariadb-dump`` writes a system-versioned table's current rows only; its
``--dump-history`` (MariaDB 10.11+) writes every version with its ``row_start`` and
``row_end``, which a restore inserts as they were (``system_versioning_insert_history``).
It refuses a transaction-precise table (``ROW START`` a transaction id), whose history no
dump carries, and fails the whole dump: with such a table, or a dump program without the
option, the backup holds current rows only and a warning names the tables.
"""

from __future__ import annotations

import logging
import subprocess
from typing import Any

from topoff.backup.maria_tables import rows, text

log = logging.getLogger("topoff")

_VERSIONED_Q = ("SELECT t.TABLE_NAME, MAX(c.DATA_TYPE = 'bigint') FROM information_schema.TABLES t "
                "LEFT JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND "
                "c.TABLE_NAME = t.TABLE_NAME AND c.GENERATION_EXPRESSION = 'ROW START' "
                "WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'SYSTEM VERSIONED' "
                "GROUP BY t.TABLE_NAME ORDER BY t.TABLE_NAME")


def _takes_history(program: str) -> bool:
    try:
        done = subprocess.run([program, "--help"], capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"--dump-history" in done.stdout


def dump_history(conn: Any, program: str) -> bool:
    """Whether the database's system-versioned tables (if any) are dumped with their
    history; a warning names them when they cannot be."""
    found = [(text(name), bool(int(text(trx or 0)))) for name, trx in rows(conn, _VERSIONED_Q)]
    if not found:
        return False
    names = ", ".join(name for name, _trx in found)
    precise = [name for name, trx in found if trx]
    if precise:
        why = f"{', '.join(precise)} keep transaction-precise history, which no dump carries"
    elif not _takes_history(program):
        why = f"{program} has no --dump-history (MariaDB 10.11 and later)"
    else:
        return True
    log.warning("system-versioned tables %s: the backup holds their current rows, not their "
                "history (%s)", names, why)
    return False
