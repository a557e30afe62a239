"""Restore drills: prove a backup restores, and restores to exactly what was backed up.

The backup is restored into a throwaway PostgreSQL (a temporary cluster, or an empty
``--scratch`` database), then every table's row count and content hash is compared with
the ones recorded at backup time from the dump's own snapshot, and the configured check
queries run (each must return true). The outcome is recorded as a new catalog object
``catalog/<name>/drill-<stamp>.json``, pass or fail.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from topoff.backup import catalog
from topoff.backup.restore import check_engines, choose, restore
from topoff.backup.tables import table_hashes
from topoff.errors import IntegrityError, TargetError, TopoffError
from topoff.redact import redact
from topoff.sources.postgres import connect
from topoff.stores.base import Store

log = logging.getLogger("topoff")
#: the role a throwaway cluster's restore runs as (no superuser: see scratch_database)
DRILL_ROLE = "topoff_drill"


@dataclass
class DrillResult:
    name: str
    ok: bool
    time: str
    restorable_as_of: str | None
    tables: int = 0
    mismatches: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"backup": self.name, "ok": self.ok, "time": self.time,
                "restorable_as_of": self.restorable_as_of, "tables": self.tables,
                "mismatches": self.mismatches, "checks": self.checks, "error": self.error}


@contextlib.contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from topoff.demo.cluster import throwaway_cluster

    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(throwaway_cluster(standby=False))
        except (RuntimeError, OSError) as e:
            where = tempfile.gettempdir()
            raise TargetError(f"the drill's throwaway PostgreSQL server could not be made "
                              f"under {where}: {_server_error(e)}",
                              hint="free space under TMPDIR (the server is made there) or "
                              "point TMPDIR at a larger disk the postgres user may reach, "
                              "or drill into a database of your own with --scratch") from None
        # the dump's SQL (a materialized view's query, a constraint's function) runs as an
        # unprivileged role owning the database: a superuser could read and write the
        # host's files or run programs, whoever wrote the dump
        password = secrets.token_hex(16)
        cluster.primary.execute(f"CREATE ROLE {DRILL_ROLE} LOGIN NOSUPERUSER NOCREATEDB "
                                f"NOCREATEROLE PASSWORD '{password}'")
        cluster.primary.execute(f"CREATE DATABASE drill OWNER {DRILL_ROLE}")
        yield cluster.primary.url("drill", user=DRILL_ROLE, password=password)


def _server_error(exc: BaseException) -> str:
    """Why initdb or pg_ctl failed: the tool, and its FATAL (or error) line without the log
    prefix."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    head, _, output = str(exc).partition(": ")  # "initdb failed (1): <its output>"
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    said = [ln.split(m, 1)[1].strip() for m in ("FATAL:", "error:") for ln in lines if m in ln]
    why = said[0] if said else (lines[0] if lines else "")
    return redact(f"{head}: {why}" if why else head)


def _recorded(entry: catalog.Entry) -> dict[str, tuple[int, str]]:
    tables = (entry.finished or {}).get("tables")
    if not isinstance(tables, dict):
        raise IntegrityError(f"backup {entry.name} records no table hashes",
                             hint="drill a backup written by topoff backup")
    out = {}
    for qualified, t in tables.items():
        rows = t.get("rows") if isinstance(t, dict) else None
        digest = t.get("hash") if isinstance(t, dict) else None
        if not isinstance(rows, int) or isinstance(rows, bool) or not isinstance(digest, str):
            raise IntegrityError(f"backup {entry.name} has an invalid record for a table",
                                 hint="the catalog entry was damaged; drill another backup")
        out[str(qualified)] = (rows, digest)
    return out


def shown(name: str) -> str:
    """A table name from the catalog or the restored dump, as text safe to print: one
    holding control characters (an escape sequence, a line break) is quoted."""
    text = name if name.isprintable() else ascii(name)
    return text if len(text) <= 200 else text[:197] + "..."


def compare(recorded: dict[str, tuple[int, str]], actual: dict[str, dict[str, Any]],
            ) -> list[str]:
    problems = []
    for name in sorted(set(recorded) | set(actual)):
        qualified = shown(name)
        if name not in actual:
            problems.append(f"{qualified}: missing after restore")
        elif name not in recorded:
            problems.append(f"{qualified}: restored but not recorded at backup time")
        else:
            rows, digest = recorded[name]
            got = actual[name]
            if got["rows"] != rows:
                problems.append(f"{qualified}: {got['rows']} rows, {rows} recorded")
            elif got["hash"] != digest:
                problems.append(f"{qualified}: content hash differs from the recorded one")
    return problems


def run_checks(conn: psycopg.Connection, checks: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    # operator-written whole statements: the database's own search_path, as in psql
    conn.execute("RESET search_path")
    for stmt in checks:
        try:
            row = conn.execute(sql.SQL(stmt)).fetchone()  # config
            ok = bool(row) and row[0] is True  # type: ignore[index]
            out.append({"sql": stmt, "ok": ok, "result": None if not row else str(row[0])})
        except psycopg.Error as e:
            out.append({"sql": stmt, "ok": False,
                        "result": redact(str(e).splitlines()[0] if str(e) else "error")})
    return out


def drill(store: Store, identities: list[Any], name: str | None = None,
          scratch_url: str | None = None, checks: tuple[str, ...] = (), jobs: int = 2,
          workdir: str | None = None, max_plain_size: int | None = None) -> DrillResult:
    entry = choose(store, name)
    if max_plain_size is not None:  # the bound of an entry that declares no plain_size
        entry = replace(entry, max_plain=max_plain_size)
    entry.plain_limit  # noqa: B018 - an entry without one: refused, nothing started or recorded
    snap = entry.started.get("snapshot")
    # a time, or nothing: the catalog's text is shown on a terminal
    as_of = catalog.parse_time(snap.get("time")) if isinstance(snap, dict) else None
    result = DrillResult(entry.name, False, catalog.now_iso(),
                         None if as_of is None else as_of.isoformat())
    try:
        recorded = _recorded(entry)
        if entry.engine == "mariadb":
            from topoff.backup.maria_drill import restore_and_hash

            if scratch_url is not None:
                check_engines(entry, scratch_url)
            actual, result.checks = restore_and_hash(store, entry, identities, scratch_url,
                                                     checks)
        else:
            actual, result.checks = _pg_restore_and_hash(store, entry, identities,
                                                          scratch_url, checks, jobs, workdir)
        result.tables = len(actual)
        result.mismatches = compare(recorded, actual)
        result.ok = not result.mismatches and all(c["ok"] for c in result.checks)
    except TopoffError as e:
        result.error = e.message
        _record(store, result)
        raise
    _record(store, result)
    if not result.ok:
        first = (result.mismatches or [f"check failed: {c['sql']}" for c in result.checks
                                       if not c["ok"]])[0]
        raise IntegrityError(f"drill of {entry.name} failed: {first}",
                             hint="the backup does not restore to what was recorded; see "
                             "`topoff backups list --json` and take a new backup")
    return result


def _pg_restore_and_hash(store: Store, entry: catalog.Entry, identities: list[Any],
                         scratch_url: str | None, checks: tuple[str, ...], jobs: int,
                         workdir: str | None) -> tuple[dict[str, dict[str, Any]],
                                                       list[dict[str, Any]]]:
    if scratch_url is not None:
        check_engines(entry, scratch_url)
    with scratch_database(scratch_url) as url:
        try:
            restore(store, entry, identities, url, jobs=jobs, no_owner=True, workdir=workdir)
        except TargetError as e:
            if scratch_url is not None or not e.message.startswith("pg_restore"):
                raise
            raise TargetError(e.message, hint=f"the drill restores as the unprivileged role "
                              f"{DRILL_ROLE}: what needs a superuser (an untrusted extension "
                              "or language, server files) fails there; see docs/backups.md "
                              "(Drills)") from None
        extra: list[psycopg.Connection] = []

        def more() -> psycopg.Connection:  # nobody writes to the scratch database
            extra.append(connect(url, "topoff drill", autocommit=True))
            return extra[-1]

        with connect(url, "topoff drill", autocommit=True) as conn:
            try:
                actual = table_hashes(conn, more, jobs)
            finally:
                for c in extra:
                    c.close()
            results = run_checks(conn, checks)
    return actual, results


def _record(store: Store, result: DrillResult) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    catalog.write_object(store, result.name, f"drill-{stamp}.json", result.to_json())
