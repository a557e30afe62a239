"""``topoff prune`` and ``topoff list``: retention and a look at what is published."""

from __future__ import annotations

import click

from topoff.cli.options import build_config, common_options, store_for
from topoff.cli.output import echo_index, echo_prune
from topoff.dataset.index import read_index
from topoff.dataset.retention import prune
from topoff.errors import StoreError


@click.command("prune")
@common_options
@click.option("--to", "dest", required=True, metavar="DEST", help="The published dataset.")
@click.option("--keep-days", type=click.IntRange(1), required=True,
              help="Remove incremental days that began more than this many days ago.")
@click.option("--keep-full", type=click.IntRange(1), default=1, show_default=True,
              help="Full exports kept (the newest is always kept).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
def prune_cmd(config_path: str | None, dest: str, keep_days: int, keep_full: int,
              dry_run: bool) -> None:
    """Delete old incremental days and old full exports.

    Never removes the newest full export, nor anything published after it (what a replica
    built from it needs to be brought up to date).

    \b
    Example:
      topoff prune --to /srv/dumps/datanommer --keep-days 15 --keep-full 2 --dry-run
    """
    config = build_config(config_path, need_source=False)
    store = store_for(dest, config)
    echo_prune(prune(store, None, keep_days, keep_full, dry_run))


@click.command("list")
@common_options
@click.argument("location")
def list_cmd(config_path: str | None, location: str) -> None:
    """List the publications of a dataset (local directory, http(s):// URL or s3://).

    \b
    Example:
      topoff list https://dumps.example.org/datanommer
    """
    config = build_config(config_path, need_source=False)
    store = store_for(location, config)
    index = read_index(store)
    if index is None:
        raise StoreError(f"nothing is published at {store.url} (no index.json)",
                         hint="check the location, or publish with `topoff export full`")
    echo_index(index)
