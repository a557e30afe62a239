"""A column whose type is an array of a domain (``posint[]``, of a domain over a domain, of
a domain with a type modifier) or a domain over such an array: the dataset describes it as
the array of the base type, as it describes a column of a domain, and both targets load
its values exactly as they load the base type's; verify finds them equal."""

from __future__ import annotations

from support.dataset import read_dataset
from support.pg import make_config
from support.replica import columns, is_postgres, query
from topoff.export.full import export_full
from topoff.stores import open_store
from topoff.sync import sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]

DOMAINS = """
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN small AS posint CHECK (VALUE < 1000);
CREATE DOMAIN code AS varchar(3);
CREATE DOMAIN span AS interval;
CREATE DOMAIN posints AS posint[];
"""
#: column: (its type, the base type the manifest gives, format_type's spelling)
TYPES = {"p": ("posint[]", "integer[]"), "s": ("small[]", "integer[]"),
         "c": ("code[]", "character varying(3)[]"), "iv": ("span[]", "interval[]"),
         "pp": ("posint[][]", "integer[][]"), "ps": ("posints", "integer[]")}
ROWS = """
    (1, '{1,2,NULL}', '{999}', '{abc,"a,b",NULL}', '{"1 day","24:00:00"}', '{{1,2},{3,4}}',
     '{5,6}'),
    (2, '[0:1]={7,8}', '{}', '{""}', '{"1 mon -1 day"}', NULL, '{}'),
    (3, NULL, NULL, NULL, NULL, '{{9}}', NULL)"""


def _table(name: str, which: int) -> str:
    cols = ", ".join(f"{c} {t[which]}" for c, t in TYPES.items())
    return f"CREATE TABLE {name} (id int PRIMARY KEY, {cols}); INSERT INTO {name} VALUES {ROWS};"


def test_arrays_of_domains_load_as_arrays_of_their_base_type(db, replica, tmp_path) -> None:
    db.execute(DOMAINS + _table("da", 0) + _table("plain", 1))
    url = str(tmp_path / "published")
    with open_store(url) as store:
        export_full(make_config(db, '[tables.da]\nmethod = "snapshot"\n'
                                    '[tables.plain]\nmethod = "snapshot"\n'), store)
        [m] = read_dataset(store).manifests.values()
    types = {t: {c.name: c.type for c in m.tables[t].columns} for t in ("public.da",
                                                                     "public.plain")}
    assert types["public.da"] == types["public.plain"] == {
        "id": "integer", **{c: t[1] for c, t in TYPES.items()}}
    sync(url, replica)
    assert columns(replica, "public.da") == columns(replica, "public.plain")
    names = ", ".join(["id", *TYPES])
    held = query(replica, f"SELECT {names} FROM public.da ORDER BY id")
    assert held == query(replica, f"SELECT {names} FROM public.plain ORDER BY id")
    if is_postgres(replica):  # value by value, as the source has them
        texts = ", ".join(f"{c}::text" for c in TYPES)
        assert query(replica, f"SELECT {texts} FROM public.da ORDER BY id") == \
            db.standby_query(f"SELECT {texts} FROM da ORDER BY id")
    else:
        assert dict(columns(replica, "public.da"))["s"] == "INTEGER[]"
        assert held[0][2] == [999] and held[0][6] == [5, 6]
    report = verify(replica, db.standby_url)
    assert report.equal, report.to_json()
