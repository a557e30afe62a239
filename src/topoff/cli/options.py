"""Options shared by several commands, as decorators (one definition, one help text)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import click

from topoff.config import (
    MAX_JOBS,
    MAX_KEEP_DAYS,
    Config,
    StoreSettings,
    load_config,
    parse_chunk_size,
)
from topoff.errors import ConfigError
from topoff.log import setup_logging
from topoff.stores import Store, StoreOptions, open_store


def _stack(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(f: Any) -> Any:
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


def logging_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--quiet, --verbose, --log-format: set up logging before the command runs."""

    @click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
    @click.option("-v", "--verbose", is_flag=True, help="Debug messages too.")
    @click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
                  show_default=True, help="Log lines on stderr as text or JSON objects.")
    @functools.wraps(f)
    def wrapper(*args: Any, quiet: bool, verbose: bool, log_format: str, **kwargs: Any) -> Any:
        setup_logging(quiet=quiet, verbose=verbose, fmt=log_format)
        _library_logs(verbose)
        ctx = click.get_current_context()
        ctx.ensure_object(dict)
        ctx.obj.update(quiet=quiet, verbose=verbose, log_format=log_format)
        return f(*args, **kwargs)

    return wrapper


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--config and the :func:`logging_options`."""
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        envvar="TOPOFF_CONFIG",
                        help="TOML configuration file [env: TOPOFF_CONFIG].")(
        logging_options(f))


def _library_logs(verbose: bool) -> None:
    """psycopg's own warnings (a rollback that fails after Ctrl-C cancelled a query) go
    through topoff's handler, so ``--log-format json`` keeps stderr JSON; shown with -v."""
    ours = logging.getLogger("topoff")
    lib = logging.getLogger("psycopg")
    lib.handlers = list(ours.handlers)
    lib.propagate = False
    lib.setLevel(logging.WARNING if verbose else logging.ERROR)


source_options = _stack(
    click.option("--source", "source_url", metavar="URL",
                 help="The source database: a hot standby [env: TOPOFF_SOURCE_URL]."),
    click.option("--allow-primary", is_flag=True, default=None,
                 help="Allow reading a primary server (refused by default)."),
)

export_options = _stack(
    click.option("--to", "dest", required=True, metavar="DEST",
                 help="Where to publish: a directory, or s3://bucket/prefix."),
    click.option("--jobs", "-j", type=click.IntRange(1, MAX_JOBS),
                 help="Tables read in parallel [default: [export] jobs, 2]."),
    click.option("--chunk-size", metavar="SIZE", help="CSV bytes per data file, e.g. 256MiB."),
    click.option("--strict", is_flag=True, default=None,
                 help="Refuse source columns the config does not classify."),
    click.option("--keep-days", type=click.IntRange(1, MAX_KEEP_DAYS), metavar="N",
                 help="Then prune the days before the last N UTC days (as prune does)."),
    click.option("--keep-full", type=click.IntRange(1),
                 help="Then prune full exports beyond this many."),
)


def build_config(config_path: str | None, source_url: str | None = None,
                 allow_primary: bool | None = None, strict: bool | None = None,
                 jobs: int | None = None, chunk_size: str | None = None,
                 need_source: bool = True) -> Config:
    config = load_config(config_path)
    config = config.with_overrides(source_url=source_url, allow_primary=allow_primary,
                                   strict=strict)
    config = config.with_export(
        jobs=jobs, chunk_bytes=parse_chunk_size(chunk_size, "--chunk-size") if chunk_size else None)
    if need_source and not config.source_url:
        raise ConfigError("no source database given",
                          hint="pass --source postgresql://user@standby/db, set "
                          "TOPOFF_SOURCE_URL, or set [source] url in the config")
    return config


def store_for(location: str, config: Config | None = None) -> Store:
    return open_store(location, store_options(config.store if config else None))


def store_options(store: StoreSettings | None) -> StoreOptions:
    """The stores' options from the config's [store] settings (defaults without one)."""
    if store is None:
        return StoreOptions()
    return StoreOptions(s3_endpoint_url=store.s3_endpoint_url, s3_region=store.s3_region,
                        retries=store.retries, backoff=store.retry_backoff,
                        http_timeout=store.http_timeout, http_min_rate=store.http_min_rate,
                        http_rate_window=store.http_rate_window,
                        http_answer_timeout=store.http_answer_timeout)
