"""``topoff check-config``: a configuration checked against the source, nothing written.

Every problem is collected (not only the first): tables and columns that do not exist,
columns not classified under ``strict``, cursors that are not timestamps, keys that are
private or missing, types a consumer would refuse, filters that do not parse. When there is
none, the export's own introspection runs in the same read-only snapshot, so a
configuration that passes here passes the export's checks too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import psycopg
from psycopg import sql

from topoff.config import Config, TableConfig
from topoff.errors import ConfigError
from topoff.export.session import SnapshotSession
from topoff.pgtypes import is_time_cursor, is_type_name
from topoff.sources.catalog import introspect
from topoff.sources.discover import FoundTable, discover, schemas


@dataclass(frozen=True)
class Problem:
    message: str
    hint: str


@dataclass(frozen=True)
class PlanRow:
    table: str
    method: str
    cursor: str | None
    columns: int  # exported
    source_columns: int
    est_rows: float  # -1: never analyzed
    cursor_indexed: bool


@dataclass
class CheckResult:
    problems: list[Problem]
    plan: list[PlanRow]
    database: str = ""
    in_recovery: bool = True


def _near(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def table_problems(tc: TableConfig, found: FoundTable | None, strict: bool,
                    names: list[str]) -> list[Problem]:
    where = f"[tables.{tc.name}]"
    if found is None:
        return [Problem(f"table {tc.qualified} does not exist on the source"
                        f"{_near(tc.qualified, names)}",
                        f"fix or remove {where}, or check --source")]
    out = []
    cols = dict(found.columns)
    for col in dict.fromkeys([*tc.columns, *(c for c in (tc.cursor, *(tc.key or ())) if c)]):
        if col not in cols:
            out.append(Problem(f"{where} names column {col!r}, which {tc.qualified} does not "
                               f"have{_near(col, list(cols))}",
                               f"columns of {tc.qualified}: {', '.join(cols)}"))
    unclassified = [c for c in cols if c not in tc.columns]
    if unclassified and strict:
        n = len(unclassified)
        out.append(Problem(f"{tc.qualified}: {n} column{' is' if n == 1 else 's are'} not "
                           f"classified public or private (strict): {', '.join(unclassified)}",
                           f"add each one as name = \"public\" or \"private\" under "
                           f"[tables.{tc.name}.columns]"))
    private = tc.private_columns()
    exported = [c for c in cols if c not in private]
    if not cols:
        out.append(Problem(f"{tc.qualified} has no columns; nothing to export",
                           f"remove {where} from the config"))
    elif not exported:
        out.append(Problem(f"every column of {tc.qualified} is private; nothing to export",
                           f"remove {where} or make a column public"))
    for c in exported:
        if not is_type_name(cols[c]):
            out.append(Problem(f"column {c} of {tc.qualified} has type {cols[c]!r}, which "
                               "consumers refuse to create",
                               f"mark {c} private, or export a view that casts it to text"))
    key = list(tc.key) if tc.key else found.primary_key
    for k in key:
        if k in private:
            out.append(Problem(f"key column {k} of {tc.qualified} is marked private",
                               "key columns are published; make it public or set `key`"))
    if tc.method == "upsert" and not key:
        out.append(Problem(f"{tc.qualified} uses method upsert but has no primary key",
                           f"set key = [\"<unique column>\"] under {where}"))
    folds = [k for k in key if k in found.folding]
    if tc.method == "upsert" and folds:
        out.append(Problem(f"key column {folds[0]} of {tc.qualified} compares text "
                           "case-insensitively (citext, a nondeterministic collation): a "
                           "replica's upsert would keep both spellings of a key",
                           f"set key = [...] under {where}, or use method = \"snapshot\""))
    if tc.cursor and tc.cursor in cols and not is_time_cursor(cols[tc.cursor]):
        native = found.natives.get(tc.cursor)  # a MariaDB column: its own type's name
        out.append(Problem(f"cursor column {tc.cursor} of {tc.qualified} has type "
                           f"{native or cols[tc.cursor]}",
                           "a cursor must be a DATETIME, TIMESTAMP or DATE column" if native
                           else "a cursor must be a timestamp, timestamp with time zone or "
                           "date column"))
    if not found.readable:
        out.append(Problem(f"the source role may not SELECT {tc.qualified}",
                           f"GRANT SELECT ON {tc.qualified} to the role, on the primary"))
    return out


def _filter_problem(conn: psycopg.Connection, tc: TableConfig) -> Problem | None:
    try:
        with conn.transaction():  # a savepoint: the snapshot survives a bad filter
            conn.execute(sql.SQL("SELECT 1 FROM {} WHERE ({}) LIMIT 0").format(
                sql.Identifier(tc.schema, tc.name), sql.SQL(tc.filter)))  # type: ignore[arg-type]
    except psycopg.Error as e:
        return Problem(f"filter of {tc.qualified} is not valid: {str(e).splitlines()[0]}",
                       f"fix `filter` under [tables.{tc.name}]; it is an SQL condition over "
                       "the table's columns")
    return None


NO_TABLES = Problem("no tables are configured",
                    "list the tables under [tables.<name>], or write a config with "
                    "`topoff init`")


def check_config(config: Config) -> CheckResult:
    """Check every configured table against the source, in one read-only snapshot."""
    assert config.source_url is not None
    if not config.tables:
        return CheckResult([NO_TABLES], [])
    with SnapshotSession(config.source_url, config.allow_primary,
                         "topoff check-config") as session:
        info = session.open()
        conn = session.conn
        assert conn is not None
        wanted = sorted({t.schema for t in config.tables} & set(schemas(conn)))
        listed = discover(conn, wanted, include_all=True) if wanted else []
        found = {(t.schema, t.name): t for t in listed}
        names = [f"{s}.{n}" for s, n in found]
        problems = []
        for tc in config.tables:
            ft = found.get((tc.schema, tc.name))
            mine = table_problems(tc, ft, config.strict, names)
            if not mine and tc.filter:
                bad = _filter_problem(conn, tc)
                mine = [bad] if bad else []
            problems.extend(mine)
        if problems:
            return CheckResult(problems, [], info.database, info.in_recovery)
        tables = introspect(conn, config)  # the export's own checks, same snapshot
        plan = [PlanRow(t.qualified, t.config.method, t.config.cursor, len(t.columns),
                        len(t.source_columns), found[(t.config.schema, t.config.name)].est_rows,
                        not t.config.cursor
                        or t.config.cursor in found[(t.config.schema, t.config.name)].indexed)
                for t in tables]
        return CheckResult([], plan, info.database, info.in_recovery)


def raise_for(result: CheckResult, config_path: str) -> None:
    if result.problems:
        n = len(result.problems)
        raise ConfigError(f"{config_path}: {n} problem{'s' if n > 1 else ''} against the source",
                          hint="fix them and run `topoff check-config` again")
