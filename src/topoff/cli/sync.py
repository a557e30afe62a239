"""``topoff sync``, ``topoff status`` and ``topoff verify``: the consumer's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from topoff.cli.options import build_config, common_options, store_options
from topoff.cli.output import size
from topoff.cli.stderr import echo_hint
from topoff.errors import DIFFERENCES, ConfigError, NoReplicaError
from topoff.export.windows import parse_date
from topoff.progress import Bars
from topoff.redact import redact


def _store_options(config_path: str | None) -> Any:
    """How to reach the dataset: the [store] settings of --config / $TOPOFF_CONFIG, if any."""
    return store_options(build_config(config_path, need_source=False).store)


@click.command("sync")
@common_options
@click.argument("origin", metavar="FROM")
@click.argument("target", metavar="[TARGET]", default="replica.duckdb")
@click.option("--tables", metavar="A,B", multiple=True,
              help="Only these tables (partial replica); repeatable.")
@click.option("--since", metavar="YYYY-MM-DD",
              help="Only rows from this UTC day on (partial replica).")
@click.option("--schema", metavar="NAME",
              help="Put every table in this schema (several datasets in one replica).")
@click.option("--primary-keys/--no-primary-keys", default=None,
              help="Primary key indexes in the replica [default: yes for PostgreSQL, no for "
              "DuckDB, whose index is rewritten at every checkpoint].")
@click.option("--rebase", is_flag=True,
              help="Drop the replica's tables and rebuild from the newest full export.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where downloads wait to be applied [default: ~/.cache/topoff/downloads].")
@click.option("--memory-limit", metavar="SIZE", envvar="TOPOFF_DUCKDB_MEMORY_LIMIT",
              help="DuckDB replicas: the most memory DuckDB may use, e.g. 512MB; beyond it, "
              "it spills to TARGET.tmp [default: 1GB].")
def sync_cmd(config_path: str | None, origin: str, target: str, tables: tuple[str, ...],
             since: str | None, schema: str | None, primary_keys: bool | None, rebase: bool,
             cache_dir: Path | None, memory_limit: str | None) -> None:
    """Build or top off the replica TARGET from the dataset at FROM.

    FROM is a directory, an http(s):// URL of a published directory, or s3://bucket/prefix.
    TARGET is a postgresql:// URL, a libpq string ('host=H dbname=D'), a DuckDB file
    (default: replica.duckdb), or iceberg:catalog.toml (docs/iceberg.md). Exit codes:
    docs/exit-codes.md.

    \b
    Example:
      topoff sync https://dumps.example.org/datanommer replica.duckdb
    """
    from topoff.sync import SyncOptions, sync

    opts = SyncOptions(
        tables=[t.strip() for t in ",".join(tables).split(",") if t.strip()] if tables
        else None,
        since=parse_date(since) if since else None, rebase=rebase, schema=schema,
        primary_keys=primary_keys, cache_dir=cache_dir, store_options=_store_options(config_path),
        memory_limit=memory_limit)
    if opts.tables is not None and not opts.tables:
        raise ConfigError("--tables is empty", hint="give table names separated by commas")
    quiet = click.get_current_context().obj.get("quiet")
    with Bars(enabled=None if not quiet else False) as bars:
        opts.download_progress = (lambda name, total: bars.bytes_bar(name, total, name)) \
            if bars.enabled else None
        opts.step_progress = (lambda what, total: bars.step(what, total, what)) \
            if bars.enabled else None
        result = sync(origin, target, opts)
    parts = []
    if result.base_loaded:
        parts.append(f"built from {result.base_loaded}")
    if result.applied:
        parts.append(f"applied {len(result.applied)} partitions "
                     f"({result.applied[0]} .. {result.applied[-1]})")
    if not parts:
        parts.append("already up to date")
    click.echo(f"{redact(target)}: {', '.join(parts)}; {result.rows_held:,} rows held "
               f"({result.rows:,} written by this run), "
               f"{size(result.downloaded_bytes)} downloaded, {result.seconds:.1f}s "
               f"(publication {result.last_sequence})")


@click.command("status")
@common_options
@click.argument("target", default="replica.duckdb")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--offline", is_flag=True, help="Do not read the dataset to see what is pending.")
def status_cmd(config_path: str | None, target: str, as_json: bool, offline: bool) -> None:
    """Show what the replica TARGET has applied, how far behind it is, and its newest data.

    Exits with status 7 when TARGET holds no topoff replica (docs/exit-codes.md).

    \b
    Example:
      topoff status replica.duckdb
    """
    from topoff.status import status

    reports = status(target, check_origin=not offline,
                     store_options=_store_options(config_path) if not offline else None)
    if not reports:
        raise NoReplicaError(f"{target} holds no topoff replica",
                             hint=f"check the path or URL, or build one with "
                             f"`topoff sync FROM {target}`")
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=110)
    for r in reports:
        click.echo(f"dataset {r.dataset} from {r.origin}")
        click.echo(f"  built from {r.base} ({r.status}), last applied {r.last_applied} at "
                   f"{r.last_applied_at}, publication {r.last_sequence}")
        click.echo(f"  {_progress(r)}" + (f"; rows since {r.since}" if r.since else ""))
        table = Table(box=None, padding=(0, 2))
        for col, just in (("table", "left"), ("method", "left"), ("rows", "right"),
                          ("newest", "left")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for t in r.tables:
            table.add_row(t.replica_table, t.method, f"{t.rows:,}", t.newest or "")
        console.print(table)


def _progress(r: Any) -> str:
    """How far the replica is from its dataset, in words."""
    if not r.complete:
        return (f"INCOMPLETE: the first load from {r.base} has not finished; run "
                "`topoff sync` again to resume it")
    if r.origin_error:
        return f"unknown ({r.origin_error})"
    if r.behind is None:
        return "not checked (--offline)"
    if r.behind == 0:
        return "up to date"
    return f"{r.behind} partitions behind (next: {r.pending[0]})"


@click.command("verify")
@common_options
@click.argument("target", default="replica.duckdb")
@click.option("--against", "source_url", metavar="URL",
              help="The source database (a hot standby) [default: the config's [source] "
                   "url, or TOPOFF_SOURCE_URL].")
@click.option("--allow-primary", is_flag=True, default=None,
              help="Allow reading a primary server.")
@click.option("--dataset", help="Which dataset, when the replica holds several.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def verify_cmd(config_path: str | None, target: str, source_url: str | None,
               allow_primary: bool | None, dataset: str | None, as_json: bool) -> None:
    """Compare the replica TARGET with the source database, table by table and day by day.

    Exits with status 1 when they differ (see docs/exit-codes.md).

    \b
    Example:
      topoff verify replica.duckdb --against postgresql://reader@standby/datanommer
    """
    from topoff.targets.errors import engine_errors
    from topoff.verify import verify

    config = build_config(config_path, source_url, allow_primary, need_source=False)
    if not config.source_url:
        raise ConfigError("no source database to compare with",
                          hint="pass --against postgresql://user@standby/db, set "
                               "TOPOFF_SOURCE_URL, or give --config with [source] url")
    with engine_errors(target):
        report = verify(target, config.source_url, config.allow_primary, dataset)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        for t in report.tables:
            state = "equal" if t.equal else f"DIFFERS on {len(t.differences)} day(s)"
            newer = f", {t.newer_rows:,} newer rows not yet published" if t.newer_rows else ""
            span = f" over {t.days} days" if t.days else ""
            click.echo(f"{t.table}: {state} ({t.compared_rows:,} rows{span}{newer})")
            for d in t.differences:
                where = d.day or "whole table"
                click.echo(f"  {where}: source {d.source_rows:,} rows, replica "
                           f"{d.replica_rows:,} rows ({d.what})")
        for note in dict.fromkeys(report.notes):
            click.echo(f"note: {note}")
        click.echo("replica and source are equal" if report.equal else
                   "replica and source DIFFER")
    if not report.equal:
        hint = getattr(report, "hint", None) or (
            "the source changed after those days were published (or the replica was "
            "changed by hand): ask the publisher to republish them, or rebuild with "
            "`topoff sync --rebase` from a newer full export")
        echo_hint(hint, "the replica and the source differ", exit_code=DIFFERENCES)
        click.get_current_context().exit(DIFFERENCES)


def register(group: Any) -> None:
    group.add_command(sync_cmd)
    group.add_command(status_cmd)
    group.add_command(verify_cmd)
