"""A float key holding 0 and -0 (equal in PostgreSQL, one key) in an Iceberg replica: an
upsert that rewrites the key's zero with the other sign replaces the row, whether a sync
applies a partition or ``topoff replicate`` refreshes the table."""

from __future__ import annotations

import pytest

from support.pg import make_config
from support.replica import cli, day, publish_day, publish_full
from support.replicate import config, new_database
from test_iceberg_sync import catalog_file, iceberg_rows
from test_replicate_iceberg import catalog_file as replicate_catalog
from test_replicate_iceberg import iceberg_rows as replicated_rows
from topoff.replicate.engine import run_once

TOML = 'dataset = "z"\n[tables.z]\nmethod = "upsert"\ncursor = "ts"\n'
SIGNS = [("-0", "0"), ("0", "-0")]


@pytest.mark.parametrize(("before", "after"), SIGNS, ids=["minus-to-plus", "plus-to-minus"])
def test_a_sync_upsert_replaces_a_zero_key_of_the_other_sign(db, tmp_path, before, after):
    """The delete by key listed the keys in an In filter (Arrow's is_in), which does not
    match -0 with 0: the old row stayed beside the new one."""
    db.execute("CREATE TABLE z (k float8 PRIMARY KEY, ts timestamptz NOT NULL, v text)")
    db.execute(f"INSERT INTO z VALUES ('{before}', '{day(3)} 01:00+00', 'old'), "
               f"(1, '{day(3)} 01:00+00', 'one'), (2, '{day(3)} 01:00+00', 'two')")
    db.sync()
    url = str(tmp_path / "published")
    cfg = make_config(db, TOML)
    publish_full(cfg, url)
    target = catalog_file(tmp_path)
    assert cli("sync", url, target).exit_code == 0
    db.execute(f"UPDATE z SET k = '{after}', v = 'new', ts = '{day(1)} 01:00+00' WHERE k = 0")
    db.execute(f"UPDATE z SET v = 'uno', ts = '{day(1)} 01:00+00' WHERE k = 1")
    db.sync()
    publish_day(cfg, url, day(1))
    out = cli("sync", url, target)
    assert out.exit_code == 0, out.stderr
    rows = iceberg_rows(target, "public.z")
    assert sorted((r[0], r[2]) for r in rows) == [(0.0, "new"), (1.0, "uno"), (2.0, "two")]
    assert str(next(r[0] for r in rows if r[2] == "new")) == f"{float(after)}"


@pytest.mark.parametrize(("before", "after"), SIGNS, ids=["minus-to-plus", "plus-to-minus"])
def test_a_replicated_upsert_replaces_a_zero_key_of_the_other_sign(cluster, tmp_path, before,
                                                                   after):
    """delete_keys found the rows of its keys with Arrow's is_in: -0 and 0 were two keys."""
    db = new_database(cluster)
    db.execute("CREATE TABLE z (k float8 PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               f"INSERT INTO z VALUES ('{before}', '2026-01-01', 'old'), "
               "(1, '2026-01-01', 'one'), (2, '2026-01-01', 'two')")
    target = replicate_catalog(tmp_path)
    cfg = config(target, {"app": (db.standby_url, {"z": {"method": "updater",
                                                         "cursor": "ts"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    db.execute(f"UPDATE z SET k = '{after}', v = 'new', ts = '2026-02-01' WHERE k = 0; "
               "UPDATE z SET v = 'uno', ts = '2026-02-01' WHERE k = 1")
    assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 2)]
    names, rows = replicated_rows(target, "app", "z")
    got = sorted((r[names.index("k")], r[names.index("v")]) for r in rows)
    assert got == [(0.0, "new"), (1.0, "uno"), (2.0, "two")]
