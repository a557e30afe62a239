"""``topoff prune`` and ``topoff list``: retention and a look at what is published."""

from __future__ import annotations

from datetime import timedelta

import click

from topoff.cli.options import build_config, common_options, store_for
from topoff.cli.output import echo_datasets, echo_index, echo_prune
from topoff.config import MAX_KEEP_DAYS, parse_duration
from topoff.dataset.index import read_index
from topoff.dataset.lock import dataset_lock
from topoff.dataset.retention import check_keep_days, prune
from topoff.dataset.roots import find_datasets
from topoff.errors import ConfigError, NotPublishedError, StoreError

wait_option = click.option(
    "--wait", is_flag=True,
    help="If another export or prune holds the dataset's lock, wait for it instead of "
    "stopping (exit status 5).")


@click.command("prune")
@common_options
@click.option("--to", "dest", required=True, metavar="DEST", help="The published dataset.")
@click.option("--keep-days", type=click.IntRange(1, MAX_KEEP_DAYS), metavar="N",
              help="Remove the incremental days before the last N UTC days (15 on Nov 30: "
              "the days before Nov 15); more than the exporter's lookback_days. Default: the "
              "config's [retention] keep_days (one of the two is needed).")
@click.option("--keep-full", type=click.IntRange(1),
              help="Full exports kept (the newest is always kept). Default: the config's "
              "[retention] keep_full, else 1.")
@click.option("--grace", default="6h", show_default=True, metavar="DURATION",
              help="Remove files no publication lists (left by killed exports) once older "
              "than this (e.g. 6h, 30m, 90s).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
@wait_option
def prune_cmd(config_path: str | None, dest: str, keep_days: int | None,
              keep_full: int | None,
              grace: str, dry_run: bool, wait: bool) -> None:
    """Delete old incremental days, old full exports and files left by killed exports.

    Never removes the newest full export, nor anything published after it (what a replica
    built from it needs to be brought up to date), nor files newer than --grace.

    \b
    Example:
      topoff prune --to /srv/dumps/datanommer --keep-days 15 --keep-full 2 --dry-run
    """
    config = build_config(config_path, need_source=False)
    keep_days = keep_days or config.retention.keep_days
    if keep_days is None:
        raise ConfigError("no retention given: how many days to keep",
                          hint="pass --keep-days N, or set [retention] keep_days in the config")
    check_keep_days(keep_days, config.export.lookback_days)  # before waiting for the lock
    keep_full = keep_full or config.retention.keep_full or 1
    grace_period = timedelta(seconds=parse_duration(grace, "--grace"))
    store = store_for(dest, config)
    index = read_index(store)
    if index is None:  # a mistyped --to: say so, and make nothing there (not even the lock)
        raise NotPublishedError(f"nothing is published at {store.url} (no index.json)",
                                hint="check --to: it is the dataset's directory or URL, "
                                "where index.json is")
    with dataset_lock(store, index.dataset, wait) as locked:
        echo_prune(prune(locked, None, keep_days, keep_full, dry_run,
                         lookback_days=config.export.lookback_days, grace=grace_period))


@click.command("list")
@common_options
@click.argument("location")
def list_cmd(config_path: str | None, location: str) -> None:
    """List the publications of a dataset (a local directory, http(s):// URL or s3://), or
    the datasets under a store root (a local directory or s3://: an HTTP site cannot be
    listed).

    \b
    Example:
      topoff list https://dumps.example.org/datanommer
    """
    config = build_config(config_path, need_source=False)
    store = store_for(location, config)
    index = read_index(store)
    if index is not None:
        echo_index(index)
        return
    found = find_datasets(store)
    if not found:
        raise StoreError(f"nothing is published at {store.url} (no index.json there, nor in "
                         f"the directories below it)",
                         hint="check the location, or publish with `topoff export full`")
    echo_datasets(store.url, found)
