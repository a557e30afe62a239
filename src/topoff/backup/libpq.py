"""Connection strings for libpq programs (pg_dump, pg_restore) without secrets on argv.

A password in the URL goes to the child's environment (PGPASSWORD), never on its command
line, where ``ps`` would show it; the rest is passed as a conninfo string. The children's
sessions read and write money in lc_monetary C (PGOPTIONS).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
from psycopg import conninfo as pg_conninfo

from topoff.errors import ConfigError, TopoffError


def split(url: str, **override: str) -> tuple[str, dict[str, str]]:
    """(conninfo without password, environment for the child)."""
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError("the connection string cannot be parsed",
                          hint="write it like postgresql://user@host:5432/db") from None
    env = dict(os.environ)
    # money is dumped and restored as text in the session's lc_monetary: C on both sides,
    # as topoff's own sessions (sources/postgres.py), whatever the databases default to
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lc_monetary=C".strip()
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    params.update(override)
    return pg_conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), env


def program(name: str) -> str:
    """The newest installed PostgreSQL client program (pg_dump must be >= the server)."""
    from topoff.demo.cluster import find_bindir

    try:
        candidate = find_bindir() / name
        if candidate.exists():
            return str(candidate)
    except ConfigError:
        raise  # TOPOFF_PG_BINDIR names a directory without the programs
    except TopoffError:
        pass  # no server programs installed: the client's on PATH will do
    found = shutil.which(name)
    if not found:
        raise ConfigError(f"{name} is not installed",
                          hint="install the PostgreSQL client programs (postgresql-client)")
    return str(Path(found))
