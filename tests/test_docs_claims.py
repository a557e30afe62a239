"""Claims the docs make that a user relies on (README.md, docs/*.md, docs/commands/*.md),
checked by running the commands as the pages show them."""

from __future__ import annotations

import pytest

from support.replica import cli, fill, is_postgres, nommer_config, publish_standard, query

pytest_plugins = ["support.replica_fixtures"]


def test_sync_primary_keys_option_decides_and_is_kept(db, replica, tmp_path):
    """targets.md: primary key indexes by default on PostgreSQL, not on DuckDB, "the
    `--primary-keys` / `--no-primary-keys` decide"; "the choice is kept by the replica;
    changing it takes `--rebase`"."""
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    want = not is_postgres(replica)  # the other choice than the default
    flag, other = ("--primary-keys", "--no-primary-keys") if want else \
        ("--no-primary-keys", "--primary-keys")
    r = cli("sync", url, replica, flag)
    assert r.exit_code == 0, r.stderr
    insert = "INSERT INTO public.users VALUES (1, 'again')"
    if want:
        with pytest.raises(Exception, match=r"(?i)duplicate|constraint"):
            query(replica, insert)
    else:
        query(replica, insert)  # no index: the duplicate goes in
    r = cli("sync", url, replica, other)
    assert r.exit_code == 2, r.stdout + r.stderr
    assert "primary keys" in r.stderr and "--rebase" in r.stderr
