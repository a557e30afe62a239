"""``topoff check-config`` (and ``export --dry-run``) for a MariaDB or MySQL source: the
problems :mod:`topoff.check` finds for PostgreSQL, found in MariaDB's catalog
(:mod:`topoff.sources.mariadb.discover`), then the export's own checks of each table in
the same snapshot, so a configuration that passes here passes the export's checks too. A
key under a collation that folds is left to the export's check, which names the
collation and takes a key the configuration names.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mysql.connector import errors as my_errors

from topoff.check import NO_TABLES, CheckResult, PlanRow, Problem, table_problems
from topoff.config import Config, TableConfig
from topoff.errors import ConfigError, SourceError
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.discover import databases, discover
from topoff.sources.mariadb.source import MariaSource
from topoff.sources.mariadb.types import quote_ident


def _filter_problem(conn: Any, tc: TableConfig) -> Problem | None:
    cur = conn.cursor()
    try:  # the operator's own SQL from the config file, in a query that reads no row
        cur.execute(f"SELECT 1 FROM {quote_ident(tc.schema)}.{quote_ident(tc.name)} "
                    f"WHERE ({tc.filter}) LIMIT 0")
        cur.fetchall()
    except my_errors.Error as e:
        return Problem(f"filter of {tc.qualified} is not valid: {e.msg}",
                       f"fix `filter` under [tables.{tc.name}]; it is an SQL condition over "
                       "the table's columns")
    finally:
        cur.close()
    return None


def _unreadable(conn: Any, tc: TableConfig) -> Problem:
    """Why the user cannot read ``tc`` (columns granted in part, as the export says)."""
    try:
        read_table(conn, tc.schema, tc.name)
    except SourceError as e:
        return Problem(e.message, e.hint or f"GRANT SELECT ON {tc.qualified} to the user")
    return Problem(f"the source user may not SELECT {tc.qualified}",
                   f"GRANT SELECT ON {tc.qualified} to the user")


def check_maria(config: Config) -> CheckResult:
    """Check every configured table against the MariaDB source, in one snapshot."""
    assert config.source_url is not None
    if not config.tables:
        return CheckResult([NO_TABLES], [])
    with MariaSource(config.source_url, config.allow_primary, "topoff check-config") as src:
        info = src.open()
        wanted = sorted({t.schema for t in config.tables} & set(databases(src.conn)))
        listed = discover(src.conn, wanted, "") if wanted else []
        # a key under a collation is the export's own check (it names the collation, and
        # takes a key the config names): PostgreSQL's folding test would refuse both
        found = {(t.schema, t.name): replace(t, folding=set()) for t in listed}
        names = [f"{s}.{n}" for s, n in found]
        problems: list[Problem] = []
        for tc in config.tables:
            ft = found.get((tc.schema, tc.name))
            if ft is not None and not ft.readable:  # no column to check: say why
                problems.append(_unreadable(src.conn, tc))
                continue
            mine = table_problems(tc, ft, config.strict, names)
            if not mine and tc.filter:
                bad = _filter_problem(src.conn, tc)
                mine = [bad] if bad else []
            problems.extend(mine)
        if not problems:
            try:  # the export's own checks, one table at a time
                one = config.with_export(jobs=1)  # no worker connections
                tables = [src.tables(one.with_overrides(tables=(tc,)))[0]
                          for tc in config.tables]
            except ConfigError as e:
                problems.append(Problem(e.message, e.hint or "fix the config"))
        if problems:
            return CheckResult(problems, [], info.database, info.in_recovery)
        plan = []
        for t in tables:
            ft = found[(t.config.schema, t.config.name)]
            plan.append(PlanRow(t.qualified, t.config.method, t.config.cursor, len(t.columns),
                                len(t.source_columns), ft.est_rows,
                                not t.config.cursor or t.config.cursor in ft.indexed))
        return CheckResult([], plan, info.database, info.in_recovery)
