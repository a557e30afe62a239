"""Connections to a PostgreSQL source: one place that connects, and turns failures into hints.

The URL is given to libpq as is, so ``postgresql://`` URLs, ``key=value`` strings, the
PG* environment variables and ~/.pgpass all work as they do for psql.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Any, cast

import psycopg
from psycopg import conninfo as pg_conninfo

from topoff.errors import OPEN_FILES_HINT, ConfigError, SourceError, StoreError
from topoff.workers import opened

# Settings that make COPY output the same whatever the server or role defaults are: the
# dataset format documents these (docs/dataset-format.md). A PostgreSQL replica's sessions
# take the same (the same text read back the same way).
SESSION_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",  # money's text: $1,234.56 whatever the server's locale
    # a table under row-level security is read whole or refused, never filtered (pg_dump's
    # rule): a policy would hide rows from the role silently
    "row_security": "off",
    # only the built-ins resolve an unqualified function, operator or type (pg_dump's rule,
    # CVE-2018-1058): whoever may create objects in public cannot outrank them
    "search_path": "pg_catalog",
    "client_encoding": "UTF8",
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}


class ServerUnavailable(SourceError):
    """The server refused the connection or is starting up or shutting down (for now)."""


_UNAVAILABLE = ("connection refused", "the database system is starting up",
                "the database system is shutting down", "the database system is not yet "
                "accepting connections", "the database system is in recovery mode")


#: libpq's refusals of a connection option's value (fe-connect.c), before any server
_BAD_OPTION = re.compile(r'invalid integer value "[^"\n]*" for connection option "\w+"'
                         r'|invalid port number: "[^"\n]*"|invalid \w+ value: "[^"\n]*"'
                         r"|could not match \d+ (?:port numbers|host names) to \d+ \w+(?: \w+)?")

#: seconds a connection may take when neither the URL nor PGCONNECT_TIMEOUT says
DEFAULT_CONNECT_TIMEOUT = "15"


def display_url(url: str) -> str:
    """The URL without its password, for messages and manifests."""
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    params.pop("password", None)
    env = os.environ  # what libpq takes when the string does not say (PGHOST, PGPORT...)
    host = params.get("host") or env.get("PGHOST") or params.get("hostaddr") \
        or env.get("PGHOSTADDR") or "localhost"
    port = params.get("port") or env.get("PGPORT") or "5432"
    user = params.get("user") or env.get("PGUSER")
    db = params.get("dbname") or env.get("PGDATABASE") or ""
    return f"postgresql://{str(user) + '@' if user else ''}{host}:{port}/{db}"


def _hint_for(message: str, url: str) -> tuple[str, str]:
    """A short message and a hint for a libpq connection failure."""
    low = message.lower()
    where = display_url(url)
    if "password authentication failed" in low or "no password supplied" in low:
        return (f"password authentication failed for {where}",
                "check the password in the URL, in PGPASSWORD or in ~/.pgpass")
    if "does not exist" in low and "database" in low:
        return (f"database does not exist on {where}", "check the database name in the URL")
    if "role" in low and "does not exist" in low:
        return (f"role does not exist on {where}", "check the user name in the URL")
    if "connection refused" in low or "could not connect" in low:
        return (f"cannot connect to {where}: connection refused",
                "check host and port, and that the server is running and accepts TCP connections")
    if "timeout" in low or "timed out" in low:
        return (f"connecting to {where} timed out", "check the host name and the network path")
    if "could not translate host name" in low or "name or service not known" in low:
        return (f"unknown host in {where}", "check the host name in the URL")
    if "pg_hba.conf" in low:
        return (f"{where} refused the connection (pg_hba.conf)",
                "ask the DBA to allow this host and user in pg_hba.conf")
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return (f"cannot connect to {where}: {first}", "check the connection URL")


def connect(url: str, application_name: str = "topoff", autocommit: bool = False,
            **overrides: str) -> psycopg.Connection:
    """Connect and apply topoff's session settings; errors become SourceError with a hint."""
    if url.lower().startswith(("mariadb://", "mysql://")):
        raise ConfigError("this command reads PostgreSQL sources only, not MariaDB",
                          hint="init, check-config, export, verify, replicate and backup "
                               "read MariaDB sources (docs/mariadb.md)")
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise ConfigError(f"invalid connection string: {str(e).splitlines()[0]}",
                          hint="use postgresql://user@host:port/dbname") from None
    if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
        overrides.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)  # else libpq's own
    try:
        conn = psycopg.connect(url, application_name=application_name, autocommit=True,
                               **cast(dict[str, Any], overrides))
    except OSError as e:  # psycopg's wait for the connection takes a descriptor too
        if e.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        raise _out_of_files(url, e.strerror or str(e)) from None
    except psycopg.OperationalError as e:
        if "Too many open files" in str(e):  # libpq's socket
            raise _out_of_files(url, "Too many open files") from None
        refused = _BAD_OPTION.search(str(e))
        if refused:  # libpq refused a value of the string itself: no server was asked
            raise ConfigError(f"invalid connection string: {refused.group()}",
                              hint="use postgresql://user@host:port/dbname and the values "
                              "libpq documents for its options") from None
        msg, hint = _hint_for(str(e), url)
        kind = ServerUnavailable if any(t in str(e).lower() for t in _UNAVAILABLE) \
            else SourceError
        raise kind(msg, hint=hint) from None
    with conn.cursor() as cur:
        for name, value in SESSION_SETTINGS.items():
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
    conn.autocommit = autocommit
    opened(conn)  # its statement cancelled if the command is interrupted
    return conn


def _out_of_files(url: str, why: str) -> StoreError:
    """The process's limit on open files reached by a connection (to a source or a
    replica): the same error as a store's file over it (exit 5, docs/exit-codes.md),
    whichever ran out first."""
    return StoreError(f"cannot connect to {display_url(url)}: {why}", hint=OPEN_FILES_HINT)


def server_version(conn: psycopg.Connection) -> tuple[str, int]:
    return conn.info.parameter_status("server_version") or "", conn.info.server_version
