"""``topoff iceberg ...``: maintenance of Iceberg replicas (docs/iceberg.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

from topoff.cli.options import common_options
from topoff.errors import ConfigError

_AGE = re.compile(r"^(\d{1,6})([smhd])$")


def _age(value: str) -> timedelta:
    m = _AGE.match(value.strip())
    if not m:
        raise ConfigError(f"invalid duration for --older-than: {value!r}",
                          hint="write it like 7d, 12h, 30m or 90s")
    n = int(m.group(1))
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


@click.group("iceberg")
def iceberg_group() -> None:
    """Maintenance of Iceberg replicas (iceberg:catalog.toml)."""


@iceberg_group.command("expire")
@common_options
@click.argument("target")
@click.option("--older-than", default="7d", show_default=True, metavar="AGE",
              help="Expire the snapshots older than this (e.g. 7d, 12h); the current "
              "snapshot of each table is always kept.")
@click.option("--dry-run", is_flag=True, help="Say what would be expired, expire nothing.")
def expire_cmd(config_path: str | None, target: str, older_than: str, dry_run: bool) -> None:
    """Expire old snapshots of the tables of the Iceberg replica TARGET.

    The snapshots are removed from each table's metadata (time travel to them ends);
    the current rows and the ledger stay as they are. Data files only they referenced are
    left for the engines' orphan-file removal.

    \b
    Example:
      topoff iceberg expire iceberg:/srv/lake/catalog.toml --older-than 7d
    """
    from topoff.targets.iceberg import is_iceberg
    from topoff.targets.iceberg.maintenance import expire

    if not is_iceberg(target):
        raise ConfigError(f"{target} is not an Iceberg replica",
                          hint="name it iceberg:PATH/catalog.toml")
    age = _age(older_than)
    for e in expire(target, age, dry_run):
        verb = "would expire" if dry_run else "expired"
        click.echo(f"{e.table}: {verb} {e.expired} snapshots, kept {e.kept}")


def register(group: Any) -> None:
    group.add_command(iceberg_group)
