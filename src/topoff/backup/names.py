"""Backup names and the store keys built from them (the only place that builds them).

A name becomes part of store keys, so it is a plain word: letters, digits, ``.``, ``_``
and ``-``, starting with a letter or digit, at most 200 characters, never ``..``.
"""

from __future__ import annotations

import getpass
import os
import re
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from psycopg import conninfo as pg_conninfo

from topoff.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
STAMP_FORMAT = "%Y-%m-%d--%H-%M-%S"
CATALOG = "catalog/"
DATA = "backups/"
SUFFIX = ".tar.zst.age"  # PostgreSQL: pg_dump's directory as one tar
SQL_SUFFIX = ".sql.zst.age"  # MariaDB: mariadb-dump's SQL text


def is_valid(name: str) -> bool:
    return bool(NAME_RE.match(name)) and ".." not in name


def check_name(name: str) -> str:
    if not is_valid(name):
        raise ConfigError(f"invalid backup name {name!r}",
                          hint="use letters, digits, '.', '_' and '-' (at most 200, no '..'), "
                          "e.g. dump.datanommer.2026-11-30--03-00-00")
    return name


def source_label(url: str) -> str:
    """The database name of a connection string, reduced to a name-safe word."""
    try:
        if url.lower().startswith(("mariadb://", "mysql://")):
            db = unquote(urlsplit(url).path.lstrip("/")) or "db"
        else:  # libpq's choice when the string names none: $PGDATABASE, else the user's
            params = pg_conninfo.conninfo_to_dict(url)
            user = params.get("user") or os.environ.get("PGUSER") or getpass.getuser()
            db = str(params.get("dbname") or os.environ.get("PGDATABASE") or user or "db")
    except Exception:
        db = "db"
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", str(db)).strip("-") or "db"
    return label[:100]


def default_name(url: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"dump.{source_label(url)}.{now.strftime(STAMP_FORMAT)}"


def data_key(name: str, engine: str = "postgresql") -> str:
    suffix = SQL_SUFFIX if engine == "mariadb" else SUFFIX
    return f"{DATA}{check_name(name)}{suffix}"


def data_keys(name: str) -> list[str]:
    """Every key a backup's data object can have, whatever its engine."""
    return [data_key(name), data_key(name, "mariadb")]


def catalog_key(name: str, leaf: str) -> str:
    return f"{CATALOG}{check_name(name)}/{leaf}"
