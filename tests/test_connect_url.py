"""A PostgreSQL connection string goes to libpq as it is (docs/configuration.md,
"Precedence")."""

from __future__ import annotations

from psycopg.conninfo import make_conninfo

from topoff.sources.postgres import connect


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
