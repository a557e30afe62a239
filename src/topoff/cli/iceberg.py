"""``topoff iceberg ...``: maintenance of Iceberg replicas (docs/iceberg.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

from topoff.cli.options import common_options
from topoff.errors import ConfigError, TargetError

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
    the current rows and the ledger stay as they are. Then the files only they referred to
    (data files of replaced days and tables, compacted files, their manifests) are deleted,
    and the metadata files older than the 10 previous ones each table keeps.

    \b
    Example:
      topoff iceberg expire iceberg:/srv/lake/catalog.toml --older-than 7d
    """
    from topoff.targets.iceberg.maintenance import expire

    _iceberg_target(target)
    age = _age(older_than)
    for e in expire(target, age, dry_run):
        verb = "would expire" if dry_run else "expired"
        line = f"{e.table}: {verb} {e.expired} snapshots, kept {e.kept}"
        if e.files:
            deleted = "would delete" if dry_run else "deleted"
            line += (f"; {deleted} {e.files - e.left} files only they referred to "
                     f"({e.bytes / 1e6:.1f} MB)")
        if e.metadata:
            deleted = "would delete" if dry_run else "deleted"
            line += (f"; {deleted} {e.metadata} old metadata files "
                     f"({e.metadata_bytes / 1e6:.1f} MB)")
        click.echo(line)


@iceberg_group.command("remove-orphans")
@common_options
@click.argument("target")
@click.option("--older-than", default="3d", show_default=True, metavar="AGE",
              help="Delete only orphans older than this (e.g. 3d, 12h; at least 1h: a younger "
              "file may belong to a commit in progress).")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted, delete nothing.")
def remove_orphans_cmd(config_path: str | None, target: str, older_than: str,
                       dry_run: bool) -> None:
    """Delete the files under the tables of the Iceberg replica TARGET that no metadata
    refers to.

    A run killed before its commit leaves its data files unreferenced: orphans. A file
    under a table's location that no snapshot, manifest, metadata file or statistics file
    of the table names, and older than --older-than, is deleted. Files of expired
    snapshots are deleted by `topoff iceberg expire`.

    \b
    Example:
      topoff iceberg remove-orphans iceberg:/srv/lake/catalog.toml --older-than 3d
    """
    from topoff.targets.iceberg.orphans import remove_orphans

    _iceberg_target(target)
    failed = 0
    for o in remove_orphans(target, _age(older_than), dry_run):
        failed += o.failed
        if not o.files:
            click.echo(f"{o.table}: no orphans")
            continue
        verb = "would delete" if dry_run else "deleted"
        line = f"{o.table}: {verb} {o.files - o.failed} orphan files ({o.bytes / 1e6:.1f} MB)"
        if o.failed:
            line += f"; {o.failed} could not be deleted"
        click.echo(line)
    if failed:
        raise TargetError(f"{failed} orphan files could not be deleted",
                          hint="check that this user may delete files in the warehouse")


_SIZE = re.compile(r"^(\d{1,12})\s*(b|kb|mb|gb)?$", re.IGNORECASE)


def _size(value: str) -> int:
    m = _SIZE.match(value.strip())
    n = int(m.group(1)) * {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}[
        (m.group(2) or "b").lower()] if m else 0
    if not m or not (1 << 20) <= n <= (1 << 30):  # held in memory while written
        raise ConfigError(f"invalid size for --target-file-size: {value!r}",
                          hint="write it like 128MB or 1GB (between 1MB and 1GB)")
    return n


def _iceberg_target(target: str) -> None:
    from topoff.targets.iceberg import is_iceberg

    if not is_iceberg(target):
        raise ConfigError(f"{target} is not an Iceberg replica",
                          hint="name it iceberg:PATH/catalog.toml")


@iceberg_group.command("compact")
@common_options
@click.argument("target")
@click.option("--table", "tables", multiple=True, metavar="TABLE",
              help="Compact only this table (its source name, e.g. public.messages, or its "
              "Iceberg name; a replicated table: source.schema.table or namespace.table); "
              "repeatable. Default: every table topoff made.")
@click.option("--target-file-size", default="128MB", show_default=True, metavar="SIZE",
              help="Rewrite the files smaller than this, into files of up to this size "
              "(counted in uncompressed Arrow bytes, held in memory while written: the "
              "Parquet files come out smaller). 1MB to 1GB.")
@click.option("--dry-run", is_flag=True, help="Say what would be rewritten, rewrite nothing.")
def compact_cmd(config_path: str | None, target: str, tables: tuple[str, ...],
                target_file_size: str, dry_run: bool) -> None:
    """Rewrite the small data files of the Iceberg replica TARGET into fewer.

    Per table, the small files of each partition are read and their rows written again as
    larger files, in one overwrite commit: readers see the old files or the new ones, the
    same rows. A table that fails is left as it was and the others are compacted all the
    same (exit 7 at the end). The table's ledger (or a replicated table's state) is kept:
    the next sync (or refresh) resumes where it was. Files replaced stay for time travel until
    `topoff iceberg expire` deletes them with the snapshots that read them.

    \b
    Example:
      topoff iceberg compact iceberg:/srv/lake/catalog.toml --table public.messages
    """
    from topoff.targets.iceberg.compact import Compacted, compact

    _iceberg_target(target)
    size = _size(target_file_size)

    def say(c: Compacted) -> None:  # as each table is done: also those before a failure
        if c.files_before == c.files_after and not c.rows:
            click.echo(f"{c.table}: nothing to merge ({c.files_before} files)")
            return
        verb = "would rewrite" if dry_run else "rewrote"
        rows = "" if dry_run else f" ({c.rows} rows rewritten)"
        click.echo(f"{c.table}: {verb} {c.files_before} files as {c.files_after}{rows}")

    compact(target, list(tables) or None, size, dry_run, on_table=say)


def register(group: Any) -> None:
    group.add_command(iceberg_group)
