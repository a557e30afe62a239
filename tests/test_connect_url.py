"""A PostgreSQL connection string goes to libpq as it is (docs/configuration.md,
"Precedence"), and one libpq refuses is a configuration error, exit 2
(docs/exit-codes.md: "invalid connection string"), for a source and for a replica alike."""

from __future__ import annotations

import pytest
from psycopg.conninfo import make_conninfo

from support.cli import error_lines, run_cli
from topoff.errors import ConfigError
from topoff.sources.postgres import connect

#: option values libpq refuses before (or instead of) talking to a server
BAD = [
    ("postgresql://u:SECRETPW@127.0.0.1:1/db?sslmode=bogus", 'invalid sslmode value: "bogus"'),
    ("host=127.0.0.1 port=abc dbname=d password=SECRETPW",
     'invalid integer value "abc" for connection option "port"'),
    ("postgresql://u:SECRETPW@127.0.0.1:99999/db", 'invalid port number: "99999"'),
    ("postgresql://127.0.0.1:1/db?target_session_attrs=any-of-them",
     'invalid target_session_attrs value: "any-of-them"'),
    ("postgresql://127.0.0.1:1/db?keepalives=x",
     'invalid integer value "x" for connection option "keepalives"'),
    ("host=a,b port=1,2,3 dbname=d", "could not match 3 port numbers to 2 hosts"),
]


@pytest.mark.parametrize("url, why", BAD)
def test_an_option_value_libpq_refuses_is_a_config_error(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as e:
        connect(url)
    assert e.value.message == f"invalid connection string: {why}"
    assert e.value.hint and "SECRETPW" not in e.value.message


@pytest.mark.parametrize("url, why", BAD[:2])
def test_the_commands_exit_2_for_it(tmp_path, url: str, why: str) -> None:
    for args in (("export", "full", "--source", url, "--to", str(tmp_path / "d"), "--dry-run"),
                 ("status", url), ("sync", str(tmp_path / "d"), url)):
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result.stderr)
        error, _ = error_lines(result)
        assert error == f"error: invalid connection string: {why}", args
        assert "SECRETPW" not in result.stderr


def _connect_timeout(url: str) -> str | None:
    conn = connect(url)
    try:
        return next(o.val for o in conn.pgconn.info if o.keyword == b"connect_timeout").decode()
    finally:
        conn.close()


def test_the_urls_connect_timeout_is_kept(db, monkeypatch) -> None:
    """connect_timeout in the URL or PGCONNECT_TIMEOUT is libpq's, as for psql; topoff's
    15 s applies when neither says (it replaced both)."""
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    assert _connect_timeout(db.standby_url) == "15"
    assert _connect_timeout(db.standby_url + "?connect_timeout=7") == "7"
    assert _connect_timeout(make_conninfo(db.standby_url, connect_timeout=8)) == "8"
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "9")
    assert _connect_timeout(db.standby_url) == "9"
    assert _connect_timeout(db.standby_url + "?connect_timeout=7") == "7"
