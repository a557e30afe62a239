"""Configuration: a TOML file plus environment variables, turned into plain dataclasses.

Nothing here is global: commands build a :class:`Config` and pass it down. Unknown keys are
errors (a typo in a column classification must not silently publish a private column).
See docs/configuration.md for every key.
"""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from topoff.config_values import (
    at_most,
    check_keys,
    config_text,
    dataset_name,
    expect,
    in_range,
    no_nul,
    optional_str,
    parse_chunk_size,
    parse_duration,
    parse_size,
    positive_int,
)
from topoff.errors import ConfigError

__all__ = ["Config", "TableConfig", "load_config", "parse_config", "parse_duration",
           "parse_size"]

METHODS = ("append", "upsert", "snapshot")
VISIBILITY = ("public", "private")
ENV_SOURCE = "TOPOFF_SOURCE_URL"
ENV_CONFIG = "TOPOFF_CONFIG"

#: the most days before a day its export re-checks (each is a query or two per table)
MAX_LOOKBACK_DAYS = 366
#: the most days of datasets and backups kept (a century: more is no retention at all)
MAX_KEEP_DAYS = 36600
#: the most workers of an export or a backup (--jobs), and the longest S3 Object Lock
MAX_JOBS = 64
MAX_LOCK_DAYS = 36500


@dataclass(frozen=True)
class TableConfig:
    """How one source table is exported."""

    schema: str
    name: str
    method: str = "append"
    cursor: str | None = None
    #: zone in which a ``timestamp without time zone`` cursor is written (UTC unless said)
    cursor_timezone: str = "UTC"
    key: tuple[str, ...] | None = None  # None: the table's primary key
    filter: str | None = None  # an SQL boolean expression over the table's columns
    columns: dict[str, str] = field(default_factory=dict)  # column -> public | private

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def private_columns(self) -> set[str]:
        return {c for c, v in self.columns.items() if v == "private"}


@dataclass(frozen=True)
class ExportSettings:
    jobs: int = 2
    chunk_bytes: int = 256 * 1024 * 1024  # uncompressed CSV bytes per data file
    compression_level: int = 3
    lookback_days: int = 3  # at most MAX_LOOKBACK_DAYS
    retry_attempts: int = 5
    retry_backoff: float = 2.0  # seconds; doubles on each retry


@dataclass(frozen=True)
class RetentionSettings:
    keep_days: int | None = None
    keep_full: int | None = None  # None: 1, and an export prunes only by keep_days


@dataclass(frozen=True)
class StoreSettings:
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    #: how often a transient store failure (network, 5xx) is retried, and the first pause
    retries: int = 5
    retry_backoff: float = 0.5
    #: HTTP stores: each read's wait, and the least average rate over a window of waits
    http_timeout: float = 30.0
    http_min_rate: int = 1024
    http_rate_window: float = 60.0
    #: HTTP and S3 stores: the whole wait for an answer's status line and headers (0: none)
    http_answer_timeout: float = 60.0


@dataclass(frozen=True)
class BackupSettings:
    """[backup]: encrypted pg_dump backups (docs/backups.md)."""

    recipients: tuple[str, ...] = ()  # age public keys (age1...)
    identity: str | None = None  # path of an age identity file, for restore and drill
    jobs: int = 2
    compression_level: int = 3
    lock_days: int | None = None
    lock_mode: str = "COMPLIANCE"
    scrub: tuple[str, ...] = ()  # SQL run on a restored database (restore --scrub)
    checks: tuple[str, ...] = ()  # SQL returning one boolean per drill, true = pass


@dataclass(frozen=True)
class Config:
    dataset: str = "dataset"
    source_url: str | None = None
    allow_primary: bool = False
    strict: bool = False
    tables: tuple[TableConfig, ...] = ()
    export: ExportSettings = field(default_factory=ExportSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    path: Path | None = None

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with the given top-level fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def with_export(self, **changes: Any) -> Config:
        kept = {k: v for k, v in changes.items() if v is not None}
        return replace(self, export=replace(self.export, **kept))

    def table(self, qualified: str) -> TableConfig:
        for t in self.tables:
            if t.qualified == qualified:
                return t
        raise ConfigError(f"table {qualified} is not in the configuration",
                          hint="name a table of the config's [tables.*] sections")


# -- parsing ------------------------------------------------------------------------------

def _parse_table(key: str, body: dict[str, Any]) -> TableConfig:
    where = f"[tables.{key}]"
    expect(body, dict, where)
    check_keys(body, {"schema", "name", "method", "cursor", "cursor_timezone", "key", "filter",
                       "columns"}, where)
    if "name" in body:  # the section's key is only a label then (any schema and name)
        schema, name = body.get("schema", "public"), expect(body["name"], str, f"{where} name")
    elif "." in key and "schema" not in body:
        schema, name = key.split(".", 1)
    else:
        schema, name = body.get("schema", "public"), key
    method = body.get("method", "append" if body.get("cursor") else "snapshot")
    if method not in METHODS:
        raise ConfigError(f"{where} method {method!r} is not known",
                          hint=f"use one of: {', '.join(METHODS)}")
    cursor = body.get("cursor")
    if cursor is not None:
        expect(cursor, str, f"{where} cursor")
    if method in ("append", "upsert") and not cursor:
        raise ConfigError(f"{where} method {method} needs a cursor column",
                          hint="set cursor = \"<timestamp column>\", or use method = \"snapshot\"")
    tz = body.get("cursor_timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(expect(tz, str, f"{where} cursor_timezone"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where} cursor_timezone {tz!r} is not a known time zone",
                          hint="use an IANA name such as UTC or Europe/Paris") from None
    key_cols = body.get("key")
    if key_cols is not None:
        expect(key_cols, list, f"{where} key")
        key_cols = tuple(expect(k, str, f"{where} key") for k in key_cols)
    flt = body.get("filter")
    if flt is not None and not expect(flt, str, f"{where} filter").strip():
        flt = None
    columns = body.get("columns", {})
    expect(columns, dict, f"{where} columns")
    for col, vis in columns.items():
        if vis not in VISIBILITY:
            raise ConfigError(f"{where} column {col} is classified {vis!r}",
                              hint="classify each column as \"public\" or \"private\"")
    if cursor and columns.get(cursor) == "private":
        raise ConfigError(f"{where} cursor column {cursor} is marked private",
                          hint="a cursor column is published in every file; make it public")
    return TableConfig(schema=expect(schema, str, f"{where} schema"), name=name, method=method,
                       cursor=cursor, cursor_timezone=tz, key=key_cols, filter=flt,
                       columns=dict(columns))


def _strings(value: Any, what: str) -> tuple[str, ...]:
    return tuple(expect(v, str, what) for v in expect(value, list, what))


def _parse_backup(section: Any) -> BackupSettings:
    expect(section, dict, "[backup]")
    check_keys(section, {"recipients", "identity", "jobs", "compression_level", "lock_days",
                          "lock_mode", "scrub", "checks"}, "[backup]")
    mode = expect(section.get("lock_mode", "COMPLIANCE"), str, "[backup] lock_mode").upper()
    if mode not in ("COMPLIANCE", "GOVERNANCE"):
        raise ConfigError(f"[backup] lock_mode {mode!r} is not known",
                          hint="use COMPLIANCE or GOVERNANCE")
    level = in_range(section.get("compression_level", 3), "[backup] compression_level", 1, 22)
    lock_days = section.get("lock_days")
    identity = section.get("identity")
    return BackupSettings(
        recipients=_strings(section.get("recipients", []), "[backup] recipients"),
        identity=None if identity is None else expect(identity, str, "[backup] identity"),
        jobs=in_range(section.get("jobs", 2), "[backup] jobs", 1, MAX_JOBS),
        compression_level=level,
        lock_days=None if lock_days is None
        else in_range(lock_days, "[backup] lock_days", 1, MAX_LOCK_DAYS),
        lock_mode=mode,
        scrub=_strings(section.get("scrub", []), "[backup] scrub"),
        checks=_strings(section.get("checks", []), "[backup] checks"),
    )


def _parse_store(store: dict[str, Any]) -> StoreSettings:
    retries = in_range(store.get("retries", StoreSettings.retries), "[store] retries", 0, 20)
    backoff = parse_duration(store.get("retry_backoff", StoreSettings.retry_backoff),
                             "[store] retry_backoff")
    if not 0 <= backoff <= 60:  # NaN fails too
        raise ConfigError(f"[store] retry_backoff must be 0 to 60 seconds, not {backoff:g}",
                          hint="write it like 500ms or 2s")
    return StoreSettings(s3_endpoint_url=optional_str(store, "s3_endpoint_url", "[store]"),
                         s3_region=optional_str(store, "s3_region", "[store]"), retries=retries,
                         retry_backoff=backoff,
                         http_timeout=_seconds(store, "http_timeout"),
                         http_min_rate=positive_int(store.get("http_min_rate", 1024),
                                                    "[store] http_min_rate", minimum=0),
                         http_rate_window=_seconds(store, "http_rate_window"),
                         http_answer_timeout=_seconds(store, "http_answer_timeout", zero=True))


def _seconds(store: dict[str, Any], key: str, zero: bool = False) -> float:
    """[store] http_timeout, http_rate_window or http_answer_timeout: more than 0 (or 0, for
    none, when ``zero``), at most an hour."""
    what = f"[store] {key}"
    value = parse_duration(store.get(key, getattr(StoreSettings, key)), what)
    if not (value >= 0 if zero else value > 0) or not value <= 3600:  # NaN fails too
        least = "at least 0" if zero else "more than 0"
        raise ConfigError(f"{what} must be {least} and at most 3600 seconds, not {value:g}",
                          hint="write it like 30s or 2m")
    return value


def _export_backoff(value: Any) -> float:
    """[export] retry_backoff: the pause before an export's first retry, slept as it is."""
    backoff = parse_duration(value, "[export] retry_backoff")
    if not 0 <= backoff <= 3600:  # NaN fails too
        raise ConfigError(f"[export] retry_backoff must be 0 to 3600 seconds, not {backoff:g}",
                          hint="write it like 2s or 1m (at most 1h)")
    return backoff


def parse_config(data: dict[str, Any], path: Path | None = None) -> Config:
    """Build a Config from parsed TOML (no environment applied)."""
    no_nul(data)
    check_keys(data, {"dataset", "source", "export", "retention", "store", "tables", "strict",
                      "backup", "replicate"},
               "the top level")
    if "replicate" in data:  # `topoff replicate`'s section may share the file; checked alike
        from topoff.replicate.config import parse_replicate

        parse_replicate(data)
    source = data.get("source", {})
    check_keys(source, {"url", "allow_primary"}, "[source]")
    export = data.get("export", {})
    check_keys(export, {"jobs", "chunk_size", "compression_level", "lookback_days",
                         "retry_attempts", "retry_backoff"}, "[export]")
    retention = data.get("retention", {})
    check_keys(retention, {"keep_days", "keep_full"}, "[retention]")
    store = data.get("store", {})
    check_keys(store, {"s3_endpoint_url", "s3_region", "retries", "retry_backoff",
                        "http_timeout", "http_min_rate", "http_rate_window",
                        "http_answer_timeout"}, "[store]")
    defaults = ExportSettings()
    level = in_range(export.get("compression_level", defaults.compression_level),
                     "[export] compression_level", 1, 22)
    settings = ExportSettings(
        jobs=in_range(export.get("jobs", defaults.jobs), "[export] jobs", 1, MAX_JOBS),
        chunk_bytes=parse_chunk_size(export.get("chunk_size", defaults.chunk_bytes),
                                     "[export] chunk_size"),
        compression_level=level,
        lookback_days=at_most(positive_int(export.get("lookback_days",
                                                        defaults.lookback_days),
                                             "[export] lookback_days", minimum=0),
                               MAX_LOOKBACK_DAYS, "[export] lookback_days"),
        retry_attempts=positive_int(export.get("retry_attempts", defaults.retry_attempts),
                                     "[export] retry_attempts"),
        retry_backoff=_export_backoff(export.get("retry_backoff", defaults.retry_backoff)),
    )
    tables_raw = data.get("tables", {})
    expect(tables_raw, dict, "[tables]")
    tables = tuple(_parse_table(k, v) for k, v in tables_raw.items())
    seen: set[str] = set()
    for t in tables:
        if t.qualified in seen:
            raise ConfigError(f"table {t.qualified} is configured twice",
                              hint="keep one [tables.*] section for each table")
        seen.add(t.qualified)
    keep_days = retention.get("keep_days")
    return Config(
        dataset=dataset_name(data.get("dataset", "dataset")),
        source_url=optional_str(source, "url", "[source]"),
        allow_primary=bool(expect(source.get("allow_primary", False), bool,
                                   "[source] allow_primary")),
        strict=bool(expect(data.get("strict", False), bool, "strict")),
        tables=tables,
        export=settings,
        retention=RetentionSettings(
            keep_days=None if keep_days is None
            else at_most(positive_int(keep_days, "[retention] keep_days"), MAX_KEEP_DAYS,
                          "[retention] keep_days"),
            keep_full=None if retention.get("keep_full") is None
            else positive_int(retention["keep_full"], "[retention] keep_full"),
        ),
        store=_parse_store(store),
        backup=_parse_backup(data.get("backup", {})),
        path=path,
    )


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the TOML file (``path``, else $TOPOFF_CONFIG) and apply environment variables."""
    env = dict(os.environ if env is None else env)
    chosen = path or env.get(ENV_CONFIG)
    if chosen:
        p = Path(chosen)
        try:
            text = config_text(p, "give the TOML configuration file (docs/configuration.md)")
        except FileNotFoundError:
            raise ConfigError(f"config file {p} not found",
                              hint="pass --config PATH or set TOPOFF_CONFIG") from None
        except OSError as e:
            raise ConfigError(f"cannot read config file {p}: {e.strerror}",
                              hint="pass --config PATH or set TOPOFF_CONFIG") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}",
                              hint="see docs/configuration.md for the format") from None
        config = parse_config(data, p)
    else:
        config = Config()
    if env.get(ENV_SOURCE):
        config = replace(config, source_url=env[ENV_SOURCE])
    return config
