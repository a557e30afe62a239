"""A PostgreSQL enum may have the empty label ``''`` (only a label's length is bounded,
to 63 bytes): a dataset holds it, every target loads it and its arrays' elements, and
verify finds each replica equal."""

from __future__ import annotations

from support.pg import make_config
from support.replica import cli, publish_full, query
from support.replicate import new_database
from test_iceberg_sync import catalog_file, iceberg_rows


def test_an_enum_s_empty_label_is_a_label_on_every_target(db, cluster, tmp_path):
    db.execute("CREATE TYPE blank AS ENUM ('', 'a', 'NULL', 'b c'); "
               "CREATE TABLE labels (id integer, e blank, ea blank[])")
    db.execute("""INSERT INTO labels VALUES (1, '', '{"",a,NULL,"NULL","b c"}'),
                  (2, NULL, '{}'), (3, 'a', NULL)""")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, '[tables.labels]\nmethod = "snapshot"\n'), url)
    want = [(1, "", ["", "a", None, "NULL", "b c"]), (2, None, []), (3, "a", None)]
    iceberg = catalog_file(tmp_path)
    for target in (iceberg, str(tmp_path / "r.duckdb"), new_database(cluster, "rt").primary_url):
        out = cli("sync", url, target)
        assert out.exit_code == 0, (target, out.stdout, out.stderr)
        if target == iceberg:
            assert iceberg_rows(iceberg, "public.labels") == want
        else:
            held = query(target, "SELECT id, e::text, ea::text[] FROM public.labels ORDER BY id")
            assert [tuple(r) for r in held] == want, target
        out = cli("verify", target, "--against", db.standby_url)
        assert out.exit_code == 0, (target, out.stdout, out.stderr)
