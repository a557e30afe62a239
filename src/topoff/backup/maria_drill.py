"""The drill of a MariaDB backup: restore into a throwaway ``mariadbd`` (or an empty
``--scratch`` database), then count and hash every table as the backup did.

The throwaway server (:mod:`topoff.backup.mariadbd`) lives in a temp dir on a free loopback
port and is stopped and removed when the drill ends, fails or is interrupted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from mysql.connector import errors as my_errors

from topoff.backup.catalog import Entry
from topoff.backup.maria_restore import restore
from topoff.backup.maria_tables import DIGESTS, FORMS, table_hashes
from topoff.errors import IntegrityError
from topoff.redact import redact
from topoff.sources.mariadb.connect import connect
from topoff.stores.base import Store


@contextlib.contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from topoff.backup.mariadbd import throwaway_mariadb

    with throwaway_mariadb("drill") as server:
        yield server.root_url("drill")


def run_checks(conn: Any, checks: tuple[str, ...]) -> list[dict[str, Any]]:
    """The configured check queries (operator-written): each must return true (1)."""
    out = []
    for stmt in checks:
        cur = conn.cursor()
        try:
            cur.execute(stmt)
            row = cur.fetchone()
            ok = bool(row) and row[0] in (1, True)
            out.append({"sql": stmt, "ok": ok, "result": None if not row else str(row[0])})
        except my_errors.Error as e:
            out.append({"sql": stmt, "ok": False, "result": redact(str(e.msg or "error"))})
        finally:
            with contextlib.suppress(my_errors.Error):
                cur.fetchall()
            cur.close()
    return out


def restore_and_hash(store: Store, entry: Entry, identities: list[Any], scratch_url: str | None,
                     checks: tuple[str, ...]) -> tuple[dict[str, dict[str, Any]],
                                                       list[dict[str, Any]]]:
    """(every restored table's rows and hash, the checks' results)."""
    with scratch_database(scratch_url) as url:
        restore(store, entry, identities, url)
        conn = connect(url)
        try:
            finished = entry.finished or {}
            form = finished.get("hash_form")
            digest = finished.get("hash_digest", "md5")
            if digest not in DIGESTS:
                raise IntegrityError(f"backup {entry.name} was hashed with an unknown digest",
                                     hint="drill it with the topoff version that wrote it")
            actual = table_hashes(conn, form if form in FORMS else 1,
                                  finished.get("history") is True, digest)
            results = run_checks(conn, checks)
        finally:
            conn.close()
    return actual, results
