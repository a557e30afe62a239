"""The [replicate] config section, the where check (PostgreSQL parses it, nothing runs),
and the per-table state that the target stores."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from topoff.errors import ConfigError, IntegrityError
from topoff.replicate.config import parse_replicate
from topoff.replicate.describe import describe
from topoff.replicate.read import open_snapshot
from topoff.replicate.state import TableState

GOOD = """
[replicate]
target = "replica.duckdb"
[replicate.sources.matomo]
url = "postgresql://reader@standby/matomo"
schema = "matomo"
[replicate.sources.matomo.tables.log_visit]
method = "inserter"
cursor = "visit_last_action_time"
key = ["idvisit"]
boundary = "5m"
batch_rows = 500
exclude = ["secret"]
where = "idsite = 3"
[replicate.sources.matomo.tables.site]
method = "snapshot"
"""


def parse(text: str):
    return parse_replicate(tomllib.loads(text))


def test_a_full_section_parses():
    c = parse(GOOD)
    assert c.target == "replica.duckdb"
    [src] = c.sources
    assert src.name == "matomo" and not src.allow_primary and src.schema == "matomo"
    visit, site = src.tables
    assert visit.qualified == "matomo.log_visit" and visit.key == ("idvisit",)
    assert visit.boundary == timedelta(minutes=5) and visit.lookback == timedelta(days=1)
    assert visit.batch_rows == 500 and visit.exclude == ("secret",)
    assert site.method == "snapshot" and site.cursor is None


@pytest.mark.parametrize("change, words", [
    (('method = "inserter"', 'method = "copy"'), "unknown method"),
    (('cursor = "visit_last_action_time"\n', ""), "names no cursor"),
    (('boundary = "5m"', 'boundary = "5 parsecs"'), "invalid duration"),
    (('boundary = "5m"', 'boundary = "99999999999d"'), "too long"),  # was an internal error
    (('boundary = "5m"', "boundary = 5"), "both be durations"),
    (("batch_rows = 500", "batch_rows = 0"), "batch_rows"),
    (("batch_rows = 500", 'batch_rows = "many"'), "batch_rows"),
    (('exclude = ["secret"]', 'exclude = ["idvisit"]'), "leaves out column"),
    (('exclude = ["secret"]', 'columns = ["x"]\nexclude = ["y"]'), "both columns and exclude"),
    (('key = ["idvisit"]', "key = []"), "non-empty list"),
    (('key = ["idvisit"]', 'key = ["a", "a"]'), "twice"),
    (('where = "idsite = 3"', "where = 3"), "non-empty string"),
    (('batch_rows = 500', 'batch_rows = 500\ncursor_timezone = "Mars/Olympus"'), "time zone"),
    (('batch_rows = 500', "batch_rows = 500\nspeed = 3"), "unknown key 'speed'"),
    (('url = "postgresql://reader@standby/matomo"', ""), "has no url"),
    (('target = "replica.duckdb"', ""), "no target"),
])
def test_mistakes_are_config_errors_with_hints(change, words):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        parse(GOOD.replace(old, new, 1))
    assert words in info.value.message
    assert info.value.hint


def test_no_section_and_no_sources():
    with pytest.raises(ConfigError, match="no \\[replicate\\]"):
        parse("")
    with pytest.raises(ConfigError, match="lists no sources"):
        parse('[replicate]\ntarget = "x"')


def _where(db, where: str, name: str = "t"):
    from topoff.replicate.config import ReplicateTable
    t = ReplicateTable("s", "public", name, "inserter", cursor="ts", where=where)
    conn = open_snapshot(db.standby_url, False)
    try:
        return describe(conn, t)
    finally:
        conn.close()


@pytest.mark.parametrize("where, words", [
    ("true; DROP TABLE t", "semicolon"),
    ("true); DROP TABLE t; --", "closes more"),
    ("true) UNION SELECT 1 FROM t WHERE (true", "closes more than it opened"),
    ("ts > now() /* c */", "comment"),
    ("ts > now() -- c", "comment"),
    ("(ts > now()", "unbalanced"),
    ("v = 'unterminated", "unterminated quote"),
    ("v = $x$ ) $y$", "unterminated dollar quote"),
    ("nosuchcol = 1", "nosuchcol"),
    ("ts", "boolean"),
    ("1 = 1 1", "syntax"),
    ("   ", "empty"),
])
def test_a_where_must_be_one_row_condition(db, where, words):
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz, v text)")
    with pytest.raises(ConfigError) as info:
        _where(db, where)
    assert words in info.value.message
    # nothing ran: the table is still there, nothing was created
    assert db.standby_query("SELECT count(*) FROM pg_class WHERE relname = 't'") == [(1,)]


def test_a_valid_where_with_quotes_and_parentheses(db):
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz, v text)")
    info = _where(db, "(v = ')' OR v = E'\\')' OR v = $q$;($q$) AND id > 0")
    assert info.key == ("id",)


def test_a_view_needs_an_explicit_key_and_columns_are_checked(db):
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz); "
               "CREATE VIEW v AS SELECT * FROM t")
    from topoff.replicate.config import ReplicateTable
    conn = open_snapshot(db.standby_url, False)
    try:
        with pytest.raises(ConfigError, match="is a view"):
            describe(conn, ReplicateTable("s", "public", "v", "inserter", cursor="ts"))
        with pytest.raises(ConfigError, match="does not have"):
            describe(conn, ReplicateTable("s", "public", "t", "inserter", cursor="tss"))
        with pytest.raises(ConfigError, match="does not exist"):
            describe(conn, ReplicateTable("s", "public", "nope", "snapshot"))
        with pytest.raises(ConfigError, match="must be integers"):
            describe(conn, ReplicateTable("s", "public", "t", "inserter", cursor="id"))
        info = describe(conn, ReplicateTable("s", "public", "v", "inserter", cursor="ts",
                                             key=("id",)))
        assert info.key == ("id",) and not info.has_xmin
    finally:
        conn.close()


def test_state_round_trips_at_full_precision():
    s = TableState(cursor="2026-01-01 00:00:00.123456+00", key=("2026-01-01", "42"),
                   xmin=2**40 + 7, run_at=datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                   rows=10, content="3:123")
    assert TableState.from_json(s.to_json()) == s
    assert len(s.to_json()) < 400


@pytest.mark.parametrize("text", [
    "", "[]", '{"v": 2}', '{"v": 1, "xmin": -1}', '{"v": 1, "xmin": 1.5}',
    '{"v": 1, "xmin": true}', '{"v": 1, "xmin": 9223372036854775808}',
    '{"v": 1, "cursor": 5}', '{"v": 1, "key": "a"}', '{"v": 1, "key": [1]}',
    '{"v": 1, "run_at": "yesterday"}', '{"v": 1, "cursor": "' + "x" * 2000 + '"}',
    "x" * 20000,
])
def test_hostile_state_is_an_integrity_error(text):
    with pytest.raises(IntegrityError):
        TableState.from_json(text)


@pytest.mark.parametrize("zone, local, start", [
    ("Europe/Paris", "2026-10-25 02:30:00", "2026-10-25 02:00:00"),
    ("Europe/Paris", "2026-10-25 02:00:00", "2026-10-25 02:00:00"),
    ("Europe/Paris", "2026-10-25 02:59:59.999999", "2026-10-25 02:00:00"),
    ("Europe/Paris", "2026-10-25 01:59:59.999999", None),
    ("Europe/Paris", "2026-10-25 03:00:00", None),
    ("Europe/Paris", "2026-03-29 02:30:00", None),  # the spring gap repeats nothing
    ("Australia/Lord_Howe", "2026-04-05 01:45:00", "2026-04-05 01:30:00"),  # half an hour
    ("UTC", "2026-10-25 02:30:00", None),
])
def test_the_repeated_stretch_of_a_fall_back(zone, local, start):
    from zoneinfo import ZoneInfo

    from topoff.replicate.watermark import repeated_from
    got = repeated_from(datetime.fromisoformat(local), ZoneInfo(zone))
    assert got == (datetime.fromisoformat(start) if start else None)


def test_the_lower_bound_of_a_local_cursor():
    from zoneinfo import ZoneInfo

    from topoff.replicate.watermark import local_lower
    paris = ZoneInfo("Europe/Paris")
    ten = timedelta(minutes=10)
    assert local_lower("2026-10-25 02:50:00.000001", ten, paris) == "2026-10-25 01:50:00"
    assert local_lower("2026-10-25 04:00:00.000001", ten, paris) == \
        "2026-10-25 03:50:00.000001"
    assert local_lower("infinity", ten, paris) is None


def test_a_config_file_is_loaded_and_its_mistakes_reported(tmp_path):
    from topoff.replicate.config import load_replicate
    path = tmp_path / "topoff.toml"
    path.write_text(GOOD)
    assert load_replicate(path).sources[0].tables[0].name == "log_visit"
    path.write_text(GOOD + '[replicate.sources.matomo.tables.other]\nname = "site"\n'
                    'method = "snapshot"\n')
    with pytest.raises(ConfigError, match="twice"):
        load_replicate(path)
    path.write_text("[replicate\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_replicate(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_replicate(tmp_path / "missing.toml")


def test_each_source_lands_in_its_own_schema_by_default():
    c = parse(GOOD + '[replicate.sources.meta]\nurl = "postgresql://r@s/meta"\n'
              'target_schema = "analytics_meta"\n[replicate.sources.meta.tables.events]\n'
              'method = "snapshot"\ndrop_columns = true\n')
    assert [(s.name, s.landing_schema) for s in c.sources] == [
        ("matomo", "matomo"), ("meta", "analytics_meta")]
    assert c.sources[1].tables[0].drop_columns and not c.sources[0].tables[0].drop_columns


@pytest.mark.parametrize("extra,word", [
    ('target_schema = "topoff"', "reserved"),
    ('target_schema = ""', "non-empty"), ("target_schema = 3", "non-empty")])
def test_a_bad_target_schema_is_refused(extra, word):
    text = GOOD.replace('schema = "matomo"\n', f'schema = "matomo"\n{extra}\n', 1)
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert word in info.value.message


@pytest.mark.parametrize("target,extra,word", [
    ("replica.duckdb", 'target_schema = "TOPOFF"', "reserved"),
    ("replica.duckdb", 'target_schema = "temp"', "reserved"),
    ("replica.duckdb", 'target_schema = "topoff_replica"', "reserved"),
    ("postgresql://w@t/r", 'target_schema = "_topoff_build"', "reserved"),
    ("postgresql://w@t/r", 'target_schema = "information_schema"', "reserved"),
    ("postgresql://w@t/r", 'target_schema = "pg_x"', "reserved"),
    ("replica.duckdb", 'target_schema = "PG_CATALOG"', "reserved")])
def test_a_schema_the_target_keeps_is_refused(target, extra, word):
    """DuckDB takes TOPOFF for topoff (the state's schema) and refuses temp; PostgreSQL's
    replicate keeps its build tables in _topoff_build: each was taken as a target schema."""
    text = GOOD.replace('schema = "matomo"\n', f'schema = "matomo"\n{extra}\n', 1)
    with pytest.raises(ConfigError) as info:
        parse(text.replace('"replica.duckdb"', f'"{target}"'))
    assert word in info.value.message


def test_a_duckdb_target_takes_a_schema_postgresql_keeps():
    """pg_x is PostgreSQL's (refused there); a DuckDB file, as `sync` into one, takes it,
    and PG_STATS (docs/replicate.md: pg_ is refused in lower case only)."""
    for name in ("pg_x", "PG_STATS"):
        text = GOOD.replace('schema = "matomo"\n', f'schema = "matomo"\ntarget_schema = "{name}"\n',
                            1)
        assert parse(text).sources[0].landing_schema == name


SECOND = """
[replicate.sources.other]
url = "postgresql://reader@standby2/other"
target_schema = "matomo"
[replicate.sources.other.tables.{name}]
method = "snapshot"
"""


@pytest.mark.parametrize("target,name,refused", [
    ("replica.duckdb", "site", True), ("replica.duckdb", "Site", True),
    ("postgresql://w@t/r", "Site", False), ("replica.duckdb", "other_site", False)])
def test_two_sources_landing_in_one_table_are_refused(target, name, refused):
    """Two sources with one target_schema and a table of one name (DuckDB: of one name but
    for the case of its letters) were accepted: the second failed at every run."""
    text = GOOD.replace('"replica.duckdb"', f'"{target}"') + SECOND.format(name=name)
    if not refused:
        assert len(parse(text).sources) == 2
        return
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert "matomo.matomo.site and other.public." + name in info.value.message
    assert "target_schema" in info.value.hint


def test_two_tables_of_one_source_landing_in_one_table_are_refused():
    """Tables of two source schemas with one name land in one table of the target."""
    with pytest.raises(ConfigError) as info:
        parse(GOOD + '[replicate.sources.matomo.tables.site2]\nschema = "archive"\n'
              'name = "site"\nmethod = "snapshot"\n')
    assert "matomo.matomo.site and matomo.archive.site" in info.value.message


def test_drop_columns_is_true_or_false():
    with pytest.raises(ConfigError) as info:
        parse(GOOD + 'drop_columns = "yes"\n')
    assert "drop_columns" in info.value.message


def test_the_lower_bound_of_a_wide_numeric_cursor_keeps_every_digit():
    from psycopg import sql

    from topoff.replicate.watermark import bound

    wide = "123456789012345678901234567890123456.78"
    lower = bound(wide, 1, "numeric", None)
    assert lower == sql.Literal("123456789012345678901234567890123455.78")
    assert bound("9" * 60, 10**18, "bigint", None) == sql.Literal(
        str(int("9" * 60) - 10**18))


def test_the_defaults_docs_replicate_md_names():
    """method inserter, boundary 10m, lookback 1d, batch_rows 100000 (the page's example
    marks them as the defaults)."""
    from datetime import timedelta

    t = parse('[replicate]\ntarget = "r.duckdb"\n[replicate.sources.s]\nurl = "postgresql://h/d"'
              '\n[replicate.sources.s.tables.t]\ncursor = "ts"\n').sources[0].tables[0]
    assert (t.method, t.boundary, t.lookback, t.batch_rows) == (
        "inserter", timedelta(minutes=10), timedelta(days=1), 100_000)
