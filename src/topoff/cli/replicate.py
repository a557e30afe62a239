"""``topoff replicate``: keep an analytics replica of live tables topped off."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import click

from topoff.cli.options import common_options
from topoff.cli.signals import term_as_interrupt
from topoff.errors import ConfigError, LockedError


def _lag(seconds: float | None) -> str:
    from topoff.monitoring import human

    return "-" if seconds is None else human(seconds)


def _status(config: Any, as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from topoff.replicate.check import upper_bound_notes
    from topoff.replicate.report import table_status

    rows = table_status(config)
    for note in upper_bound_notes((f"{r.source}.{r.table}", r.lag_bound_role) for r in rows):
        logging.getLogger("topoff").warning("%s", note)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    table = Table(box=None, padding=(0, 2))
    for col, just in (("source", "left"), ("table", "left"), ("method", "left"),
                      ("rows", "right"), ("total", "right"), ("last refresh", "left"),
                      ("lag", "right"), ("paused", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        when = r.last_refresh.strftime("%Y-%m-%d %H:%M:%SZ") if r.last_refresh else "never"
        table.add_row(r.source, r.table + ("" if r.configured else " (not configured)"),
                      r.method, f"{r.rows:,}", f"{r.rows_total:,}", when, _lag(r.lag_seconds),
                      "yes" if r.paused else "")
    Console(width=120).print(table)


def _check(config: Any, warn_age: str, crit_age: str, lags: tuple[str | None, str | None],
           prometheus: str | None) -> int:
    from topoff.errors import TopoffError
    from topoff.redact import redact
    from topoff.replicate import check, operate

    warn, crit = check.parse_age(warn_age, "--warn"), check.parse_age(crit_age, "--crit")
    if (lags[0] is None) != (lags[1] is None):
        raise ConfigError("--warn-lag and --crit-lag go together",
                          hint="give both, e.g. --warn-lag 15m --crit-lag 1h")
    lag_warn, lag_crit = (None, None) if lags[0] is None or lags[1] is None else (
        check.parse_age(lags[0], "--warn-lag"), check.parse_age(lags[1], "--crit-lag"))
    try:
        result = operate.freshness(config, warn, crit, lag_warn, lag_crit,
                                   prometheus=prometheus)
    except TopoffError as e:
        if isinstance(e, ConfigError):
            raise
        result = check.FreshnessResult(check.CRITICAL, "REPLICATE CRITICAL - cannot read "
                                       f"the replica's state: {redact(e.message)}")
        if prometheus:
            check.write_prometheus(prometheus, [], result)
    click.echo(result.text)
    return result.code


def _reconcile(config: Any, table: str) -> None:
    from topoff.replicate import operate

    r = operate.reconcile(config, table)
    click.echo(f"{table}: compared {r.compared_rows:,} rows ({r.ranges_hashed:,} ranges "
               f"hashed) in {r.seconds:.1f}s; {r.inserted:,} inserted, {r.updated:,} "
               f"updated, {r.deleted:,} deleted")


def _finish(runs: list[Any]) -> int:
    """A summary line; the exit code of the first failed table (0 when none failed)."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    moved = sum(r.rows for r in runs)
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    click.echo(f"{len(runs)} tables: {parts}; {moved:,} rows moved")
    failed = [r for r in runs if r.status == "failed"]
    as_json = (click.get_current_context().obj or {}).get("log_format") == "json"
    for r in failed:
        if as_json:  # stderr stays JSON lines
            click.echo(json.dumps({"level": "error", "table": f"{r.source}.{r.table}",
                                   "message": r.error, "exit_code": r.exit_code}), err=True)
        else:
            click.echo(f"error: {r.source}.{r.table}: {r.error}", err=True)
    return failed[0].exit_code if failed else 0


@click.command("replicate")
@click.pass_context
@common_options
@click.option("--once", is_flag=True, help="Refresh every table once, then exit (the default).")
@click.option("--every", metavar="DURATION",
              help="Refresh every table, then again each DURATION (5m, 1h) until stopped.")
@click.option("--table", "tables", multiple=True, metavar="NAME",
              help="Only this table (source.schema.name, source.name or name); repeatable.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Tables refreshed at once (PostgreSQL target; DuckDB has one writer).")
@click.option("--status", "status", is_flag=True,
              help="Show each table's rows, last refresh, lag and pause state.")
@click.option("--json", "as_json", is_flag=True, help="With --status: print JSON.")
@click.option("--repull", metavar="TABLE", help="Read TABLE again from the source and merge it.")
@click.option("--from", "lo", metavar="VALUE", help="With --repull: the lowest cursor value.")
@click.option("--to", "hi", metavar="VALUE", help="With --repull: the highest cursor value.")
@click.option("--pause", metavar="TABLE", help="Skip TABLE in later runs until --resume.")
@click.option("--resume", metavar="TABLE", help="Refresh TABLE again in later runs.")
@click.option("--resync", metavar="TABLE",
              help="Drop TABLE in the target and copy it again (the others are not touched).")
@click.option("--reconcile", metavar="TABLE",
              help="Compare TABLE with its source by key ranges and repair the replica "
              "(deletes, missed updates).")
@click.option("--check", "check", is_flag=True,
              help="Freshness check for monitoring: one status line, Nagios exit codes.")
@click.option("--warn", "warn_age", default="2h", show_default=True, metavar="AGE",
              help="With --check: WARNING when a table's last refresh is older.")
@click.option("--crit", "crit_age", default="6h", show_default=True, metavar="AGE",
              help="With --check: CRITICAL when a table's last refresh is older.")
@click.option("--warn-lag", "warn_lag", metavar="AGE",
              help="With --check: WARNING when a table's data is further behind its source's "
              "primary (with --crit-lag).")
@click.option("--crit-lag", "crit_lag", metavar="AGE",
              help="With --check: CRITICAL when a table's data is further behind its "
              "source's primary (with --warn-lag).")
@click.option("--prometheus", "prometheus_file", type=click.Path(dir_okay=False),
              help="With --check: also write textfile-collector metrics here (atomically).")
def replicate_cmd(ctx: click.Context, config_path: str | None, once: bool, every: str | None,
                  tables: tuple[str, ...], jobs: int, status: bool, as_json: bool,
                  repull: str | None, lo: str | None, hi: str | None, pause: str | None,
                  resume: str | None, resync: str | None, reconcile: str | None,
                  check: bool, warn_age: str, crit_age: str, warn_lag: str | None,
                  crit_lag: str | None, prometheus_file: str | None) -> None:
    """Refresh the tables of the config's [replicate] section into its target.

    Each table is refreshed in one target transaction with its state; a failed table does
    not stop the others (the exit code is the first failure's, docs/exit-codes.md). A
    table another run is refreshing is skipped ("locked").

    \b
    Example:
      topoff replicate --config replica.toml --once
      topoff replicate --config replica.toml --reconcile matomo.log_visit
      topoff replicate --config replica.toml --check --warn 30m --crit 2h
    """
    if not config_path:
        raise ConfigError("topoff replicate needs a config file",
                          hint="pass --config replica.toml (with a [replicate] section) or "
                          "set TOPOFF_CONFIG")
    chosen = [a for a, v in (("status", status), ("repull", repull), ("pause", pause),
                             ("resume", resume), ("resync", resync), ("reconcile", reconcile),
                             ("check", check)) if v]
    if len(chosen) > 1 or (chosen and (once or every or tables)) or (once and every):
        raise ConfigError("choose one of --once, --every, --status, --repull, --pause, "
                          "--resume, --resync, --reconcile, --check",
                          hint="run topoff replicate once per action")
    if (prometheus_file or warn_lag or crit_lag) and not check:
        raise ConfigError("--prometheus, --warn-lag and --crit-lag go with --check",
                          hint="topoff replicate --check --prometheus FILE")
    if (lo or hi) and not repull:
        raise ConfigError("--from and --to go with --repull",
                          hint="topoff replicate --repull TABLE --from X --to Y")
    if as_json and not status:
        raise ConfigError("--json goes with --status", hint="topoff replicate --status --json")
    from topoff.replicate import engine
    from topoff.replicate.config import load_replicate, parse_interval

    with term_as_interrupt():  # every action: SIGTERM rolls back like Ctrl-C, exit 130
        config = load_replicate(config_path)
        if check:
            ctx.exit(_check(config, warn_age, crit_age, (warn_lag, crit_lag), prometheus_file))
        if reconcile:
            _reconcile(config, reconcile)
            return
        if status:
            _status(config, as_json)
            return
        if pause or resume:
            engine.set_paused(config, pause or resume or "", bool(pause))
            return
        if repull or resync:
            run = engine.repull(config, repull, lo, hi) if repull else \
                engine.resync(config, resync or "")
            code = _finish([run])
            if run.status == "locked":  # asked for by name, and not done: say so
                what = "repulled" if repull else "resynced"
                raise LockedError(f"{run.source}.{run.table} was not {what}: another run is "
                                  "refreshing it", hint="run the same command again when "
                                  "that run has ended")
            ctx.exit(code)
        period: timedelta | None = None
        if every:
            hint = "for example --every 5m (durations: s, m, h, d; at least 1s)"
            try:
                value = parse_interval(every, "--every")
            except ConfigError as e:
                raise ConfigError(e.message, hint=hint) from None
            if not isinstance(value, timedelta) or value.total_seconds() < 1:
                raise ConfigError(f"--every {every} is not a duration of at least 1s",
                                  hint=hint)
            if value > timedelta(days=366):  # a sleep that long is no schedule
                raise ConfigError(f"--every {every} is more than a year",
                                  hint="for example --every 1d; or run --once from a timer")
            period = value
        while True:
            start = time.monotonic()
            code = _finish(engine.run_once(config, list(tables) or None, jobs))
            if period is None:
                break
            time.sleep(max(0.0, start + period.total_seconds() - time.monotonic()))
        if code:
            ctx.exit(code)


def register(group: Any) -> None:
    group.add_command(replicate_cmd)

