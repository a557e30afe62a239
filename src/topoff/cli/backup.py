"""``topoff backup``, ``topoff restore``, ``topoff backups list|drill|check|prune``.

Each command imports the backup modules it runs (they bring psycopg and the dump
pipeline): ``topoff systemd`` and every ``--help`` start without them."""

from __future__ import annotations

import json

import click

from topoff.backup.systemd import KINDS, UnitSettings, render
from topoff.cli.options import (
    build_config,
    common_options,
    logging_options,
    source_options,
    store_for,
)
from topoff.cli.output import size
from topoff.cli.signals import term_as_interrupt
from topoff.config import MAX_JOBS, MAX_KEEP_DAYS, MAX_LOCK_DAYS, Config, parse_size
from topoff.errors import ConfigError, IntegrityError, StoreError
from topoff.redact import redact
from topoff.stores.base import Store
from topoff.stores.local import LocalStore


def backups_store(location: str, config: Config) -> Store:
    """The store of an existing catalog: a local directory that is not there is a mistyped
    location (exit 5), never "no backups" (a backup makes its directory; an object
    store's empty prefix stays an empty catalog)."""
    store = store_for(location, config)
    if isinstance(store, LocalStore) and not store.root.is_dir():
        raise StoreError(f"no such directory: {location}",
                         hint="check the location: it is the directory `topoff backup` "
                         "wrote to")
    return store


def display_url(url: str) -> str:
    from topoff.sources.base import engine_of
    from topoff.sources.postgres import display_url as pg_display_url

    if engine_of(url) == "postgresql":
        return pg_display_url(url)
    from topoff.sources.mariadb.connect import display_url as maria_display_url

    return maria_display_url(url)


def _max_plain(text: str | None) -> int | None:
    if text is None:
        return None
    most = parse_size(text, "--max-plain-size")
    if most < 1:
        raise ConfigError(f"--max-plain-size must be positive, not {text!r}",
                          hint="write it like 20GB")
    return most


@click.command("backup")
@common_options
@source_options
@click.option("--to", "dest", required=True, metavar="STORE",
              help="Where the backup and its catalog go: a directory or s3://bucket/prefix.")
@click.option("--name", help="Backup name [default: dump.<database>.<YYYY-MM-DD--HH-MM-SS>].")
@click.option("--recipient", "recipients", multiple=True, metavar="AGE_PUBLIC_KEY",
              help="Encrypt for this age public key (repeatable) [default: [backup] "
              "recipients].")
@click.option("--jobs", "-j", type=click.IntRange(1, MAX_JOBS),
              help="pg_dump --jobs [default: [backup] jobs, 2].")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Directory for pg_dump's files in flight [default: $TMPDIR].")
@click.option("--lock-days", type=click.IntRange(1, MAX_LOCK_DAYS),
              help="Keep every object of the backup undeletable for this many days (S3 "
              "Object Lock; other stores refuse) [default: [backup] lock_days].")
@click.option("--lock-mode", type=click.Choice(["COMPLIANCE", "GOVERNANCE"],
                                               case_sensitive=False),
              help="Object Lock mode [default: [backup] lock_mode, COMPLIANCE].")
def backup_cmd(config_path: str | None, source_url: str | None, allow_primary: bool | None,
               dest: str, name: str | None, recipients: tuple[str, ...], jobs: int | None,
               workdir: str | None, lock_days: int | None, lock_mode: str | None) -> None:
    """Back up the source with pg_dump, compressed, encrypted with age, into a store.

    The snapshot is taken on the standby (a primary is refused without --allow-primary)
    and handed to pg_dump; per-table row counts and content hashes from the same
    snapshot go into the catalog for `topoff backups drill`. A mariadb:// or mysql://
    source is dumped with mariadb-dump --single-transaction --master-data=2 instead.

    \b
    Example:
      topoff backup --source postgresql://backup@standby/datanommer \\
          --to s3://backups/datanommer --recipient age1...
    """
    from topoff.backup.names import default_name
    from topoff.backup.pipeline import BackupRequest, run_backup

    config = build_config(config_path, source_url, allow_primary)
    assert config.source_url is not None
    settings = config.backup
    store = store_for(dest, config)
    name = default_name(config.source_url) if name is None else name
    req = BackupRequest(
        source_url=config.source_url, name=name,
        recipients=recipients or settings.recipients, allow_primary=config.allow_primary,
        jobs=jobs or settings.jobs, level=settings.compression_level,
        lock_days=lock_days or settings.lock_days,
        lock_mode=(lock_mode or settings.lock_mode).upper(), workdir=workdir)
    with term_as_interrupt():
        result = run_backup(store, req)
    rows = sum(t["rows"] for t in result.tables.values())
    click.echo(f"backup {result.name}: {len(result.tables)} tables, {rows:,} rows, "
               f"{result.files} files, {size(result.size)} encrypted, sha256 "
               f"{result.sha256[:16]}..., {result.seconds:.1f}s -> {store.url}/{result.key}")


@click.group("backups")
@click.pass_context
def backups(ctx: click.Context) -> None:
    """The backups in a store: list, drill, check, prune."""
    ctx.with_resource(term_as_interrupt())  # SIGTERM: exit 130, as Ctrl-C


@backups.command("list")
@common_options
@click.argument("store_url", metavar="STORE")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def list_cmd(config_path: str | None, store_url: str, as_json: bool) -> None:
    """List the backups in a store, with status, times, size and the last drill.

    \b
    Example:
      topoff backups list s3://backups/datanommer
    """
    from topoff.backup import catalog
    from topoff.cli.backup_output import echo_catalog

    config = build_config(config_path, need_source=False)
    entries = catalog.read_catalog(backups_store(store_url, config))
    if as_json:
        click.echo(json.dumps([e.to_json() for e in entries], indent=2))
    else:
        echo_catalog(store_url, entries)


@click.command("restore")
@common_options
@click.argument("store_url", metavar="STORE")
@click.option("--target", "target_url", required=True, metavar="URL",
              help="The database to restore into (empty unless --clean).")
@click.option("--name", help="The backup to restore.")
@click.option("--latest", is_flag=True, help="Restore the newest finished backup.")
@click.option("--identity", type=click.Path(dir_okay=False),
              help="age identity file (secret key) [default: [backup] identity].")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), help="pg_restore --jobs [default: 2].")
@click.option("--clean", is_flag=True,
              help="Drop the backup's objects in a non-empty target first (pg_restore --clean).")
@click.option("--no-owner", is_flag=True,
              help="Do not restore owners and privileges (roles missing on the target).")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Directory for the decrypted dump while pg_restore reads it.")
@click.option("--max-plain-size", metavar="SIZE",
              help="The most a backup whose catalog entry declares no plain_size (taken "
              "before topoff recorded it) may decompress to, e.g. 20GB; such a backup is "
              "refused without it.")
def restore_cmd(config_path: str | None, store_url: str, target_url: str, name: str | None,
                latest: bool, identity: str | None, jobs: int | None, clean: bool,
                no_owner: bool, workdir: str | None, max_plain_size: str | None) -> None:
    """Restore a backup into a database: verify its sha256, decrypt, pg_restore, scrub.

    Refuses a non-empty target unless --clean. Then runs the [backup] scrub SQL of the
    config, if any. A MariaDB backup streams into the mariadb client (--target
    mariadb://...; --jobs and --no-owner do not apply).

    \b
    Example:
      topoff restore s3://backups/datanommer --latest --identity key.txt \\
          --target postgresql://localhost/datanommer_copy
    """
    from topoff.backup import restore as restore_mod
    from topoff.backup.keys import load_identities

    config = build_config(config_path, need_source=False)
    most = _max_plain(max_plain_size)
    if (name is None) == (not latest):
        raise ConfigError("say which backup to restore",
                          hint="pass either --name NAME or --latest")
    store = backups_store(store_url, config)
    identities = load_identities(identity or config.backup.identity)
    entry = restore_mod.choose(store, name)
    with term_as_interrupt():  # SIGTERM: the child stopped, the decrypted dump removed
        result = restore_mod.restore(store, entry, identities, target_url, jobs=jobs or 2,
                                     clean=clean, no_owner=no_owner,
                                     scrub_sql=config.backup.scrub, workdir=workdir,
                                     max_plain_size=most)
    click.echo(f"restored {entry.name} ({size(result.size)}, {result.files} files, sha256 "
               f"verified) into {display_url(target_url)}")


@backups.command("drill")
@common_options
@click.argument("store_url", metavar="STORE")
@click.option("--name", help="The backup to drill [default: the newest finished one].")
@click.option("--identity", type=click.Path(dir_okay=False),
              help="age identity file (secret key) [default: [backup] identity].")
@click.option("--scratch", "scratch_url", metavar="URL",
              help="An empty database to restore into [default: a temporary PostgreSQL "
              "cluster, or mariadbd for a MariaDB backup, removed afterwards].")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), help="pg_restore --jobs [default: 2].")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Directory for the decrypted dump while pg_restore reads it.")
@click.option("--max-plain-size", metavar="SIZE",
              help="The most a backup whose catalog entry declares no plain_size (taken "
              "before topoff recorded it) may decompress to, e.g. 20GB; such a backup is "
              "refused without it.")
def drill_cmd(config_path: str | None, store_url: str, name: str | None,
              identity: str | None, scratch_url: str | None, jobs: int | None,
              workdir: str | None, max_plain_size: str | None) -> None:
    """Restore a backup into a throwaway database and compare it with what was recorded.

    Row counts and content hashes of every table must match those taken from the dump's
    snapshot, and every [backup] checks query must return true. The result is recorded
    in the catalog; the exit status is 6 when the drill fails.

    \b
    Example:
      topoff backups drill s3://backups/datanommer --identity key.txt
    """
    from topoff.backup.drill import drill
    from topoff.backup.keys import load_identities

    config = build_config(config_path, need_source=False)
    most = _max_plain(max_plain_size)
    store = backups_store(store_url, config)
    identities = load_identities(identity or config.backup.identity)
    with term_as_interrupt():
        result = drill(store, identities, name=name, scratch_url=scratch_url,
                       checks=config.backup.checks, jobs=jobs or 2, workdir=workdir,
                       max_plain_size=most)
    click.echo(f"drill of {result.name} passed: {result.tables} tables match, "
               f"{len(result.checks)} checks passed; restorable as of "
               f"{result.restorable_as_of}")


@backups.command("check")
@common_options
@click.argument("store_url", metavar="STORE")
@click.option("--max-age", default="26h", show_default=True, metavar="AGE",
              help="CRITICAL when the newest finished backup is older (e.g. 26h, 8d).")
@click.option("--min-size", metavar="SIZE",
              help="CRITICAL when the newest finished backup is smaller (e.g. 10MB).")
@click.option("--max-size-change", metavar="PERCENT",
              help="WARNING when its size differs more from the previous one (e.g. 15%).")
@click.option("--prometheus", "prometheus_file", type=click.Path(dir_okay=False),
              help="Also write textfile-collector metrics here (atomically).")
def check_cmd(config_path: str | None, store_url: str, max_age: str, min_size: str | None,
              max_size_change: str | None, prometheus_file: str | None) -> None:
    """Check backup freshness for monitoring: one status line, Nagios exit codes.

    Exit 0 OK, 1 WARNING, 2 CRITICAL (no finished backup, or the newest is too old or
    too small; a catalog that cannot be read is critical too).

    \b
    Example:
      topoff backups check s3://backups/datanommer --max-age 26h --max-size-change 15% \\
          --prometheus /var/lib/node_exporter/topoff_backup.prom
    """
    from topoff.backup import catalog
    from topoff.backup.check import (
        CRITICAL,
        CheckResult,
        evaluate,
        parse_age,
        parse_percent,
        write_prometheus,
    )

    config = build_config(config_path, need_source=False)
    limit = parse_age(max_age)
    smallest = parse_size(min_size, "--min-size") if min_size else None
    change = parse_percent(max_size_change) if max_size_change else None
    try:
        store = backups_store(store_url, config)
        result = evaluate(catalog.read_catalog(store), limit, smallest, change)
    except (StoreError, IntegrityError) as e:  # unreachable, or not a catalog topoff wrote
        result = CheckResult(CRITICAL, f"BACKUP CRITICAL - cannot read the catalog: "
                             f"{e.message}", {"check_status": float(CRITICAL)})
    if prometheus_file:
        write_prometheus(prometheus_file, redact(store_url), result.metrics)
    click.echo(result.line)
    click.get_current_context().exit(result.code)


@backups.command("prune")
@common_options
@click.argument("store_url", metavar="STORE")
@click.option("--keep-days", type=click.IntRange(1, MAX_KEEP_DAYS), required=True,
              help="Remove backups that started more than this many days ago.")
@click.option("--keep-last", type=click.IntRange(1), default=1, show_default=True,
              help="Finished backups always kept, however old (the newest is always kept).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
def prune_cmd(config_path: str | None, store_url: str, keep_days: int, keep_last: int,
              dry_run: bool) -> None:
    """Delete backups older than --keep-days, never the newest finished one.

    Objects still under an S3 Object Lock are reported as retained until their date,
    not as errors; prune removes them on a later run.

    \b
    Example:
      topoff backups prune s3://backups/datanommer --keep-days 30 --keep-last 3
    """
    from topoff.backup.retention import prune as backup_prune
    from topoff.cli.backup_output import echo_prune

    config = build_config(config_path, need_source=False)
    out = backup_prune(backups_store(store_url, config), keep_days, keep_last, dry_run)
    echo_prune(out)


@click.command("systemd")
@logging_options
@click.option("--print", "kind", required=True, type=click.Choice(KINDS),
              help="The job whose .service and .timer to print.")
@click.option("--unit-config", default=UnitSettings.config, show_default=True,
              help="Config file the unit passes to topoff.")
@click.option("--store", default=UnitSettings.store, show_default=True,
              help="Store (backup, export, drill) or dataset (sync).")
@click.option("--target", default=UnitSettings.target, show_default=True,
              help="Replica for sync (replicate reads its target from the config).")
@click.option("--topoff", "topoff_path", default=UnitSettings.topoff, show_default=True,
              help="Path of the topoff program.")
@click.option("--user", default=UnitSettings.user, show_default=True,
              help="System user the service runs as.")
@click.option("--on-calendar", help="systemd OnCalendar schedule [default: per job].")
def systemd_cmd(kind: str, unit_config: str, store: str, target: str, topoff_path: str,
                user: str, on_calendar: str | None) -> None:
    """Print a systemd .service and .timer pair for a periodic topoff job.

    The service runs under flock (no overlapping runs), logs to the journal, and reads
    secrets from /etc/topoff/topoff.env; the timer has a randomised delay.

    \b
    Example:
      topoff systemd --print backup --store s3://backups/datanommer
    """
    click.echo(render(kind, UnitSettings(unit_config, store, target, topoff_path, user,
                                         on_calendar)), nl=False)


def register(cli: click.Group) -> None:
    cli.add_command(backup_cmd)
    cli.add_command(restore_cmd)
    cli.add_command(systemd_cmd)
    cli.add_command(backups)
