"""What the source says about a replicated table: its columns, key and cursor type, and
the operator's ``where`` checked to be one row condition. Catalog SELECTs and an EXPLAIN
only: nothing is created on the source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg
from psycopg import sql

from topoff.dataset.manifest import Column
from topoff.errors import ConfigError
from topoff.pgtypes import canonical_type, family
from topoff.replicate.config import ReplicateTable
from topoff.safety import unreadable_relation
from topoff.sources.pg_changes import lock_unchanged, schema_changes
from topoff.sources.pg_domains import VALUE_TYPE
from topoff.sources.pg_keys import HINT as KEY_HINT
from topoff.sources.pg_keys import folding_key

_REL_Q = """
SELECT c.oid, c.relkind, c.relpersistence, c.relispopulated, pg_is_in_recovery()
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
_COLS_Q = """
SELECT a.attname,
       v.typid, v.typmod,
       NOT a.attnotnull,
       (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
         WHERE e.enumtypid = CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE t.oid END)
FROM pg_attribute a """ + VALUE_TYPE + """
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
#: every name qualified: it runs with the database's own search_path (see type_names)
_NAMES_Q = """
SELECT pg_catalog.format_type(x.o, x.m)
FROM ROWS FROM (pg_catalog.unnest(%s::pg_catalog.oid[]),
                pg_catalog.unnest(%s::pg_catalog.int4[])) WITH ORDINALITY AS x(o, m, n)
ORDER BY x.n
"""
_DEFAULT_PATH_Q = """
SELECT pg_catalog.set_config('search_path', s.reset_val, false) FROM pg_catalog.pg_settings s
WHERE s.name = 'search_path'
"""
_PK_Q = """
SELECT array_agg(a.attname ORDER BY k.ord)
FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary
  -- an inheritance parent's key does not hold over its children's rows, which a read of
  -- it includes (a partitioned table's does)
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhparent
                  WHERE h.inhparent = i.indrelid AND c.relkind = 'r')
"""
#: the oids of the table, its partitions and inheritance children (any depth), as one text
_MEMBERS_Q = """
WITH RECURSIVE tree(oid) AS (
    SELECT %s::oid UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
SELECT string_agg(oid::text, ',' ORDER BY oid) FROM tree
"""
CURSOR_KINDS = ("timestamptz", "timestamp", "date", "int", "numeric")


@dataclass(frozen=True)
class TableInfo:
    table: ReplicateTable
    oid: int
    relkind: str
    columns: tuple[Column, ...]  # the replicated columns, in table order
    key: tuple[str, ...]  # empty: no key (whole cursor groups per batch)
    cursor_kind: str | None  # family kind of the cursor column
    #: the source's engine (postgresql, mariadb): only PostgreSQL rows carry an xmin
    engine: str = "postgresql"
    #: which table this is, whatever its name (PostgreSQL: its oid; MariaDB: its creation
    #: time): another value means a table created again under the name; None: not known
    identity: str | None = None
    #: which relations the table's rows are in (PostgreSQL: the md5 of the oids of it, its
    #: partitions and inheritance children), stored with an inserter's or updater's state
    #: so that one attached since is found (attached.py); None: not known
    members: str | None = None

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.table.schema, self.table.name)

    @property
    def has_xmin(self) -> bool:
        """Views have no xmin: the commit rule cannot apply to them (nor to MariaDB)."""
        return self.engine == "postgresql" and self.relkind in ("r", "p", "m")


def describe(conn: psycopg.Connection, t: ReplicateTable) -> TableInfo:
    """The table as the refresh's snapshot shows it, locked (ACCESS SHARE) so that a
    migration replayed from now on waits for the refresh or cancels it (a recovery
    conflict); one that landed since the snapshot began is a SourceError naming it
    (pg_changes.py): read in the snapshot, a table rewritten or truncated since would show
    no row, one dropped or renamed or with a column dropped would fail the read."""
    with schema_changes(t.qualified, "refresh"):
        info = _describe(conn, t)
    lock_unchanged(conn, [(info.ident, info.relkind, info.oid)], "refresh", t.qualified)
    return info


def _describe(conn: psycopg.Connection, t: ReplicateTable) -> TableInfo:
    where = f"[replicate.sources.{t.source}.tables.{t.name}]"
    row = conn.execute(_REL_Q, (t.schema, t.name)).fetchone()
    if row is None:
        raise ConfigError(f"table {t.qualified} does not exist on source {t.source}",
                          hint=f"fix schema or name in {where}, or the source url")
    oid, relkind, persistence, populated, in_recovery = row
    unreadable = unreadable_relation(t.qualified, relkind, persistence, populated, in_recovery)
    if unreadable is not None:
        raise unreadable
    found = conn.execute(_COLS_Q, (oid,)).fetchall()
    names = type_names(conn, [(c[1], c[2]) for c in found])
    cols = [(c[0], name, *c[3:]) for c, name in zip(found, names, strict=True)]
    keep = kept_columns(t, [c[0] for c in cols])
    columns = tuple(Column(n, typ, bool(nullable), list(labels) if labels else None)
                    for n, typ, nullable, labels in cols if n in keep)
    (pk,) = conn.execute(_PK_Q, (oid,)).fetchone()  # type: ignore[misc]
    key = tuple(t.key) if t.key else tuple(pk or ())
    if relkind == "v" and not t.key:
        raise ConfigError(f"{t.qualified} is a view: it has no primary key",
                          hint=f'set key = ["<unique column>"] in {where}')
    # an updater merges changed rows by key; an inserter's rows never change; a key the
    # config names is the user's word that its values are never respelled
    folding = folding_key(conn, oid, key) if t.method == "updater" and not t.key else None
    if folding:  # merged by key as the replica compares: both spellings would stay
        raise ConfigError(f"{where} {t.qualified}: {folding}; a key respelled on the source "
                          "would stay in the replica beside the new one", hint=KEY_HINT)
    kind = cursor_kind(t, key, {c[0]: c[1] for c in cols})
    # a view's oid says nothing of its rows (they are its tables')
    members = None
    if relkind in ("r", "p"):
        (tree,) = conn.execute(_MEMBERS_Q, (oid,)).fetchone()  # type: ignore[misc]
        members = "md5:" + hashlib.md5(str(tree).encode(), usedforsecurity=False).hexdigest()
    info = TableInfo(t, oid, relkind, columns, key, kind,
                     identity=None if relkind == "v" else f"oid {oid}", members=members)
    if t.where is not None:
        check_where(conn, info)
    return info


def type_names(conn: psycopg.Connection, types: list[tuple[int, int]]) -> list[str]:
    """format_type() of each (type oid, typmod) as the database's own search_path shows
    them (a type of public as ``mood``, not ``public.mood``), the names a replica's stored
    definition holds; the session's ``search_path = pg_catalog`` is set back after."""
    conn.execute(_DEFAULT_PATH_Q)
    try:  # a built-in type a user type shadows is pg_catalog.box: it is box all the same
        return [canonical_type(r[0]) for r in conn.execute(
            _NAMES_Q, ([t[0] for t in types], [t[1] for t in types])).fetchall()]
    finally:
        conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog', false)")


def kept_columns(t: ReplicateTable, names: list[str]) -> set[str]:
    """The replicated columns of the source's ``names``; a configured column the table
    does not have is a ConfigError."""
    where = f"[replicate.sources.{t.source}.tables.{t.name}]"
    for col in (*(t.columns or ()), *t.exclude, *(t.key or ()), *((t.cursor,) if t.cursor else ())):
        if col not in names:
            raise ConfigError(f"{where} names column {col!r}, which {t.qualified} does not have",
                              hint=f"columns of {t.qualified}: {', '.join(names)}")
    return set(t.columns) if t.columns is not None else set(names) - set(t.exclude)


def cursor_kind(t: ReplicateTable, key: tuple[str, ...], types: dict[str, str]) -> str | None:
    """The family kind of the cursor column (``types``: name -> PostgreSQL type), checked
    to be a cursor and to agree with boundary and lookback; an updater needs a key."""
    where = f"[replicate.sources.{t.source}.tables.{t.name}]"
    if t.method == "updater" and not key:
        raise ConfigError(f"{t.qualified} uses method updater but has no primary key",
                          hint=f'set key = ["<unique column>"] in {where}')
    if not t.cursor:
        return None
    ctype = types[t.cursor]
    kind = family(ctype).kind
    if kind == "numeric_any":  # no fixed scale or > 38 digits: DuckDB keeps it as text
        what = "a numeric without precision and scale" if "(" not in ctype else \
            f"a {ctype}, which replicas hold as text (over 38 digits, or a negative scale)"
        raise ConfigError(f"cursor column {t.cursor} of {t.qualified} is {what}",
                          hint="a numeric cursor needs a precision (at most 38 digits) and a "
                          "scale, as numeric(20,0); or use an integer or timestamp column")
    if kind not in CURSOR_KINDS:
        raise ConfigError(f"cursor column {t.cursor} of {t.qualified} has type {ctype}",
                          hint="a cursor is a timestamp, timestamptz, date, integer or "
                          "numeric column")
    if isinstance(t.boundary, int) != (kind in ("int", "numeric")):
        raise ConfigError(f"{where}: boundary and lookback of the {ctype} cursor must be "
                          + ("integers" if kind in ("int", "numeric") else "durations"),
                          hint="for example boundary = 1000" if kind in ("int", "numeric")
                          else 'for example boundary = "10m"')
    return kind


def bound_hint(numeric: bool) -> str:
    """The hint for a --from/--to that is no value of the cursor column."""
    return "give cursor values like 1000" if numeric else \
        "give cursor values like 2026-01-01 or 2026-01-01 12:00"


def lex_problem(text: str) -> str | None:
    """Why ``text`` could reach outside the parentheses it is placed in, or None."""
    depth, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"":
            escapes = ch == "'" and i > 0 and text[i - 1] in "eE"
            j = i + 1
            while j < n:
                if escapes and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                return "an unterminated quote"
            i = j + 1
            continue
        if ch == "$" and i + 1 < n and (text[i + 1] == "$" or text[i + 1].isalpha()
                                        or text[i + 1] == "_"):
            end = text.find("$", i + 1)
            tag = text[i:end + 1] if end > 0 else ""
            if not tag or not all(c.isalnum() or c == "_" for c in tag[1:-1]):
                return "a $ that is not a dollar quote"
            close = text.find(tag, end + 1)
            if close < 0:
                return "an unterminated dollar quote"
            i = close + len(tag)
            continue
        if text.startswith("--", i) or text.startswith("/*", i):
            return "a comment"
        if ch == ";":
            return "a semicolon"
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return "a ')' that closes more than it opened"
        i += 1
    return "unbalanced parentheses" if depth else None


def check_where(conn: psycopg.Connection, info: TableInfo) -> None:
    """Check the table's ``where`` is exactly one boolean row condition.

    The text is lexed (no statement separator or comment, parentheses balanced, so it
    cannot close the parentheses it is placed in), then PostgreSQL parses and plans it in
    ``EXPLAIN SELECT ... WHERE (<expr>)`` inside a read-only transaction, which runs
    nothing. Either failing is a ConfigError naming the table.
    """
    t = info.table
    text = t.where or ""
    where = f"[replicate.sources.{t.source}.tables.{t.name}]"
    problem = "it is empty" if not text.strip() else lex_problem(text)
    if problem:
        raise ConfigError(f"where in {where} is not one row condition: {problem}",
                          hint='write one SQL boolean expression, like where = "site_id = 3"')
    stmt = sql.SQL("EXPLAIN SELECT 1 FROM {} WHERE ({})").format(info.ident, sql.SQL(text))
    own = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    try:
        with conn.transaction():  # a savepoint inside the caller's (read-only) snapshot
            if own:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(stmt, prepare=False)
    except psycopg.Error as e:
        first = (e.diag.message_primary or str(e)).splitlines()[0]
        raise ConfigError(f"where in {where} is not a valid row condition on "
                          f"{t.qualified}: {first}",
                          hint="write one SQL boolean expression over the table's columns, "
                          "naming other tables, functions and types with their schema "
                          "(search_path is pg_catalog)") \
            from None
