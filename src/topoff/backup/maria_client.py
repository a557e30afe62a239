"""Credentials and programs for the MariaDB client tools (mariadb-dump, mariadb).

The password never goes on a command line (``ps`` and ``/proc/<pid>/cmdline`` would show
it) nor into the environment: :func:`option_file` writes user, password, host, port and
socket into an option file, mode 0600, in a private temp directory (0700) that is removed
when the block ends, and the program reads it through ``--defaults-extra-file``, its first
argument.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from topoff.backup.catalog import work_directory
from topoff.errors import ConfigError
from topoff.sources.mariadb.connect import MariaTarget


def _value(text: str) -> str:
    """An option file value: double-quoted, with the escapes the client library reads
    (an unescaped quote would end the quoted part, and a ``#`` after it starts a comment)."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r") \
        .replace("\t", "\\t").replace('"', '\\"').replace("'", "\\'")
    return f'"{out}"'


def option_text(target: MariaTarget) -> str:
    lines = ["[client]", f"user={_value(target.user)}"]
    if target.password:
        lines.append(f"password={_value(target.password)}")
    if target.socket:
        lines.append(f"socket={_value(target.socket)}")
    else:
        # "localhost" would mean the default socket to the client library: a URL's host
        # is a TCP host
        lines += [f"host={_value(target.host)}", f"port={target.port}", "protocol=TCP"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def option_file(target: MariaTarget) -> Iterator[Path]:
    """An option file for ``target`` (0600 in a 0700 directory), removed afterwards (the
    next one removes those of a killed topoff)."""
    base = work_directory("topoff-my-", None)
    try:
        path = base / "client.cnf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(option_text(target))
        yield path
    finally:
        shutil.rmtree(base, ignore_errors=True)


def child_env() -> dict[str, str]:
    """The environment for the client programs: topoff's, without ``MYSQL_PWD`` (the
    option file carries the password)."""
    return {k: v for k, v in os.environ.items() if k != "MYSQL_PWD"}


def program(*names: str) -> str:
    """The first of ``names`` installed (mariadb-dump, then mysqldump, ...)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(f"{names[0]} is not installed",
                      hint="install the MariaDB client programs (Debian: mariadb-client)")
