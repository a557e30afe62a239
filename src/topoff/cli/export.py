"""``topoff export full`` and ``topoff export incremental``."""

from __future__ import annotations

import logging
from typing import Any

import click

from topoff.cli.datasets import wait_option
from topoff.cli.init import check_and_show, schema_option
from topoff.cli.options import (
    build_config,
    common_options,
    export_options,
    source_options,
    store_for,
)
from topoff.cli.output import echo_export, echo_prune
from topoff.config import MAX_LOOKBACK_DAYS, Config
from topoff.config_values import database_dataset
from topoff.dataset.lock import dataset_lock
from topoff.dataset.retention import check_keep_days, prune
from topoff.errors import ConfigError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import choose_window
from topoff.pgtypes import is_type_name
from topoff.progress import Bars
from topoff.stores import Store

log = logging.getLogger("topoff")

dry_run_option = click.option(
    "--dry-run", is_flag=True,
    help="Check the config against the source and show what would be exported; write nothing.")

@click.group()
def export() -> None:
    """Publish datasets from the source database."""


def _maybe_prune(store: Store, config: Config, keep_days: int | None,
                 keep_full: int | None) -> None:
    days = keep_days or config.retention.keep_days
    keep_full = keep_full or config.retention.keep_full  # either in the config prunes too
    if days is None and keep_full is None:
        return
    result = prune(store, config.dataset, days, keep_full or 1,
                   lookback_days=config.export.lookback_days)
    if result.removed or result.orphans.files or result.orphans.uploads:
        echo_prune(result)
    else:
        kept = f"{days} days" if days else f"{keep_full} full exports"
        click.echo(f"retention: nothing to remove (keeping {kept})")


def everything(config: Config, schemas: tuple[str, ...]) -> Config:
    """No config file: every table of the source (or of ``schemas``), every column."""
    from topoff.config_writer import read_source
    from topoff.sources.discover import export_everything

    assert config.source_url is not None
    database, found = read_source(config.source_url, config.allow_primary,
                                  list(schemas) or None, "topoff export")
    dataset = database_dataset(database, "write a config with `topoff init --source URL "
                               "--dataset NAME` and pass --config")
    tables = export_everything(found)
    unreadable = [t.qualified for t in found if t.is_table and not t.readable]
    if unreadable:
        log.warning("skipping %d tables this role may not SELECT: %s", len(unreadable),
                    ", ".join(unreadable))
    unlogged = [t.qualified for t in found if t.is_table and t.readable and t.unlogged]
    if unlogged:
        log.warning("skipping %d unlogged tables, of which a standby holds no rows: %s",
                    len(unlogged), ", ".join(unlogged))
    exported = {(t.schema, t.name) for t in tables}
    odd = [f"{t.qualified}.{c} ({typ})" for t in found if (t.schema, t.name) in exported
           for c, typ in t.columns if not is_type_name(typ)]
    if odd:  # every replica would refuse the whole dataset
        raise ConfigError(f"consumers refuse to create the types of {', '.join(odd):.300}",
                          hint="write a config with `topoff init --source URL`, mark those "
                          "columns private, and pass --config")
    if not tables:
        where = f"schema {', '.join(schemas)}" if schemas else "any non-system schema"
        raise ConfigError(f"{database} has no table in {where} that this role can read",
                          hint="check --source and --schema")
    log.warning("no --config: exporting every column of all %d tables of %s; this publishes "
                "everything, private data included (write a reviewed config with `topoff init`)",
                len(tables), database)
    return config.with_overrides(tables=tables, dataset=dataset)


@export.command("full")
@common_options
@source_options
@export_options
@schema_option
@dry_run_option
@wait_option
def export_full_cmd(config_path: str | None, source_url: str | None, allow_primary: bool | None,
                    dest: str, jobs: int | None, chunk_size: str | None, strict: bool | None,
                    keep_days: int | None, keep_full: int | None,
                    schemas: tuple[str, ...], dry_run: bool, wait: bool) -> None:
    """Export every configured table from one snapshot, as a new full export.

    Without --config, every table of every non-system schema (or of --schema) is exported
    with all its columns, and a warning says so: write a reviewed config with `topoff init`.

    \b
    Example:
      topoff export full --config datanommer.toml \\
          --source postgresql://reader@standby/datanommer --to /srv/dumps/datanommer
    """
    if config_path and schemas:
        raise ConfigError("--schema is for exports without --config",
                          hint="the config file lists the tables to export")
    if strict and not config_path:
        raise ConfigError("--strict needs a config file that classifies the columns",
                          hint="write one with `topoff init --source URL` and pass --config")
    config = build_config(config_path, source_url, allow_primary, strict, jobs, chunk_size)
    check_keep_days(keep_days or config.retention.keep_days, config.export.lookback_days)
    if not dry_run:
        store = store_for(dest, config)
    if not config_path:
        config = everything(config, schemas)
    if dry_run:
        check_and_show(config, config_path or "no --config")
        return
    quiet = click.get_current_context().obj.get("quiet")
    with dataset_lock(store, config.dataset, wait) as locked:
        with Bars(enabled=None if not quiet else False) as bars:
            result = export_full(config, locked, on_rows=bars.rows())
        echo_export(result, store.url)
        _maybe_prune(locked, config, keep_days, keep_full)


@export.command("incremental")
@common_options
@source_options
@export_options
@click.option("--date", "day", metavar="YYYY-MM-DD",
              help="The UTC day to export [default: yesterday].")
@click.option("--since", metavar="TIME",
              help="Start of a window (with --until), e.g. 2026-11-20T06:00 (UTC unless "
              "it has an offset, +05:45).")
@click.option("--until", metavar="TIME",
              help="End of the window (exclusive; UTC unless it has an offset).")
@click.option("--lookback-days", type=click.IntRange(0, MAX_LOOKBACK_DAYS),
              help="Earlier days re-checked for late rows [default: 3].")
@click.option("--force", is_flag=True, help="Publish even if the window may be incomplete.")
@dry_run_option
@wait_option
def export_incremental_cmd(config_path: str | None, source_url: str | None,
                           allow_primary: bool | None, dest: str, jobs: int | None,
                           chunk_size: str | None, strict: bool | None, keep_days: int | None,
                           keep_full: int | None, day: str | None, since: str | None,
                           until: str | None, lookback_days: int | None, force: bool,
                           dry_run: bool, wait: bool) -> None:
    """Export one day (or window) of new rows, and republish recent days that changed.

    \b
    Example (the nightly cron line: yesterday, then keep 15 days):
      topoff export incremental --config datanommer.toml --to /srv/dumps/datanommer \\
          --keep-days 15
    """
    if not config_path:
        raise ConfigError("export incremental needs a config file: each table's cursor "
                          "decides which rows belong to a day",
                          hint="write one with `topoff init --source URL`, review it, and pass "
                          "--config FILE")
    window = choose_window(day, since, until)
    config = build_config(config_path, source_url, allow_primary, strict, jobs, chunk_size)
    config = config.with_export(lookback_days=lookback_days)
    check_keep_days(keep_days or config.retention.keep_days, config.export.lookback_days,
                    lookback_option=True)
    if dry_run:
        check_and_show(config, config_path)
        return
    store = store_for(dest, config)
    quiet = click.get_current_context().obj.get("quiet")
    with dataset_lock(store, config.dataset, wait) as locked:
        with Bars(enabled=None if not quiet else False) as bars:
            result = export_incremental(config, locked, window, force=force,
                                        on_rows=bars.rows())
        echo_export(result, store.url)
        _maybe_prune(locked, config, keep_days, keep_full)


def register(group: Any) -> None:
    group.add_command(export)
