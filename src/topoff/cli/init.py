"""``topoff init`` (a config file from the source) and ``topoff check-config``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from topoff.cli.options import build_config, common_options, logging_options, source_options
from topoff.config import ENV_SOURCE, Config
from topoff.errors import ConfigError

if TYPE_CHECKING:  # the PostgreSQL catalog modules load psycopg: imported where used
    from topoff.check import CheckResult

schema_option = click.option(
    "--schema", "schemas", multiple=True, metavar="NAME",
    help="Only this schema (a database of a MariaDB source; repeat for several) [default: "
    "every non-system schema; the URL's database on MariaDB].")


@click.command("init")
@logging_options
@source_options
@schema_option
@click.option("--output", "-o", "output", metavar="FILE",
              help="Where to write the config [default: DATABASE.toml]; - for stdout.")
@click.option("--dataset", metavar="NAME", help="The dataset's name [default: the database's].")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def init_cmd(source_url: str | None, allow_primary: bool | None, schemas: tuple[str, ...],
             output: str | None, dataset: str | None, force: bool) -> None:
    """Write a commented config file for every table of the source, to review and use.

    Reads the catalog only (a standby unless --allow-primary), suggests a method and cursor
    per table, and classifies every column; review the columns before publishing.

    \b
    Example:
      topoff init --source postgresql://reader@standby/datanommer --output datanommer.toml
    """
    url = source_url or os.environ.get(ENV_SOURCE)
    if not url:
        raise ConfigError("no source database given",
                          hint="pass --source postgresql://user@standby/db or set "
                          "TOPOFF_SOURCE_URL")
    if output and output != "-" and Path(output).exists() and not force:
        raise ConfigError(f"{output} already exists", hint="pass --force to overwrite it, or "
                          "choose another --output")
    from topoff.config_values import database_dataset
    from topoff.config_writer import listed, read_source, render
    from topoff.sources.discover import suggest

    database, found = read_source(url, bool(allow_primary), list(schemas) or None)
    if not dataset:
        dataset = database_dataset(database, "name the dataset with --dataset NAME")
    text = render(found, dataset, url, database)
    tables, _skipped = listed(found)
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output or f"{database}.toml")
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it, or "
                          "choose another --output")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)  # whole or not at all, even when interrupted
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {e.strerror}",
                          hint="choose another --output") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    methods = [suggest(t).method for t in tables]
    summary = ", ".join(f"{methods.count(m)} {m}" for m in ("append", "upsert", "snapshot")
                        if m in methods)
    click.echo(f"wrote {path}: {len(tables)} tables ({summary or 'none'})")
    click.echo("review every column's classification in it before publishing, then: "
               f"topoff check-config --config {path}")


def _rows(est: float) -> str:
    return "?" if est < 0 else f"{int(est):,}"


def echo_plan(result: CheckResult) -> None:
    head = ("table", "method", "cursor", "columns", "est. rows")
    rows = [(p.table, p.method, (p.cursor or "-") + ("" if p.cursor_indexed else " (no index)"),
             f"{p.columns}/{p.source_columns}", _rows(p.est_rows)) for p in result.plan]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        click.echo("  ".join(v.rjust(w) if i >= 3 else v.ljust(w)
                             for i, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip())


@click.command("check-config")
@common_options
@source_options
@click.option("--strict", is_flag=True, default=None,
              help="Refuse source columns the config does not classify.")
def check_config_cmd(config_path: str | None, source_url: str | None,
                     allow_primary: bool | None, strict: bool | None) -> None:
    """Check a config against the source and show what would be exported; writes nothing.

    Exit 0 when the config is valid, 2 with one line per problem otherwise.

    \b
    Example:
      topoff check-config --config datanommer.toml \\
          --source postgresql://reader@standby/datanommer
    """
    if not config_path:
        raise ConfigError("no config file given",
                          hint="pass --config FILE (or set TOPOFF_CONFIG); `topoff init` "
                          "writes one from the source")
    config = build_config(config_path, source_url, allow_primary, strict)
    from topoff.dataset.retention import check_keep_days

    # the retention every export of this file would refuse, as `export --dry-run` does
    check_keep_days(config.retention.keep_days, config.export.lookback_days)
    check_and_show(config, config_path)


def check_and_show(config: Config, label: str) -> None:
    """Check ``config`` against the source: every problem on stderr and ConfigError, or
    the plan of what an export would read on stdout."""
    from topoff.check import check_config, raise_for
    from topoff.sources.base import engine_of

    assert config.source_url is not None
    if engine_of(config.source_url) == "postgresql":
        result = check_config(config)
    else:
        from topoff.check_maria import check_maria

        result = check_maria(config)
    from topoff.cli.stderr import echo_problem

    for p in result.problems:
        echo_problem(p.message, p.hint)
    raise_for(result, label)
    where = "standby" if result.in_recovery else "PRIMARY"
    click.echo(f"{label}: valid against {result.database} ({where}); an export would "
               f"read {len(result.plan)} tables:")
    echo_plan(result)


def register(group: Any) -> None:
    group.add_command(init_cmd)
    group.add_command(check_config_cmd)
