"""Values at the edges of Iceberg's types, end to end (source -> dataset -> Iceberg): what
a column's declared type cannot hold exactly is a ``string`` column of the dataset's text
(an unconstrained numeric with NaN, a 40-digit numeric); the years 1 to 9999 are held
exactly; a value its exact column cannot hold (a BC date, ``infinity``, the year 10000,
NaN in numeric(p,s), a 2-D array, an array with a lower bound) stops the sync with exit 7,
naming the table, the column and the value, with nothing committed."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from support.pg import make_config
from support.replica import cli, publish_full
from test_iceberg_sync import catalog_file, iceberg_rows, iceberg_table
from topoff.sync import sync
from topoff.verify import verify

EDGES_TOML = """
dataset = "edges"

[tables.edges]
method = "snapshot"
"""

FORTY = "1234567890123456789012345678901234567890"


def _publish(db, tmp_path) -> tuple[str, str]:
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, EDGES_TOML), url)
    return url, catalog_file(tmp_path)


def test_wide_numbers_and_far_years_are_held_exactly(db, tmp_path):
    db.execute("CREATE TABLE edges (id integer PRIMARY KEY, n numeric, n40 numeric(40, 2), "
               "n38 numeric(38, 2), d date, ts timestamp, tz timestamptz)")
    db.execute(f"INSERT INTO edges VALUES (1, 'NaN', {FORTY[:38]}.25, "
               f"{FORTY[:36]}.25, '9999-12-31', '9999-12-31 23:59:59.999999', "
               f"'0001-01-01 00:00:00+00'), "
               f"(2, {FORTY}.000001, -{FORTY[:38]}.5, -1.5, '2026-01-01', "
               "'2026-01-01 00:00:00', '2026-01-01 00:00:00+00'), "
               "(3, NULL, NULL, NULL, NULL, NULL, NULL)")
    url, target = _publish(db, tmp_path)
    sync(url, target)
    types = {f.name: str(f.field_type) for f in iceberg_table(target, "public.edges")
             .schema().fields}
    assert types["n"] == "string" and types["n40"] == "string"
    assert types["n38"] == "decimal(38, 2)" and types["d"] == "date"
    rows = iceberg_rows(target, "public.edges")
    assert rows[0][:4] == (1, "NaN", f"{FORTY[:38]}.25", Decimal(f"{FORTY[:36]}.25"))
    assert rows[1][1:3] == (f"{FORTY}.000001", f"-{FORTY[:38]}.50")
    assert rows[0][4:] == (date(9999, 12, 31), datetime(9999, 12, 31, 23, 59, 59, 999999),
                           datetime(1, 1, 1, tzinfo=UTC))
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


REFUSED = [
    ("d date", "'0044-03-15 BC'", "'0044-03-15 BC'"),
    ("d timestamp", "'infinity'", "'infinity'"),
    ("d timestamptz", "'-infinity'", "'-infinity'"),
    ("d date", "'10000-01-01'", "'10000-01-01'"),
    ("d timestamp", "'10000-01-01 00:00:00'", "'10000-01-01 00:00:00'"),
    ("d timestamptz", "'294276-12-31 23:59:59.999999+00'", "'294276-12-31 23:59:59.999999+00'"),
    ("d timestamp", "'4713-01-01 00:00:00 BC'", "'4713-01-01 00:00:00 BC'"),
    ("d numeric(10, 2)", "'NaN'", "'NaN'"),
    ("d integer[]", "'{{1,2},{3,4}}'", "'{{1,2},{3,4}}'"),
    ("d text[]", "'[2:3]={a,b}'", "'[2:3]={a,b}'"),
]


STRINGS = {  # column: values, each held as PostgreSQL's text (docs/iceberg.md, Types)
    "tm time": ["24:00:00", "00:00:00", "23:59:59.999999"],
    "tz timetz": ["24:00:00+15:59", "00:00:00-15:59", "12:00:00.000001+00"],
    "iv interval": ["178956970 years 7 mons 2147483647 days 2562047788:00:54.775807",
                    "-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807",
                    "1 mon -1 days +00:00:00.000001"],
    "u uuid": ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
               "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
    "t text": ["".join(map(chr, range(1, 32))) + "\x7f", "a\x1eb\x1fc", "\\."],
    "j json": ["1e400", '{"a": -1e400}', '"\\u0000"'],
    "jb jsonb": ["1e-400", "1.50", "-0"],
}


def test_edge_values_of_text_kept_and_float_columns_are_held_exactly(db, tmp_path):
    """Times up to 24:00:00, offsets of +-15:59, intervals at their extremes, uuids,
    control characters, JSON numbers no double holds: PostgreSQL's text, exactly; a bytea
    of every byte; a real's own single-precision value (16777217 is 16777216 in a real),
    subnormals, -0 and NaN, also in arrays (which verify leaves out)."""
    names = [c.split()[0] for c in STRINGS]
    db.execute(f"CREATE TABLE edges (id integer PRIMARY KEY, {', '.join(STRINGS)}, "
               "b bytea, f real, af real[], ad double precision[])")
    floats = ["16777217", "1e-45", "3.4028235e38", "-0", "NaN"]
    with db.primary() as conn:
        for i in range(3):
            conn.execute(f"INSERT INTO edges (id, {', '.join(names)}) "
                         f"VALUES ({i + 1}{', %s' * len(names)})",
                         [v[i] if i < len(v) else None for v in STRINGS.values()])
        for i, f in enumerate(floats):
            conn.execute("INSERT INTO edges (id, f) VALUES (%s, %s)", (10 + i, f))
        conn.execute("INSERT INTO edges (id, b, af, ad) VALUES (20, %s, %s, %s)",
                     (bytes(range(256)), "{16777217,1e-45,-0,NaN,-Infinity}",
                      "{5e-324,-0,NaN,0.1}"))
    url, target = _publish(db, tmp_path)
    sync(url, target)
    got = {r[0]: r for r in iceberg_rows(target, "public.edges")}
    for n, column in enumerate(names, start=1):
        want = db.standby_query(f"SELECT {column}::text FROM edges WHERE id <= 3 ORDER BY id")
        assert [got[i + 1][n] for i in range(3)] == [w[0] for w in want], column
    f, af, ad = (len(names) + k for k in (2, 3, 4))
    assert [got[10 + i][f] for i in range(4)] == [16777216.0, 1.401298464324817e-45,
                                                   3.4028234663852886e38, 0.0]
    assert math.copysign(1, got[13][f]) == -1 and math.isnan(got[14][f])
    assert got[20][len(names) + 1] == bytes(range(256))
    assert got[20][af][:2] == [16777216.0, 1.401298464324817e-45]
    assert math.copysign(1, got[20][af][2]) == -1 and math.isnan(got[20][af][3])
    assert got[20][af][4] == -math.inf
    assert got[20][ad][0] == 5e-324 and math.copysign(1, got[20][ad][1]) == -1
    assert math.isnan(got[20][ad][2]) and got[20][ad][3] == 0.1
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


@pytest.mark.parametrize(("column", "value", "shown"), REFUSED,
                         ids=["bc-date", "infinity", "minus-infinity", "year-10000",
                              "year-10000-timestamp", "last-postgresql-instant",
                              "first-postgresql-timestamp", "nan-numeric",
                              "2-d-array", "lower-bound"])
def test_a_value_its_column_cannot_hold_is_refused(db, tmp_path, column, value, shown):
    db.execute(f"CREATE TABLE edges (id integer PRIMARY KEY, {column})")
    db.execute(f"INSERT INTO edges VALUES (1, NULL), (2, {value})")
    url, target = _publish(db, tmp_path)
    out = cli("sync", url, target)
    assert out.exit_code == 7, (out.stdout, out.stderr)
    first = out.stderr.splitlines()
    assert any(line.startswith("error: ") and "public.edges" in line
               and "column d " in line and shown in line for line in first), out.stderr
    assert any(line.startswith("hint: ") for line in first), out.stderr
    table = iceberg_table(target, "public.edges")
    assert table.current_snapshot() is None and table.properties["topoff.step"] == "schema"


def test_an_upsert_key_whose_name_holds_a_dot_is_refused(db, tmp_path):
    """pyiceberg takes "a.b" for a nested field when it deletes by key: the table is refused
    before anything is made (the first partition was an internal error, exit 70)."""
    db.execute('CREATE TABLE dotted ("a.b" integer PRIMARY KEY, ts timestamptz NOT NULL); '
               "INSERT INTO dotted VALUES (1, '2026-01-01 00:00:00+00')")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, 'dataset = "d"\n[tables.dotted]\nmethod = "upsert"\n'
                             'cursor = "ts"\n'), url)
    target = catalog_file(tmp_path)
    out = cli("sync", url, target)
    assert out.exit_code == 7, (out.stdout, out.stderr)
    assert any(line.startswith("error: ") and "public.dotted" in line and "dot" in line
               for line in out.stderr.splitlines()), out.stderr


def test_a_dotted_upsert_key_of_a_table_made_before_is_refused_at_its_partition(
        db, tmp_path, monkeypatch):
    """A table an earlier version made (without the check) is refused when an upsert
    partition comes, before anything of it is committed (it was exit 70)."""
    import topoff.sync.iceberg_apply  # noqa: F401  (imported before the patch below)
    from support.replica import publish_day
    from topoff.targets.iceberg import table as iceberg_table_module

    db.execute('CREATE TABLE dotted2 ("a.b" integer PRIMARY KEY, ts timestamptz NOT NULL); '
               "INSERT INTO dotted2 VALUES (1, now() - interval '2 days')")
    db.sync()
    url = str(tmp_path / "published")
    config = make_config(db, 'dataset = "d"\n[tables.dotted2]\nmethod = "upsert"\n'
                             'cursor = "ts"\n')
    publish_full(config, url)
    target = catalog_file(tmp_path)
    real = iceberg_table_module.table_name
    with monkeypatch.context() as m:  # the table as an earlier version made it
        m.setattr(iceberg_table_module, "table_name", lambda e: e.name)
        m.setattr("topoff.sync.iceberg.table_name", lambda e: e.name)
        sync(url, target)
    assert iceberg_table_module.table_name is real
    db.execute("UPDATE dotted2 SET ts = now() - interval '1 day'")
    db.sync()
    from datetime import timedelta
    publish_day(config, url, (datetime.now(UTC) - timedelta(days=1)).date())
    out = cli("sync", url, target)
    assert out.exit_code == 7, (out.stdout, out.stderr)
    assert "dot" in out.stderr and "internal error" not in out.stderr


def test_a_column_whose_name_holds_a_dot_is_added_by_a_partition(db, tmp_path):
    """A new column "p.q" was an internal error (exit 70: pyiceberg refuses a dotted name
    given as text, it takes it for a nested field)."""
    from support.replica import day, publish_day

    db.execute('CREATE TABLE dots (id integer, ts timestamptz NOT NULL, "x.y" text)')
    db.execute(f"INSERT INTO dots VALUES (1, '{day(3)} 01:00+00', 'one')")
    db.sync()
    url = str(tmp_path / "published")
    config = make_config(db, 'dataset = "d"\n[tables.dots]\nmethod = "append"\n'
                             'cursor = "ts"\n')
    publish_full(config, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    db.execute('ALTER TABLE dots ADD COLUMN "p.q" integer[]')
    db.execute(f"INSERT INTO dots VALUES (2, '{day(1)} 01:00+00', 'two', '{{1,2}}')")
    db.sync()
    publish_day(config, url, day(1))
    out = cli("sync", url, target)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    assert [r[2:] for r in iceberg_rows(target, "public.dots")] == [("one", None),
                                                                    ("two", [1, 2])]
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


@pytest.mark.parametrize("cursor", ["timestamp", "timestamptz"])
def test_status_shows_the_last_microsecond_of_9999_as_the_newest_cursor(db, tmp_path, cursor):
    """The newest value was read through a float of seconds: 9999-12-31 23:59:59.999999
    rounded up to year 10000, an internal error (and every value lost its microseconds)."""
    db.execute(f"CREATE TABLE far (id integer, ts {cursor} NOT NULL)")
    db.execute("INSERT INTO far VALUES (1, '9999-12-31 23:59:59.999999'), "
               "(2, '2026-01-01 00:00:00.000001')")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, 'dataset = "far"\n[tables.far]\nmethod = "append"\n'
                             'cursor = "ts"\n'), url)
    target = catalog_file(tmp_path)
    assert cli("sync", url, target).exit_code == 0
    out = cli("status", target)
    assert out.exit_code == 0, out.stderr
    assert "9999-12-31 23:59:59.999999" in out.stdout, out.stdout


#: column: (its type on the source, the manifest's spelling, the Iceberg type)
SPELLINGS = {
    "a": ("integer[]", "_int4", "list<int>"), "b": ("integer[]", "int4[]", "list<int>"),
    "c": ("character varying(3)[]", "varchar(3)[]", "list<string>"),
    "d": ("double precision[]", "float8[]", "list<double>"),
    "e": ("double precision[]", "_float8", "list<double>"),
    "f": ("timestamp(3) with time zone[]", "timestamptz(3)[]", "list<string>"),
    "g": ("numeric(5,2)[]", "decimal(5, 2)[]", "list<string>"),
    "h": ("bit varying(4)[]", "varbit(4)[]", "list<string>"),
    "i": ("numeric(5,2)", "decimal(5,2)", "decimal(5, 2)"),
    "j": ("timestamp without time zone", "timestamp", "timestamp"),
    "k": ("smallint[]", "_int2", "list<int>"), "m": ("boolean[]", "bool[]", "list<boolean>"),
}


@pytest.mark.parametrize("logical", [False, True], ids=["derived", "declared"])
def test_another_spelling_of_a_built_in_type_is_that_type(db, tmp_path, logical):
    """A manifest may spell a type as PostgreSQL reads it (``int4[]``, ``_int4``,
    ``varchar(3)[]``): ``_int4`` was a string column of the array's text, ``int4[]`` a list
    of strings, ``varchar(3)[]`` a manifest refused; each is the Iceberg type its
    format_type() spelling maps to, with the same values, and verify finds it equal."""
    from support.dataset import rewrite_manifest

    db.execute(f"CREATE TABLE edges (id integer, "
               f"{', '.join(f'{c} {t[0]}' for c, t in SPELLINGS.items())})")
    db.execute("INSERT INTO edges VALUES (1, '{1,NULL}', '{2}', '{ab,NULL,\"\"}', '{1.5}', "
               "'{-0}', '{2026-01-01 00:00:00.123+00}', '{1.50,NULL}', '{101}', 2.5, "
               "'2026-01-01 10:00:00', '{-1}', '{t,NULL}'), "
               "(2, '{}', NULL, '{}', '{}', '{}', '{}', '{}', '{}', NULL, NULL, '{}', '{}')")
    url, target = _publish(db, tmp_path)
    [pub] = [p.name for p in (tmp_path / "published" / "full").iterdir()]

    def respell(doc: dict) -> None:
        for c in doc["tables"]["public.edges"]["columns"]:
            if c["name"] in SPELLINGS:
                c["type"] = SPELLINGS[c["name"]][1]
                if not logical:
                    del c["logical"]
    rewrite_manifest(tmp_path / "published", f"full/{pub}", respell)
    out = cli("sync", url, target)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    table = iceberg_table(target, "public.edges")
    assert {f.name: str(f.field_type) for f in table.schema().fields} == {
        "id": "int", **{c: t[2] for c, t in SPELLINGS.items()}}
    rows = iceberg_rows(target, "public.edges")
    assert rows[0][1:3] == ([1, None], [2]) and rows[0][4:6] == ([1.5], [-0.0])
    assert rows[0][11:] == ([-1], [True, None]) and rows[1][2] is None
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()
