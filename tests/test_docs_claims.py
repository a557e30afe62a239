"""Claims the docs make that a user relies on (README.md, docs/*.md, docs/commands/*.md),
checked by running the commands as the pages show them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.backup import entry
from support.replica import cli, fill, is_postgres, nommer_config, publish_standard, query

DOCS = Path(__file__).resolve().parent.parent / "docs"

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


def _json_example(page: str, command: str) -> object:
    """The JSON a page shows under ``$ COMMAND``."""
    text = (DOCS / "commands" / page).read_text()
    block = text.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    return json.loads(block)


def test_backups_list_json_has_the_fields_its_page_shows(tmp_path):
    """backups-list.md: "`--json` prints every field", as its example shows them."""
    store = tmp_path / "store"
    entry(store, "dump.a", 2, drill_ok=True)
    r = cli("backups", "list", str(store), "--json")
    assert r.exit_code == 0, r.stderr
    [real] = json.loads(r.stdout)
    [shown] = _json_example("backups-list.md",  # type: ignore[misc]
                            "topoff backups list /srv/backups/datanommer --json")
    assert list(real) == list(shown)
    assert list(real["drill"]) == list(shown["drill"])
