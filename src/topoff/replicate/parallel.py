"""A big table's first build read by several readers at once, in ONE exported snapshot.

Where the target takes concurrent writers (PostgreSQL: ``capabilities.concurrent_writers``;
a DuckDB file has one writer and keeps the one-reader path) and the source table is a
plain table or materialized view of ``copy_split`` bytes or more (``pg_relation_size``,
exact, also on a standby) with ``copy_jobs`` above 1, the refresh's snapshot is exported
(``pg_export_snapshot``, also on a standby) and ``copy_jobs`` readers import it (``SET
TRANSACTION SNAPSHOT``). Each reads ctid page ranges (TID range scans, PostgreSQL 14+)
and streams them, binary where fastcopy.py allows, into its own target connection, which
``COPY``s them into a hidden build table ``_topoff_build.b_<hash of the landing table>``
(its name never comes from dataset text) and commits them part by part.

The rows of several target connections cannot be in the refresh's one transaction, so
the build table is moved into place inside it: the empty table the refresh made is
dropped (its privileges and owner, from the schema's default privileges, given to the
build table first), the build table is moved (``ALTER TABLE ... SET SCHEMA``, ``RENAME``),
and the caller builds its keys and writes the state row in the same transaction. Readers
of the target see no table until the commit, then all of it. A run killed at any moment
leaves at most a hidden, partly filled build table: the next first build of that table
drops it while it holds the table's lock (on either path), so a re-run gives the same
table, nothing twice.

Everything else, and a table that does not qualify (a view, a partitioned or foreign
table, a server before PostgreSQL 14, an enum column, a role that may not create the
build schema), is read by one reader in one COPY (fastcopy.py), with a log line saying why
when parallel reading was asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from topoff import safety
from topoff.errors import IntegrityError, SafetyError, SourceError, TargetError
from topoff.replicate import fastcopy, stream
from topoff.replicate.describe import TableInfo
from topoff.sources.postgres import connect
from topoff.targets.base import TableDef, TableRef, Target
from topoff.targets.postgres.target import column_type, lock_key
from topoff.workers import carried

log = logging.getLogger("topoff")

#: the schema of the hidden build tables
SCHEMA = "_topoff_build"
Statements = Callable[[str], Iterable[sql.Composable]]


def build_name(ref: TableRef) -> str:
    """The build table's name: a hash of the landing table's schema and name."""
    digest = hashlib.sha256(f"{ref.schema}\x00{ref.name}".encode()).hexdigest()
    return f"b_{digest[:40]}"


def first_copy(engine: Target, tdef: TableDef, conn: psycopg.Connection, info: TableInfo,
               condition: sql.Composable | None, statements: Statements,
               counter: list[int]) -> int:
    """A first build's rows into ``tdef`` (made empty by the caller's transaction): by
    several readers when the table qualifies (see above), else ``statements(fmt)`` in one
    COPY; the rows written. ``condition``: the rows to read (None: those of the table's
    ``where``, every row without one)."""
    pg = getattr(engine, "conn", None) if engine.capabilities.concurrent_writers else None
    if condition is None and info.table.where:  # checked by describe.check_where
        condition = sql.SQL("({})").format(sql.SQL(info.table.where))
    if pg is not None:
        bounds = _bounds(conn, info)
        build = sql.Identifier(SCHEMA, build_name(tdef.target))
        if bounds and _prepare(pg, tdef, build, info):
            return _parallel(engine, pg, tdef, conn, info, condition, bounds, build, counter)
        if _exists(pg, build_name(tdef.target)):  # a killed run's, under the table's lock
            pg.execute(sql.SQL("DROP TABLE {}").format(build))
    return one_copy(engine, tdef, conn, info, condition, statements, counter)


def one_copy(engine: Target, tdef: TableDef, conn: psycopg.Connection, info: TableInfo,
             condition: sql.Composable | None, statements: Statements,
             counter: list[int]) -> int:
    """``statements(fmt)`` into ``tdef`` by one reader (binary where fastcopy.py allows)."""
    return fastcopy.copy_into(engine, tdef, list(info.columns), conn, statements, counter,
                              fastcopy.binary_ok(engine, conn, info, tdef))


def _exists(pg: psycopg.Connection, name: str) -> bool:
    """Whether the build table is there (the catalog: no privilege on the schema needed)."""
    row = pg.execute("SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
                     "c.relnamespace WHERE n.nspname = %s AND c.relname = %s)",
                     [SCHEMA, name]).fetchone()
    return bool(row and row[0])


def _bounds(conn: psycopg.Connection, info: TableInfo) -> list[sql.Composable]:
    """The ctid ranges to read the table in, or [] for one reader."""
    t = info.table
    if t.copy_jobs < 2:
        return []
    name = t.qualified
    if info.relkind not in ("r", "m"):
        kind = {"v": "a view", "p": "a partitioned table", "f": "a foreign table"}.get(
            info.relkind, "not a plain table")
        log.info("%s is %s: its first copy is read by one reader", name, kind)
        return []
    row = conn.execute("SELECT pg_relation_size(%s::oid), current_setting('block_size')::int",
                       (info.oid,)).fetchone()
    size, block = (int(row[0] or 0), int(row[1])) if row else (0, 8192)
    if size < t.copy_split:
        return []
    if conn.info.server_version < 140000:
        log.info("%s: the source is older than PostgreSQL 14 (no TID range scans): its first "
                 "copy is read by one reader", name)
        return []
    if any(c.enum for c in info.columns):
        log.info("%s has an enum column: its first copy is read by one reader", name)
        return []
    pages = max(1, size // block)
    parts = min(t.copy_jobs * 4, max(t.copy_jobs, size // t.copy_split), pages)
    step = -(-pages // parts)
    starts = list(range(0, pages, step))
    out: list[sql.Composable] = []
    for i, lo in enumerate(starts):
        cond = sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({lo},0)"))
        if i + 1 < len(starts):  # the last range is open
            cond = cond + sql.SQL(" AND ctid < {}::tid").format(
                sql.Literal(f"({starts[i + 1]},0)"))
        out.append(cond)
    return out


def _params(conn: psycopg.Connection) -> dict[str, str]:
    """The connection's own parameters (its password included, never printed), pinned to
    the server it reached (a multi-host URL must not send a reader elsewhere)."""
    skip = {"application_name", "fallback_application_name"}
    params = {o.keyword.decode(): o.val.decode() for o in conn.pgconn.info
              if o.val is not None and o.keyword.decode() not in skip}
    params["host"], params["port"] = conn.info.host, str(conn.info.port)
    if "hostaddr" in params:
        params["hostaddr"] = conn.info.hostaddr
    return params


def _connect(params: dict[str, str], target: bool) -> psycopg.Connection:
    try:
        return connect(make_conninfo(**params), "topoff replicate copy", autocommit=True)
    except SourceError as e:
        if target:
            raise TargetError(e.message, hint=e.hint) from None
        raise


def _prepare(pg: psycopg.Connection, tdef: TableDef, build: sql.Identifier,
             info: TableInfo) -> bool:
    """On a connection of its own: the build schema, a killed run's build table dropped
    (the caller's transaction holds the table's lock), an empty build table with the
    landing table's columns. False (one reader, then) if the role may not."""
    names = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), column_type(c))
        for c in tdef.columns)
    with contextlib.closing(_connect(_params(pg), True)) as admin:
        try:
            with admin.transaction():
                admin.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("replicate-schemas")])
                if not admin.execute("SELECT to_regnamespace(%s) IS NOT NULL",
                                     [SCHEMA]).fetchone()[0]:  # type: ignore[index]
                    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
            admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(build))
            admin.execute(sql.SQL("CREATE TABLE {} ({})").format(build, names))
        except psycopg.errors.InsufficientPrivilege as e:
            log.warning("%s: cannot make the build table %s (%s): its first copy is read "
                        "by one reader", info.table.qualified, build.as_string(admin),
                        (e.diag.message_primary or str(e)).splitlines()[0])
            return False
    return True


class _Readers:
    """The readers: each imports the snapshot and COPYs parts into the build table."""

    def __init__(self, conn: psycopg.Connection, pg: psycopg.Connection, statement: Callable[
            [sql.Composable], sql.Composable], copy_in: sql.Composed, binary: bool) -> None:
        self.source, self.target = _params(conn), _params(pg)
        (self.snapshot,) = conn.execute("SELECT pg_export_snapshot()").fetchone()  # type: ignore[misc]
        (self.recovery,) = conn.execute("SELECT pg_is_in_recovery()").fetchone()  # type: ignore[misc]
        self.statement, self.copy_in, self.binary = statement, copy_in, binary
        self.parts: queue.Queue[sql.Composable] = queue.Queue()
        self.lock = threading.Lock()
        self.read = self.written = 0
        self.errors: list[BaseException] = []
        self.conns: list[psycopg.Connection] = []
        self.stop = threading.Event()

    def _begin(self) -> psycopg.Connection:
        src = _connect(self.source, False)
        with self.lock:
            self.conns.append(src)
        (recovery,) = src.execute("SELECT pg_is_in_recovery()").fetchone()  # type: ignore[misc]
        if recovery != self.recovery:
            raise SafetyError("the source changed role during the copy (promoted?)",
                              hint="run it again")
        src.execute(safety.begin_statement(bool(recovery), worker=True))
        try:
            src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                sql.Literal(self.snapshot)))
        except psycopg.errors.InvalidParameterValue as e:  # the refresh's session ended
            raise psycopg.OperationalError(f"the refresh's snapshot is gone ({e})") from e
        return src

    def work(self) -> None:
        try:
            src = self._begin()
            with contextlib.closing(_connect(self.target, True)) as dst:
                while not self.stop.is_set():
                    try:
                        part = self.parts.get_nowait()
                    except queue.Empty:
                        return
                    counted = [0]
                    with dst.cursor() as cur:
                        with cur.copy(self.copy_in) as cp:
                            for block in stream.copy(src, self.statement(part), counted,
                                                     binary=self.binary):
                                cp.write(block)
                        with self.lock:
                            self.read += counted[0]
                            self.written += max(cur.rowcount, 0)
        except BaseException as e:
            with self.lock:
                self.errors.append(e)
            self.cancel()

    def cancel(self) -> None:
        self.stop.set()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            with contextlib.suppress(Exception):
                c.cancel_safe()

    def close(self) -> None:
        for c in self.conns:
            with contextlib.suppress(Exception):
                c.close()

    def error(self) -> BaseException:
        """The cause: a recovery conflict or lost connection before our own cancels."""
        errs = self.errors
        return next((e for e in errs if safety.is_recovery_conflict(e)), None) or next(
            (e for e in errs if not isinstance(e, psycopg.errors.QueryCanceled)), errs[0])


def _parallel(engine: Target, pg: psycopg.Connection, tdef: TableDef,
              conn: psycopg.Connection, info: TableInfo, condition: sql.Composable | None,
              bounds: list[sql.Composable], build: sql.Identifier, counter: list[int]) -> int:
    _no_null_keys(conn, info, condition)
    binary = fastcopy.binary_ok(engine, conn, info, tdef)
    fmt = sql.SQL("binary" if binary else "csv")
    cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in info.columns)
    cond = condition if condition is not None else sql.SQL("true")

    select = fastcopy.select_list(info.columns, binary)

    def statement(part: sql.Composable) -> sql.Composable:
        return sql.SQL("COPY (SELECT {cols} FROM {t} WHERE ({cond}) AND {part}) TO STDOUT "
                       "WITH (FORMAT {fmt})").format(cols=select, t=info.ident, cond=cond,
                                                     part=part, fmt=fmt)

    copy_in = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT {})").format(build, cols, fmt)
    readers = _Readers(conn, pg, statement, copy_in, binary)
    for part in bounds:
        readers.parts.put(part)
    jobs = min(info.table.copy_jobs, len(bounds))
    log.info("%s: first copy by %d readers in %d page ranges of one snapshot",
             info.table.qualified, jobs, len(bounds))
    threads = [threading.Thread(target=carried(readers.work), name=f"topoff-copy-{i}", daemon=True)
               for i in range(jobs)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        if any(th.is_alive() for th in threads):  # interrupted: stop the readers
            readers.cancel()
        for th in threads:
            th.join()
        readers.close()
    if readers.errors:
        raise readers.error()
    if readers.read != readers.written:
        raise IntegrityError(f"{info.table.qualified}: read {readers.read} rows, the target "
                             f"took {readers.written}", hint="this is a bug in topoff; report it")
    counter[0] += readers.read
    _move(pg, tdef.target, build)
    return readers.written


_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
               "MAINTAIN"}


def _acl(pg: psycopg.Connection, relation: sql.Composable) -> set[tuple[int, str, bool]]:
    rows = pg.execute(sql.SQL(
        "SELECT a.grantee::bigint, a.privilege_type, a.is_grantable FROM pg_class c, "
        "aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a "
        "WHERE c.oid = {}::regclass").format(sql.Literal(relation.as_string(pg)))).fetchall()
    return {(int(g), str(p), bool(o)) for g, p, o in rows}


def _role(pg: psycopg.Connection, oid: int) -> sql.Composable:
    if oid == 0:
        return sql.SQL("PUBLIC")
    (name,) = pg.execute("SELECT rolname FROM pg_roles WHERE oid = %s::oid",
                         [oid]).fetchone()  # type: ignore[misc]
    return sql.Identifier(name)


def _move(pg: psycopg.Connection, landing: TableRef, build: sql.Identifier) -> None:
    """In the refresh's transaction: the build table takes the place (owner, privileges)
    of the empty landing table the refresh made."""
    table = sql.Identifier(landing.schema, landing.name)
    (owner,) = pg.execute(sql.SQL("SELECT relowner::bigint FROM pg_class "
                                  "WHERE oid = {}::regclass").format(
        sql.Literal(table.as_string(pg)))).fetchone()  # type: ignore[misc]
    want = _acl(pg, table)
    pg.execute(sql.SQL("DROP TABLE {}").format(table))
    pg.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
        build, sql.Identifier(landing.schema)))
    moved = sql.Identifier(landing.schema, build.as_string(pg).split(".")[-1].strip('"'))
    pg.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(moved, sql.Identifier(landing.name)))
    pg.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(table, _role(pg, int(owner))))
    have = _acl(pg, table)
    if have != want:
        for grantee in sorted({g for g, _, _ in have - want}):
            pg.execute(sql.SQL("REVOKE ALL ON {} FROM {} CASCADE").format(
                table, _role(pg, grantee)))
        for grantee, privilege, grantable in sorted(want - _acl(pg, table)):
            if privilege not in _PRIVILEGES:
                raise TargetError(f"{landing}: unknown privilege {privilege!r} on the new table",
                                  hint="report it: topoff cannot copy it to the built table")
            pg.execute(sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege), table, _role(pg, grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else "")))


def _no_null_keys(conn: psycopg.Connection, info: TableInfo,
                  condition: sql.Composable | None) -> None:
    """As the one-reader path: a NULL key column in a row to copy is a SourceError."""
    cols = {c.name: c for c in info.columns}
    nullable = [k for k in info.key if k not in cols or cols[k].nullable]
    if not nullable:
        return
    (found,) = conn.execute(sql.SQL(  # type: ignore[misc]
        "SELECT EXISTS (SELECT 1 FROM {t} WHERE ({cond}) AND ({nulls}))").format(
            t=info.ident, cond=condition if condition is not None else sql.SQL("true"),
            nulls=sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(k))
                                       for k in nullable))).fetchone()
    if found:
        raise SourceError(f"{info.table.qualified}: a key column is NULL in a row inside the "
                          "refresh", hint="use NOT NULL key columns (set key = [...])")
