"""``topoff export full`` and ``topoff export incremental``."""

from __future__ import annotations

from typing import Any

import click

from topoff.cli.datasets import wait_option
from topoff.cli.options import (
    build_config,
    common_options,
    export_options,
    source_options,
    store_for,
)
from topoff.cli.output import echo_export, echo_prune
from topoff.config import Config
from topoff.dataset.lock import dataset_lock
from topoff.dataset.retention import check_keep_days, prune
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import choose_window
from topoff.progress import Bars
from topoff.stores import Store


@click.group()
def export() -> None:
    """Publish datasets from the source database."""


def _maybe_prune(store: Store, config: Config, keep_days: int | None,
                 keep_full: int | None) -> None:
    days = keep_days or config.retention.keep_days
    if days is None and keep_full is None:
        return
    result = prune(store, config.dataset, days, keep_full or config.retention.keep_full,
                   lookback_days=config.export.lookback_days)
    if result.removed or result.orphans.files or result.orphans.uploads:
        echo_prune(result)
    else:
        kept = f"{days} days" if days else f"{keep_full} full exports"
        click.echo(f"retention: nothing to remove (keeping {kept})")


@export.command("full")
@common_options
@source_options
@export_options
@wait_option
def export_full_cmd(config_path: str | None, source_url: str | None, allow_primary: bool | None,
                    dest: str, jobs: int | None, chunk_size: str | None, strict: bool | None,
                    keep_days: int | None, keep_full: int | None, wait: bool) -> None:
    """Export every configured table from one snapshot, as a new full export.

    \b
    Example:
      topoff export full --config datanommer.toml \\
          --source postgresql://reader@standby/datanommer --to /srv/dumps/datanommer
    """
    config = build_config(config_path, source_url, allow_primary, strict, jobs, chunk_size)
    check_keep_days(keep_days or config.retention.keep_days, config.export.lookback_days)
    store = store_for(dest, config)
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
              help="Start of a window (with --until), e.g. 2026-11-20T06:00.")
@click.option("--until", metavar="TIME", help="End of the window (exclusive).")
@click.option("--lookback-days", type=click.IntRange(0),
              help="Earlier days re-checked for late rows [default: 3].")
@click.option("--force", is_flag=True, help="Publish even if the window may be incomplete.")
@wait_option
def export_incremental_cmd(config_path: str | None, source_url: str | None,
                           allow_primary: bool | None, dest: str, jobs: int | None,
                           chunk_size: str | None, strict: bool | None, keep_days: int | None,
                           keep_full: int | None, day: str | None, since: str | None,
                           until: str | None, lookback_days: int | None, force: bool,
                           wait: bool) -> None:
    """Export one day (or window) of new rows, and republish recent days that changed.

    \b
    Example (the nightly cron line: yesterday, then keep 15 days):
      topoff export incremental --config datanommer.toml --to /srv/dumps/datanommer \\
          --keep-days 15
    """
    window = choose_window(day, since, until)
    config = build_config(config_path, source_url, allow_primary, strict, jobs, chunk_size)
    config = config.with_export(lookback_days=lookback_days)
    check_keep_days(keep_days or config.retention.keep_days, config.export.lookback_days)
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
