"""The ``[replicate]`` section of the config file: sources, tables and how each is read.

The config file is trusted operator input (like a crontab): a table's ``where`` is an SQL
row condition written by the operator. It is still checked to be exactly one expression
(PostgreSQL parses it inside ``EXPLAIN SELECT ... WHERE (<expr>)`` in a read-only
transaction, see :func:`topoff.replicate.read.check_where`) before it is placed, always in
parentheses, into the statements topoff builds. Datasets are untrusted; nothing here comes
from one.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from topoff.config_values import config_text, no_nul, parse_size
from topoff.errors import ConfigError, TopoffError
from topoff.sources.base import engine_of
from topoff.targets.names import fold, reserved_schema

METHODS = ("inserter", "updater", "snapshot")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)\s*$")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: the longest duration and the largest integer a boundary or lookback may be
MAX_DURATION = timedelta(days=3660)
MAX_COUNT = 2**62
_TABLE_KEYS = {"method", "cursor", "key", "boundary", "lookback", "batch_rows", "columns",
               "exclude", "where", "cursor_timezone", "schema", "name", "drop_columns",
               "copy_jobs", "copy_split"}
_SOURCE_KEYS = {"url", "schema", "target_schema", "allow_primary", "tables", "copy_jobs",
                "copy_split"}


@dataclass(frozen=True)
class ReplicateTable:
    """How one source table (or view) is replicated."""

    source: str
    schema: str
    name: str
    method: str
    cursor: str | None = None
    key: tuple[str, ...] | None = None  # None: the table's primary key
    #: for a time cursor: rows up to this far before the watermark are read again
    boundary: timedelta | int = timedelta(minutes=10)
    #: rows committed since the previous run are found this far back of the watermark
    lookback: timedelta | int = timedelta(days=1)
    batch_rows: int = 100_000
    columns: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    where: str | None = None
    #: zone a ``timestamp without time zone`` cursor is written in (None: the server's)
    cursor_timezone: str | None = None
    #: a column dropped on the source is dropped in the target too (else kept, nullable)
    drop_columns: bool = False
    #: a first build of a table of ``copy_split`` bytes or more is read by this many
    #: readers at once, in page ranges of one exported snapshot (parallel.py); 1: never
    copy_jobs: int = 1
    copy_split: int = 64 << 20

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class ReplicateSource:
    name: str
    url: str
    schema: str = "public"
    allow_primary: bool = False
    tables: tuple[ReplicateTable, ...] = ()
    #: the target schema its tables land in (None: the source's name)
    target_schema: str | None = None

    @property
    def landing_schema(self) -> str:
        return self.target_schema or self.name


@dataclass(frozen=True)
class ReplicateConfig:
    target: str
    sources: tuple[ReplicateSource, ...] = field(default_factory=tuple)


def parse_interval(value: Any, what: str) -> timedelta | int:
    """'10m', '1h', '3d', '250ms' -> timedelta; an integer stays an integer (for integer
    cursors, where the boundary counts cursor values)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{what} must not be negative: {value}",
                              hint="write a duration like 10m, or 0")
        if value > MAX_COUNT:  # subtracted from a bigint cursor
            raise ConfigError(f"{what} is too large: {value}", hint=f"at most {MAX_COUNT}")
        return value
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ConfigError(f"invalid duration for {what}: {value!r}",
                          hint="write it like 10m, 1h, 3d or 500ms (an integer for an "
                          "integer cursor)")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ConfigError(f"{what} is too long: {value!r}",
                          hint=f"at most {MAX_DURATION.days}d (ten years)")
    return timedelta(seconds=seconds)


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and v for v in value):
        raise ConfigError(f"{what} must be a non-empty list of column names",
                          hint=f'write it like {what.rsplit(".", 1)[-1]} = ["id"]')
    if len(set(value)) != len(value):
        raise ConfigError(f"{what} names a column twice", hint="list each column once")
    return tuple(value)


def _check_keys(section: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a table", hint=f"write it as [{where}]")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in [{where}]",
                          hint=f"expected one of: {', '.join(sorted(allowed))}")
    return section


def _str(section: dict[str, Any], key: str, where: str, default: str | None = None) -> Any:
    value = section.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{key} in [{where}] must be a non-empty string",
                          hint=f'write it like {key} = "..."')
    return value


def _copy_options(section: dict[str, Any], where: str,
                  defaults: tuple[int, int]) -> tuple[int, int]:
    """``copy_jobs`` and ``copy_split`` (a table's own, or else its source's)."""
    jobs = section.get("copy_jobs", defaults[0])
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 64:
        raise ConfigError(f"copy_jobs in [{where}] must be an integer from 1 to 64",
                          hint="for example copy_jobs = 4 (1: one reader)")
    split = parse_size(section.get("copy_split", defaults[1]), f"{where}.copy_split")
    if split < 1:
        raise ConfigError(f"copy_split in [{where}] must be a positive size",
                          hint='for example copy_split = "64MiB"')
    return jobs, split


def _table(source: str, schema: str, name: str, t: Any,
           copy: tuple[int, int] = (1, 64 << 20),
           engine: str = "postgresql") -> ReplicateTable:
    where = f"replicate.sources.{source}.tables.{name}"
    t = _check_keys(t, _TABLE_KEYS, where)
    if engine != "postgresql" and "lookback" in t:
        raise ConfigError(f"lookback in [{where}] does not apply to a {engine} source",
                          hint="a MariaDB table has no xmin to find late commits by: every "
                          "refresh reads the boundary again; set boundary = ... to cover "
                          "your longest transaction (docs/replicate.md, MariaDB)")
    method = t.get("method", "inserter")
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r} in [{where}]",
                          hint=f"use one of: {', '.join(METHODS)}")
    cursor = _str(t, "cursor", where)
    if method != "snapshot" and not cursor:
        raise ConfigError(f"[{where}] uses method {method} but names no cursor column",
                          hint='set cursor = "<timestamp or integer column>", or use '
                          'method = "snapshot"')
    key = _names(t["key"], f"{where}.key") if "key" in t else None
    columns = _names(t["columns"], f"{where}.columns") if "columns" in t else None
    exclude = _names(t["exclude"], f"{where}.exclude") if "exclude" in t else ()
    if columns is not None and exclude:
        raise ConfigError(f"[{where}] sets both columns and exclude",
                          hint="list the columns to read, or the ones to leave out, not both")
    for k in (key or ()) + ((cursor,) if cursor else ()):
        if k in exclude or (columns is not None and k not in columns):
            raise ConfigError(f"[{where}] leaves out column {k!r}, its key or cursor",
                              hint="key and cursor columns are always read")
    batch = t.get("batch_rows", 100_000)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 100_000_000:
        raise ConfigError(f"batch_rows in [{where}] must be an integer from 1 to 100000000",
                          hint="for example batch_rows = 100000")
    boundary = parse_interval(t.get("boundary", "10m"), f"{where}.boundary")
    lookback = parse_interval(t.get("lookback", "1d"), f"{where}.lookback") \
        if engine == "postgresql" else boundary  # MariaDB: the boundary only
    if type(boundary) is not type(lookback):
        raise ConfigError(f"boundary and lookback in [{where}] must both be durations (a time "
                          "cursor) or both integers (an integer cursor)",
                          hint='for example boundary = "10m" and lookback = "1d"')
    tz = _str(t, "cursor_timezone", where)
    if tz is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {tz!r} in [{where}]",
                              hint='use an IANA zone name like "Europe/Paris"') from None
    drop = t.get("drop_columns", False)
    if not isinstance(drop, bool):
        raise ConfigError(f"drop_columns in [{where}] must be true or false",
                          hint="drop_columns = false keeps a column dropped on the source")
    copy_jobs, copy_split = _copy_options(t, where, copy)
    return ReplicateTable(
        source=source, schema=_str(t, "schema", where, schema), name=_str(t, "name", where, name),
        method=method, cursor=cursor, key=key, boundary=boundary, lookback=lookback,
        batch_rows=batch, columns=columns, exclude=exclude, where=_str(t, "where", where),
        cursor_timezone=tz, drop_columns=drop, copy_jobs=copy_jobs, copy_split=copy_split)


def _maria_database(url: str, where: str) -> str:
    """A MariaDB source's default schema: the URL's database (MariaDB's schema)."""
    from topoff.sources.mariadb.connect import parse_url

    database = parse_url(url).database
    if not database:
        raise ConfigError(f"[{where}] names no database",
                          hint='put it in the url (mariadb://user@host/database) or set '
                          'schema = "<database>"')
    return database


def parse_replicate(doc: dict[str, Any]) -> ReplicateConfig:
    """Parse the ``[replicate]`` section of a loaded TOML document."""
    no_nul(doc.get("replicate"), "replicate")
    section = doc.get("replicate")
    if section is None:
        raise ConfigError("the config has no [replicate] section",
                          hint='add [replicate] with target = "replica.duckdb" and '
                          "[replicate.sources.<name>] sections")
    section = _check_keys(section, {"target", "sources"}, "replicate")
    target = _str(section, "target", "replicate")
    if not target:
        raise ConfigError("[replicate] names no target",
                          hint='set target = "replica.duckdb" or a postgresql:// URL')
    sources = section.get("sources") or {}
    if not isinstance(sources, dict) or not sources:
        raise ConfigError("[replicate] lists no sources",
                          hint="add [replicate.sources.<name>] with url and tables")
    parsed = []
    folds = _folds_case(target)
    for sname, s in sources.items():
        where = f"replicate.sources.{sname}"
        s = _check_keys(s, _SOURCE_KEYS, where)
        url = _str(s, "url", where)
        if not url:
            raise ConfigError(f"[{where}] has no url",
                              hint='set url = "postgresql://reader@standby/dbname"')
        allow = s.get("allow_primary", False)
        if not isinstance(allow, bool):
            raise ConfigError(f"allow_primary in [{where}] must be true or false",
                              hint="allow_primary = false reads only from a standby")
        engine = engine_of(url)
        schema = _str(s, "schema", where, "public" if engine == "postgresql"
                      else _maria_database(url, where))
        landing = _str(s, "target_schema", where, sname)
        if why := reserved_schema(landing, folds):  # a DuckDB file's pg_x is a name like any
            raise ConfigError(f"target_schema {landing!r} in [{where}] is reserved: {why}",
                              hint="choose another schema name for the replica's tables")
        tables = s.get("tables") or {}
        if not isinstance(tables, dict) or not tables:
            raise ConfigError(f"[{where}] lists no tables",
                              hint=f"add [{where}.tables.<table>] with a method")
        copy = _copy_options(s, where, (1, 64 << 20))
        read = tuple(_table(sname, schema, tname, t, copy, engine)
                     for tname, t in tables.items())
        seen: set[str] = set()
        for t in read:
            if t.qualified in seen:
                raise ConfigError(f"[{where}] lists table {t.qualified} twice",
                                  hint="list each source table once")
            seen.add(t.qualified)
        parsed.append(ReplicateSource(sname, url, schema, allow, read, landing))
    _one_table_each(parsed, folds)
    return ReplicateConfig(target, tuple(parsed))


def _folds_case(target: str) -> bool:
    """Whether the target's names ignore ASCII case (a DuckDB file)."""
    from topoff.targets import target_kind
    from topoff.targets.iceberg import is_iceberg

    try:
        return not is_iceberg(target) and target_kind(target) == "duckdb"
    except TopoffError:
        return False  # refused when the target is opened


def _one_table_each(sources: list[ReplicateSource], folds: bool) -> None:
    """No two replicated tables land in one target table (two sources with one
    target_schema, or two source schemas' tables of one name)."""
    seen: dict[tuple[str, str], str] = {}
    for s in sources:
        for t in s.tables:
            key = (fold(s.landing_schema, folds), fold(t.name, folds))
            this = f"{s.name}.{t.qualified}"
            other = seen.setdefault(key, this)
            if other != this:
                raise ConfigError(
                    f"[replicate.sources] {other} and {this} would both land in table "
                    f"{s.landing_schema}.{t.name}",
                    hint="give one of the sources another target_schema, or leave one "
                    "table out" + (" (a DuckDB file's names ignore the case of letters)"
                                   if folds else ""))


def load_replicate(path: str | Path) -> ReplicateConfig:
    """Read a config file and parse its ``[replicate]`` section."""
    try:
        doc = tomllib.loads(config_text(path, "check the path given with --config"))
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}",
                          hint="check the path given with --config") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}",
                          hint="fix the syntax at the position given") from None
    return parse_replicate(doc)
