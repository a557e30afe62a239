"""Configuration: the TOML file, its checks, and the environment."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from topoff.config import (
    Config,
    ExportSettings,
    load_config,
    parse_config,
    parse_duration,
    parse_size,
)
from topoff.demo import sample
from topoff.errors import ConfigError

MINIMAL = """
dataset = "d"
[tables.events]
cursor = "t"
"""


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text))


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


def test_example_config_classifies_the_datanommer_tables():
    c = parse(sample.example_config())
    assert c.dataset == "datanommer"
    assert c.strict is True
    assert c.allow_primary is False
    assert [t.qualified for t in c.tables] == [
        "public.messages", "public.users_messages", "public.packages_messages",
        "public.users", "public.packages"]
    messages = c.table("public.messages")
    assert (messages.method, messages.cursor, messages.cursor_timezone) == (
        "append", "timestamp", "UTC")
    assert messages.private_columns() == {"certificate", "signature", "crypto"}
    assert c.table("public.users").method == "snapshot"
    assert c.table("public.users").cursor is None
    assert c.export == ExportSettings(jobs=4, chunk_bytes=256 * 1024**2, compression_level=3,
                                      lookback_days=3, retry_attempts=5, retry_backoff=2.0)
    assert (c.retention.keep_days, c.retention.keep_full) == (15, 2)


def test_defaults_and_table_naming():
    c = parse(MINIMAL + '[tables."audit.log"]\n[tables.other]\nschema = "s"\n')
    events, log, other = c.tables
    assert (events.qualified, events.method, events.cursor_timezone) == ("public.events",
                                                                         "append", "UTC")
    assert log.qualified == "audit.log" and log.method == "snapshot"
    assert other.qualified == "s.other"
    assert c.export == ExportSettings()
    assert c.source_url is None and c.strict is False


def test_a_table_named_by_schema_and_name_keys():
    """`topoff init` names a table by `schema` and `name` when the section's key cannot say
    it alone (the same table name in two schemas, a schema with a dot in it)."""
    c = parse('[tables."a.b.t"]\nschema = "a.b"\nname = "t"\n'
              '[tables."x.t"]\nschema = "x"\nname = "t.\\"q\\""\n'
              '[tables.t]\nname = "T"\n')
    assert [(t.schema, t.name) for t in c.tables] == [("a.b", "t"), ("x", 't."q"'),
                                                      ("public", "T")]
    assert "name must be a str" in error_of('[tables.t]\nname = 3').message
    assert "configured twice" in error_of('[tables.t]\n[tables.u]\nname = "t"').message


@pytest.mark.parametrize("text, words", [
    ('datset = "x"', ["unknown key 'datset'", "the top level"]),
    ('[source]\nurl = "x"\nallow_primry = true', ["allow_primry", "[source]"]),
    ("[export]\njob = 3", ["'job'", "[export]"]),
    ('[tables.t]\ncursor = "c"\ncursr = "x"', ["'cursr'", "[tables.t]"]),
])
def test_unknown_keys_are_errors(text, words):
    e = error_of(text)
    for w in words:
        assert w in e.message
    assert e.hint and "expected one of" in e.hint


@pytest.mark.parametrize("text, words", [
    ('[tables.t]\nmethod = "merge"\ncursor = "c"', ["method 'merge' is not known"]),
    ('[tables.t]\nmethod = "append"', ["needs a cursor column"]),
    ('[tables.t]\nmethod = "upsert"', ["needs a cursor column"]),
    ('[tables.t]\ncursor = "c"\ncursor_timezone = "Mars/Olympus"', ["not a known time zone"]),
    ('[tables.t]\ncursor = "c"\n[tables.t.columns]\nc = "public"\nx = "secret"',
     ["column x is classified 'secret'"]),
    ('[tables.t]\ncursor = "c"\n[tables.t.columns]\nc = "private"', ["cursor column c",
                                                                   "private"]),
    ('[tables.t]\ncursor = "c"\nkey = "id"', ["key must be an array"]),
    ('[tables.t]\ncursor = 3', ["cursor must be a str"]),
    ('[tables.t]\n[tables."public.t"]', ["public.t is configured twice"]),
    ("[export]\njobs = 0", ["jobs must be at least 1"]),
    ("[export]\njobs = true", ["jobs must be an integer"]),
    ("[export]\ncompression_level = 23", ["compression_level must be 1..22"]),
    ('[export]\nchunk_size = "lots"', ["invalid size", "chunk_size"]),
    ('[export]\nchunk_size = "0B"', ["chunk_size must be at least 1KiB"]),  # a file a row
    ('[export]\nretry_backoff = "soon"', ["invalid duration"]),
    ("[export]\nlookback_days = -1", ["lookback_days must be at least 0"]),
    ("[export]\nlookback_days = 100000", ["lookback_days must be at most 366"]),
    ("[retention]\nkeep_days = 0", ["keep_days must be at least 1"]),
    ("[retention]\nkeep_days = 99999999999", ["keep_days must be at most 36600"]),
    ('[source]\nallow_primary = "yes"', ["allow_primary must be a bool"]),
    ('strict = "yes"', ["strict must be a bool"]),
    ("[store]\nretries = -1", ["[store] retries must be at least 0"]),
    ("[store]\nretries = 21", ["[store] retries must be 0..20"]),
    ('[store]\nretries = "3"', ["[store] retries must be an integer"]),
    ('source = "postgresql://h/db"', ["[source] must be a table"]),
    ("export = 5", ["[export] must be a table"]),
    ("[tables]\nt = 1", ["[tables.t] must be a table"]),
    ("[source]\nurl = 5", ["[source] url must be a string"]),
    ("[store]\ns3_region = 5", ["[store] s3_region must be a string"]),
    ('[store]\ns3_endpoint_url = ["x"]', ["[store] s3_endpoint_url must be a string"]),
    ("[backup]\ncompression_level = 23", ["[backup] compression_level must be 1..22"]),
    ('dataset = ""', ["dataset must be 1 to 200 characters"]),  # index.json refuses it
    ('dataset = "a\\nb"', ["without control characters"]),
    (f'dataset = "{"d" * 201}"', ["dataset must be 1 to 200 characters"]),
    ("[store]\nretry_backoff = -1", ["[store] retry_backoff must be 0 to 60"]),
    ("[store]\nretry_backoff = nan", ["[store] retry_backoff must be 0 to 60"]),
    ('[store]\nretry_backoff = "2h"', ["[store] retry_backoff must be 0 to 60"]),
    # the command line's ranges (--jobs 1..64, --lock-days 1..36500): a lock of more days
    # was refused by the S3 store only once pg_dump had run (exit 5)
    ("[export]\njobs = 65", ["[export] jobs must be 1..64"]),
    ("[backup]\njobs = 65", ["[backup] jobs must be 1..64"]),
    ("[backup]\nlock_days = 36501", ["[backup] lock_days must be 1..36500"]),
    ("[backup]\nlock_days = 0", ["[backup] lock_days must be at least 1"]),
    # the export's pause before a retry is slept: a negative or endless one was exit 70 there
    ("[export]\nretry_backoff = -1", ["[export] retry_backoff must be 0 to 3600"]),
    ("[export]\nretry_backoff = nan", ["[export] retry_backoff must be 0 to 3600"]),
    ("[export]\nretry_backoff = inf", ["[export] retry_backoff must be 0 to 3600"]),
    ('[export]\nretry_backoff = "2h"', ["[export] retry_backoff must be 0 to 3600"]),
])
def test_invalid_values_are_errors(text, words):
    e = error_of(text)
    for w in words:
        assert w in e.message, e.message
    assert e.hint, e.message  # every error says what to do (docs/exit-codes.md)


def test_the_replicate_section_may_share_the_file():
    """`topoff replicate` reads the config's [replicate] section; export and backup read the
    same file, and check that section rather than refusing it as an unknown key."""
    section = ('[replicate]\ntarget = "r.duckdb"\n[replicate.sources.s]\nurl = "postgresql://h/d"\n'
               '[replicate.sources.s.tables.t]\nmethod = "snapshot"\n')
    assert parse(MINIMAL + section).table("public.events").cursor == "t"
    e = error_of(MINIMAL + section.replace("snapshot", "merge"))
    assert "unknown method 'merge'" in e.message and e.hint


def test_filter_lookback_and_key():
    c = parse('[tables.t]\ncursor = "c"\nfilter = "  "\nkey = ["a", "b"]\n'
              '[tables.u]\nfilter = "x > 1"\n[export]\nlookback_days = 0\n'
              'retry_backoff = "500ms"\nchunk_size = "16KiB"')
    assert c.tables[0].filter is None  # blank filter means none
    assert c.tables[0].key == ("a", "b")
    assert c.tables[1].filter == "x > 1"
    assert c.export.lookback_days == 0
    assert c.export.retry_backoff == 0.5
    assert c.export.chunk_bytes == 16 * 1024


def test_store_retries_reach_the_stores():
    from topoff.cli.options import store_for

    c = parse('[store]\nretries = 0\nretry_backoff = "250ms"')
    assert (c.store.retries, c.store.retry_backoff) == (0, 0.25)
    store = store_for("http://127.0.0.1:1/data", c)
    assert (store.options.retries, store.options.backoff) == (0, 0.25)
    assert parse("").store.retries == 5  # the default


def test_store_http_settings_reach_the_stores():
    """[store] http_timeout, http_min_rate, http_rate_window and http_answer_timeout
    (docs/stores.md; the hint of a timed-out read names http_timeout, that of a slow answer
    http_answer_timeout) are config keys, with StoreOptions' defaults."""
    from topoff.cli.options import store_for
    from topoff.stores import StoreOptions

    c = parse('[store]\nhttp_timeout = "90s"\nhttp_min_rate = 0\nhttp_rate_window = "2m"\n'
              'http_answer_timeout = "5m"')
    options = store_for("http://127.0.0.1:1/data", c).options
    assert (options.http_timeout, options.http_min_rate, options.http_rate_window,
            options.http_answer_timeout) == (90.0, 0, 120.0, 300.0)
    assert store_for("http://127.0.0.1:1/data",
                     parse("[store]\nhttp_answer_timeout = 0")).options.http_answer_timeout == 0
    default, given = StoreOptions(), store_for("http://127.0.0.1:1/data", parse("")).options
    assert (given.http_timeout, given.http_min_rate, given.http_rate_window,
            given.http_answer_timeout) == (default.http_timeout, default.http_min_rate,
                                           default.http_rate_window, default.http_answer_timeout)
    for bad, words in (("http_timeout = 0", "[store] http_timeout must be"),
                       ("http_timeout = nan", "[store] http_timeout must be"),
                       ('http_timeout = "2h"', "[store] http_timeout must be"),
                       ("http_min_rate = -1", "[store] http_min_rate must be at least 0"),
                       ('http_min_rate = "1k"', "[store] http_min_rate must be an integer"),
                       ("http_rate_window = 0", "[store] http_rate_window must be"),
                       ("http_answer_timeout = -1", "[store] http_answer_timeout must be"),
                       ('http_answer_timeout = "2h"', "[store] http_answer_timeout must be")):
        e = error_of(f"[store]\n{bad}")
        assert words in e.message and e.hint, (bad, e.message)


@pytest.mark.parametrize("value, expected", [
    ("256MiB", 256 * 1024**2), ("1GB", 1000**3), ("16 KiB", 16 * 1024), ("10", 10),
    (4096, 4096), ("1.5k", 1500), ("2tib", 2 * 1024**4),
])
def test_parse_size(value, expected):
    assert parse_size(value, "x") == expected


@pytest.mark.parametrize("value", ["", "MiB", "-1MiB", "1 PiB", "ten", "1e3"])
def test_parse_size_rejects(value):
    with pytest.raises(ConfigError, match="invalid size"):
        parse_size(value, "x")


@pytest.mark.parametrize("value, expected", [
    ("2s", 2.0), ("500ms", 0.5), ("1m", 60.0), ("1h", 3600.0), (3, 3.0), ("0.25", 0.25),
])
def test_parse_duration(value, expected):
    assert parse_duration(value, "x") == expected


def test_overrides_ignore_none():
    c = parse(MINIMAL)
    assert c.with_overrides(source_url=None, strict=None) == c
    c2 = c.with_overrides(source_url="postgresql://h/db", strict=True).with_export(jobs=7,
                                                                                 chunk_bytes=None)
    assert (c2.source_url, c2.strict, c2.export.jobs) == ("postgresql://h/db", True, 7)
    assert c2.export.chunk_bytes == c.export.chunk_bytes
    with pytest.raises(ConfigError, match=r"public\.nope is not in the configuration"):
        c.table("public.nope")


def test_load_config_file_and_environment(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text(MINIMAL + '[source]\nurl = "postgresql://file/db"\n')
    assert load_config(path, env={}).source_url == "postgresql://file/db"
    # TOPOFF_SOURCE_URL wins over the file; TOPOFF_CONFIG names the file
    c = load_config(None, env={"TOPOFF_CONFIG": str(path),
                               "TOPOFF_SOURCE_URL": "postgresql://env/db"})
    assert c.source_url == "postgresql://env/db"
    assert c.path == path and c.dataset == "d"
    assert load_config(None, env={}) == Config()


def test_load_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml", env={})
    assert "not found" in info.value.message and "--config" in (info.value.hint or "")
    bad = tmp_path / "bad.toml"
    bad.write_text("dataset = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_a_config_file_that_is_no_text_is_refused(tmp_path: Path):
    """A binary file (not UTF-8) or an endless one (/dev/zero) given as the config is exit 2
    with a hint: it was an internal error, or every byte read until memory ran out."""
    from support.cli import error_lines, run_cli

    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"dataset = 'd'\n\xd0\x00\xff" * 10)
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(binary, env={})
    for args in (["list", str(tmp_path), "--config", str(binary)],
                 ["replicate", "--config", str(binary), "--once"],
                 ["sync", str(tmp_path), f"iceberg:{binary}"]):
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result.stderr)
        error, _ = error_lines(result)
        assert "not UTF-8 text" in error, error
    with pytest.raises(ConfigError, match="larger than"):
        load_config("/dev/zero", env={})
    endless = run_cli("replicate", "--config", "/dev/zero", "--once")
    assert endless.exit_code == 2 and "larger than" in error_lines(endless)[0]
