"""Connections to a MariaDB or MySQL source: URLs, option files, environment, errors.

``mysql://`` and ``mariadb://`` URLs name user, password, host, port and database;
``?socket=/path`` connects through a Unix socket and ``?option_file=/path`` reads that
option file instead of ``~/.my.cnf`` (groups ``[client]``, ``[mysql]``, ``[mariadb]``,
``[client-mariadb]``). What the URL leaves out comes from the option file, then from the
environment (``MYSQL_HOST``, ``MYSQL_TCP_PORT``, ``MYSQL_PWD``, ``USER``) as the ``mariadb``
client takes them. Passwords never reach messages: :func:`display_url` leaves them out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import mysql.connector
from mysql.connector import errors as my_errors

from topoff.errors import ConfigError, SourceError
from topoff.workers import opened

SCHEMES = ("mysql", "mariadb")
GROUPS = ("client", "mysql", "mariadb", "client-mariadb", "client-server")
_KEYS = {"user", "password", "host", "port", "socket", "database"}
_QUERY_KEYS = {"socket", "option_file", "connect_timeout"}
_MAX_OPTION_FILE = 1 << 20

# Settings that make the text the server sends the same whatever its defaults are
# (docs/mariadb.md): TIMESTAMP values in UTC, no statement time limit, no row limit on a
# SELECT without LIMIT (a global sql_select_limit cut every read short, silently), a slow
# reader (a store being written) not cut off after a minute.
_SESSION_SQL = (
    "SET SESSION time_zone = '+00:00', SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', "
    "SESSION sql_select_limit = 18446744073709551615, "
    "SESSION net_write_timeout = 3600, SESSION net_read_timeout = 3600, "
    "SESSION wait_timeout = 28800"
)
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def session_sql(version: str) -> str:
    """The session's settings for a server reporting ``version`` (``SELECT VERSION()``).
    The statement time limit is lifted by the flavour's own variable, each an unknown
    variable (an error) on the other: MariaDB's ``max_statement_time`` (seconds, any
    statement), MySQL's ``max_execution_time`` (milliseconds, SELECTs; 5.7.8 and later)."""
    if "mariadb" in version.lower():
        return _SESSION_SQL + ", SESSION max_statement_time = 0"
    m = _VERSION.match(version.strip())
    if m is not None and tuple(int(g) for g in m.groups()) < (5, 7, 8):
        return _SESSION_SQL
    return _SESSION_SQL + ", SESSION max_execution_time = 0"


@dataclass(frozen=True)
class MariaTarget:
    """Where and as whom to connect, every field resolved."""

    user: str
    host: str = "localhost"
    port: int = 3306
    database: str = ""
    password: str | None = field(default=None, repr=False)  # never in a repr or log line
    socket: str | None = None
    connect_timeout: int = 15

    def display(self) -> str:
        where = f"localhost:{self.socket}" if self.socket else f"{self.host}:{self.port}"
        return f"mariadb://{self.user}@{where}/{self.database}"


def read_option_file(path: Path) -> dict[str, str]:
    """The client options of a my.cnf-style file (later groups and lines win)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            text = f.read(_MAX_OPTION_FILE)
    except OSError as e:
        raise ConfigError(f"cannot read option file {path}: {e.strerror}",
                          hint="check option_file= in the source URL") from None
    found: dict[str, str] = {}
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;!":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip().lower()
            continue
        if group not in GROUPS:
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower().replace("_", "-")
        value = value.strip() if sep else ""
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key in _KEYS:
            found[key] = value
    return found


def parse_url(url: str, env: Mapping[str, str] | None = None,
              home: Path | None = None) -> MariaTarget:
    """Resolve a ``mysql://`` or ``mariadb://`` URL with option files and environment."""
    env = os.environ if env is None else env
    try:
        parts = urlsplit(url)
        port_in_url = parts.port
    except ValueError:
        raise ConfigError("invalid MariaDB URL (bad port or brackets)",
                          hint="use mariadb://user:password@host:3306/database") from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"not a MariaDB URL: scheme {parts.scheme!r}",
                          hint="use mariadb://user@host:3306/database (or mysql://)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _QUERY_KEYS)
    if unknown:
        raise ConfigError(f"unknown MariaDB URL parameter: {unknown[0]!r}",
                          hint="known: " + ", ".join(sorted(_QUERY_KEYS)))
    q = {k: v[-1] for k, v in query.items()}
    if "option_file" in q:
        opts = read_option_file(Path(q["option_file"]))
    else:
        default = (home or Path(env.get("HOME", "~")).expanduser()) / ".my.cnf"
        opts = read_option_file(default) if default.is_file() else {}
    database = unquote(parts.path.lstrip("/")) or opts.get("database", "")
    if "/" in database:
        raise ConfigError("invalid MariaDB URL: the path is one database name",
                          hint="use mariadb://user@host:3306/database")
    user = unquote(parts.username) if parts.username else (opts.get("user") or env.get("USER"))
    if not user:
        raise ConfigError("no user for the MariaDB source",
                          hint="put the user in the URL (mariadb://user@host/db) or ~/.my.cnf")
    password = unquote(parts.password) if parts.password is not None else \
        opts.get("password", env.get("MYSQL_PWD"))
    host = unquote(parts.hostname or "") or opts.get("host") or env.get("MYSQL_HOST") \
        or "localhost"
    port_text = str(port_in_url) if port_in_url else (opts.get("port")
                                                      or env.get("MYSQL_TCP_PORT") or "3306")
    socket = q.get("socket") or (None if parts.hostname else opts.get("socket"))
    try:
        port = int(port_text)
        timeout = int(q.get("connect_timeout", "15"))
    except ValueError:
        raise ConfigError("invalid port or connect_timeout for the MariaDB source",
                          hint="ports and timeouts are whole numbers") from None
    if not 0 < port < 65536 or not 0 < timeout <= 3600:
        raise ConfigError(f"port or connect_timeout out of range for {host}",
                          hint="a port is 1..65535, connect_timeout 1..3600 seconds")
    return MariaTarget(user=user, host=host, port=port, database=database,
                       password=password or None, socket=socket, connect_timeout=timeout)


def display_url(url: str) -> str:
    """The URL without its password, for messages and manifests."""
    try:
        return parse_url(url).display()
    except ConfigError:
        return "<unparsable MariaDB URL>"


def _hint_for(e: my_errors.Error, target: MariaTarget) -> tuple[str, str]:
    where = target.display()
    errno = getattr(e, "errno", None)
    if errno == 1045:
        return (f"access denied for {where}",
                "check the user and password (URL, ~/.my.cnf or MYSQL_PWD) and the host grant")
    if errno == 1049:
        return (f"unknown database on {where}", "check the database name in the URL")
    if errno == 1044:
        return (f"the user may not use the database on {where}",
                "grant SELECT on the database to the user")
    if errno in (2003, 2002):
        return (f"cannot connect to {where}: connection refused or no socket",
                "check host, port or socket, and that the server is running")
    if errno == 2005:
        return (f"unknown host in {where}", "check the host name in the URL")
    first = (getattr(e, "msg", None) or str(e)).strip().splitlines()
    return (f"cannot connect to {where}: {first[0] if first else 'unknown error'}",
            "check the connection URL")


def connect_target(target: MariaTarget) -> Any:
    """A connection (autocommit) with topoff's session settings; failures are SourceError."""
    kw: dict[str, Any] = {
        "user": target.user, "password": target.password or "",
        "database": target.database or None, "charset": "utf8mb4",
        "collation": "utf8mb4_general_ci", "use_unicode": True, "autocommit": True,
        "connection_timeout": target.connect_timeout, "use_pure": False,
        "get_warnings": False, "raise_on_warnings": False,
    }
    if target.socket:
        kw["unix_socket"] = target.socket
    else:
        kw["host"], kw["port"] = target.host, target.port
    try:
        conn = mysql.connector.connect(**kw)
    except ImportError as e:  # the driver's C extension did not load (see pyproject.toml)
        raise SourceError(f"the MariaDB driver's C extension cannot be loaded: {e}",
                          hint="reinstall topoff's dependencies (mysql-connector-python "
                               "9.1 to 9.6 on Debian 12)") from None
    except my_errors.Error as e:
        msg, hint = _hint_for(e, target)
        raise SourceError(msg, hint=hint) from None
    cur = conn.cursor()
    try:
        cur.execute("SELECT VERSION()")
        row: Any = cur.fetchone()
        version = row[0] if row else ""
        cur.execute(session_sql(str(version)))
    except my_errors.Error as e:
        conn.close()
        raise SourceError(f"cannot set up a session on {target.display()}: {e.msg}",
                          hint="check the server's version (MariaDB 10.3+ or MySQL 8)") from None
    finally:
        cur.close()
    opened(conn, lambda c: _kill_query(target, c.connection_id))
    return conn


def _kill_query(target: MariaTarget, connection_id: int) -> None:
    """Interrupt what the connection ``connection_id`` runs, from a connection of its own
    (the command is stopping: workers.cancel_all)."""
    killer = connect_target(target)
    try:
        killer.cursor().execute(f"KILL QUERY {int(connection_id)}")
    finally:
        killer.close()


def connect(url: str, **changes: Any) -> Any:
    """Connect to ``url`` (``changes`` override resolved fields, e.g. ``database=``)."""
    target = parse_url(url)
    return connect_target(replace(target, **changes) if changes else target)
