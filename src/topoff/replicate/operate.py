"""Operations on configured tables beyond a refresh: reconcile one table into the replica,
and judge every table's freshness for monitoring (the CLI's ``--reconcile`` and
``--check``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from topoff.errors import TargetError
from topoff.replicate.apply import lock_name
from topoff.replicate.check import FreshnessResult, TableFreshness, evaluate, write_prometheus
from topoff.replicate.config import ReplicateConfig
from topoff.replicate.engine import open_target, resolve
from topoff.replicate.repair import ReconcileReport, reconcile_table
from topoff.replicate.report import table_status
from topoff.replicate.store import StateStore
from topoff.targets import duckdb_path
from topoff.targets.base import TableRef
from topoff.targets.iceberg import is_iceberg

log = logging.getLogger("topoff")


def reconcile(config: ReplicateConfig, table: str, threshold: int = 1000) -> ReconcileReport:
    """Compare one replicated table with its source by key ranges and repair the replica
    (deletes, missed updates and inserts), holding the table's refresh lock."""
    s, t = resolve(config, table)
    if is_iceberg(config.target):
        from topoff.replicate.iceberg_reconcile import reconcile_iceberg

        report = reconcile_iceberg(config.target, s, t)
        _log_report(s.name, t.qualified, report)
        return report
    never = TargetError(f"{s.name}.{t.qualified} has not been replicated yet",
                        hint=f"run topoff replicate --table {s.name}.{t.qualified} first")
    path = duckdb_path(config.target)
    if path is not None and not path.exists():
        raise never  # opening it would make an empty replica
    with open_target(config.target) as engine:
        store = StateStore(engine)  # read, never made here: nothing to reconcile without it
        if not engine.table_exists(TableRef("topoff", "replicate_tables")):
            raise never
        tdef = store.definition(s.name, t.qualified)
        if tdef is None:
            raise never
        report = reconcile_table(s.url, s.allow_primary, t, engine, tdef, threshold,
                                 lock=lock_name(s.name, t.qualified))
    _log_report(s.name, t.qualified, report)
    return report


def _log_report(source: str, table: str, report: ReconcileReport) -> None:
    log.info("%s.%s: reconciled %d rows in %.1fs: %d inserted, %d updated, %d deleted",
             source, table, report.compared_rows, report.seconds, report.inserted,
             report.updated, report.deleted)


def freshness(config: ReplicateConfig, warn: float, crit: float,
              lag_warn: float | None = None, lag_crit: float | None = None,
              prometheus: str | None = None) -> FreshnessResult:
    """Judge every configured table by its last successful refresh (and lag); write the
    Prometheus textfile when asked. Reads the target's state only, never the sources."""
    rows: Sequence[TableFreshness] = [
        TableFreshness(f"{r.source}.{r.table}", r.last_refresh, r.paused, r.lag_seconds,
                       r.lag_bound_role)
        for r in table_status(config) if r.configured]
    result = evaluate(rows, warn, crit, lag_warn=lag_warn, lag_crit=lag_crit)
    if prometheus:
        write_prometheus(prometheus, rows, result)
    return result
