"""The catalog file of ``iceberg:PATH`` is validated like any configuration (exit 2, one
line and a hint, no secret printed), and the CSV text of each column type becomes the
documented Iceberg value."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from support.replica import cli
from topoff.dataset.logical import from_pg_type
from topoff.dataset.manifest import Column
from topoff.errors import ConfigError
from topoff.targets.iceberg.capabilities import ICEBERG
from topoff.targets.iceberg.config import read_settings
from topoff.targets.iceberg.types import ValueError_, convert, iceberg_type, parse_pg_array

SECRET = "hunter2-secret"


@pytest.mark.parametrize(("text", "says"), [
    ('uri = "sqlite:///c.db"\n', "'warehouse' is missing"),
    ('uri = "sqlite:///c.db"\nwarehouse = "w"\ncolour = "red"\n', "unknown key 'colour'"),
    ('type = "hive"\nuri = "x"\nwarehouse = "w"\n', "'type' must be"),
    (f'uri = "mysql://u:{SECRET}@h/d"\nwarehouse = "w"\n', "'uri' of a sql catalog"),
    ('uri = "sqlite:///c.db"\nwarehouse = "ftp://x/y"\n', "'warehouse' must be"),
    ('uri = "sqlite:///c.db"\nwarehouse = "w"\nnamespace = "../x"\n', "'namespace'"),
    ('uri = "sqlite:///c.db"\nwarehouse = 3\n', "'warehouse' must be a non-empty string"),
    (f'uri = "sqlite:///c.db"\nwarehouse = "s3://b/p"\n[s3]\nsecret = "{SECRET}"\n',
     "unknown key 's3.secret'"),
    (f'uri = "sqlite:///c.db"\nwarehouse = "w"\nx = "{SECRET}', "not valid TOML"),
])
def test_a_bad_catalog_file_is_refused(tmp_path: Path, text: str, says: str):
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says) as e:
        read_settings(f"iceberg:{path}")
    assert SECRET not in e.value.message and SECRET not in (e.value.hint or "")

    result = cli("sync", str(tmp_path / "nowhere"), f"iceberg:{path}")
    assert result.exit_code == 2, result.stderr
    assert SECRET not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and says.split("'")[0] in lines[0]
    assert lines[1].startswith("hint: ")


def test_a_missing_catalog_file_is_refused(tmp_path: Path):
    result = cli("status", f"iceberg:{tmp_path}/none.toml")
    assert result.exit_code == 2
    assert "no such catalog file" in result.stderr


def test_a_relative_warehouse_is_next_to_the_file(tmp_path: Path):
    path = tmp_path / "catalog.toml"
    path.write_text('uri = "sqlite:///c.db"\nwarehouse = "wh"\n[s3]\nregion = "x"\n')
    s = read_settings(f"iceberg:{path}")
    assert s.warehouse == str(tmp_path / "wh") and s.namespace == "topoff"
    assert SECRET not in repr(s)


@pytest.mark.parametrize(("uri", "expect"), [
    ("sqlite:///c.db", "sqlite:///{d}/c.db"),
    ("sqlite:///sub/../c.db", "sqlite:///{d}/c.db"),
    ("sqlite:////abs/c.db", "sqlite:////abs/c.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("postgresql+psycopg://u@127.0.0.1/cat", "postgresql+psycopg://u@127.0.0.1/cat"),
])
def test_a_relative_sqlite_catalog_is_next_to_the_file(tmp_path: Path, uri: str, expect: str):
    path = tmp_path / "catalog.toml"
    path.write_text(f'uri = "{uri}"\nwarehouse = "wh"\n')
    assert read_settings(f"iceberg:{path}").uri == expect.format(d=tmp_path)


def test_the_cli_does_not_import_pyiceberg():
    code = ("import sys; from topoff.cli import cli; from topoff import sync, status, verify; "
            "assert 'iceberg' in cli.commands; "
            "print(any(m.startswith(('pyiceberg', 'pyarrow')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent / "src")
    assert out.stdout.strip() == "False"


def col(pg: str) -> Column:
    return Column("c", pg, logical=from_pg_type(pg))


@pytest.mark.parametrize(("pg", "texts", "want"), [
    ("boolean", ["t", "f", None], [True, False, None]),
    ("bigint", ["-9223372036854775808", None], [-9223372036854775808, None]),
    ("double precision", ["NaN", "-Infinity", "1.5"], [None, float("-inf"), 1.5]),
    ("numeric(38,2)", ["12345678901234567890123456789012345.67"],
     [Decimal("12345678901234567890123456789012345.67")]),
    ("numeric", ["1e-400", "NaN"], ["1e-400", "NaN"]),
    ("numeric(40,2)", ["1.00"], ["1.00"]),
    ("timestamp with time zone", ["2026-11-20 12:34:56.123456+00"],
     [datetime(2026, 11, 20, 12, 34, 56, 123456, tzinfo=UTC)]),
    ("timestamp without time zone", ["2026-11-20 00:00:00"], [datetime(2026, 11, 20)]),
    ("date", ["2026-01-02"], [date(2026, 1, 2)]),
    ("bytea", ["\\x00ff", "\\x", None], [b"\x00\xff", b"", None]),
    ("jsonb", ['{"a": [1]}'], ['{"a": [1]}']),
    ("uuid", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"], ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),
    ("integer[]", ["{1,NULL,-3}", "{}", None], [[1, None, -3], [], None]),
    ("text[]", ['{a,"b c","x\\\\y","NULL",NULL}'], [["a", "b c", "x\\y", "NULL", None]]),
    ("interval", ["1 day 02:00:00"], ["1 day 02:00:00"]),
])
def test_csv_text_becomes_the_documented_value(pg, texts, want):
    t = iceberg_type(col(pg))
    got = convert(pa.array(texts, pa.string()), t).to_pylist()
    if pg == "double precision":
        assert got[0] != got[0] and got[1:] == want[1:]  # NaN
    else:
        assert got == want


@pytest.mark.parametrize(("pg", "text"), [
    ("boolean", "yes"), ("bytea", "00ff"), ("date", "0044-03-15 BC"),
    ("timestamp without time zone", "infinity"), ("numeric(10,2)", "NaN"),
    ("integer[]", "{{1,2},{3,4}}"), ("integer[]", "[0:1]={1,2}"), ("integer", "1.5"),
])
def test_a_value_the_type_cannot_hold_is_refused(pg, text):
    with pytest.raises(ValueError_):
        convert(pa.array([text], pa.string()), iceberg_type(col(pg)))


def test_parse_pg_array_edges():
    assert parse_pg_array('{"",""}') == ["", ""]
    assert parse_pg_array('{"a\\"b"}') == ['a"b']
    with pytest.raises(ValueError_):
        parse_pg_array('{"open')
    assert parse_pg_array("{ 1 , 2 }") == ["1", "2"]  # array_in's white space


@pytest.mark.parametrize("text", ["{a,,b}", "{,}", "{a,}", "{,a}"])
def test_an_array_with_an_empty_unquoted_element_is_refused(text):
    """PostgreSQL refuses them (an empty string is quoted: ``{""}``); one was read as an
    empty string."""
    with pytest.raises(ValueError_):
        parse_pg_array(text)


def test_the_docs_print_the_declared_capabilities():
    from topoff.targets.base import capability_table

    page = (Path(__file__).parent.parent / "docs" / "iceberg.md").read_text()
    assert capability_table([ICEBERG]) in page


def test_verify_of_an_iceberg_catalog_without_a_replica_is_exit_7(tmp_path: Path):
    path = tmp_path / "catalog.toml"
    path.write_text('uri = "sqlite:///c.db"\nwarehouse = "w"\n')
    result = cli("verify", f"iceberg:{path}", "--against", "postgresql://127.0.0.1:1/x")
    assert result.exit_code == 7, result.stderr
    assert "holds no topoff replica" in result.stderr and "hint: " in result.stderr


@pytest.mark.parametrize("name", ["../x", "a/b", "a.b", "", "x" * 200, "naïve", "a b"])
def test_a_table_name_iceberg_cannot_take_is_refused(name: str):
    from topoff.dataset.manifest import TableEntry
    from topoff.errors import TargetError
    from topoff.targets.iceberg.table import table_name

    with pytest.raises(TargetError, match="does not take"):
        table_name(TableEntry("public", name, "snapshot", [], []))
    if name:
        with pytest.raises(TargetError, match="does not take"):
            table_name(TableEntry(name, "t", "snapshot", [], []))


def test_a_data_file_is_read_in_bounded_batches(tmp_path: Path, monkeypatch):
    """A file far larger than a batch is converted batch by batch, never whole."""
    import zstandard

    from topoff.targets.iceberg import rows
    from topoff.targets.iceberg.table import schema_of

    monkeypatch.setattr(rows, "BLOCK", 64 * 1024)
    columns = [col("bigint"), Column("t", "text", logical=from_pg_type("text")),
               Column("b", "bytea", logical=from_pg_type("bytea"))]
    columns[0] = Column("id", "bigint", logical=from_pg_type("bigint"))
    lines = ["id,t,b"] + [f'{n},"line {n}\nwith ""quotes"", a comma",\\x{n:08x}'
                         for n in range(40_000)]
    path = tmp_path / "f.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress("\n".join(lines).encode() + b"\n"))
    seen, total, last = 0, 0, None
    for batch in rows.batches(path, "f", columns, schema_of(columns)):
        seen += 1
        total += batch.num_rows
        assert batch.nbytes < 1 << 20
        last = batch.slice(batch.num_rows - 1).to_pylist()[0]
    assert seen > 10 and total == 40_000
    assert last == {"id": 39_999, "t": 'line 39999\nwith "quotes", a comma',
                    "b": (39_999).to_bytes(4, "big")}


def test_a_header_that_is_not_the_manifest_s_is_refused(tmp_path: Path):
    import zstandard

    from topoff.errors import IntegrityError
    from topoff.targets.iceberg.rows import batches
    from topoff.targets.iceberg.table import schema_of

    columns = [Column("id", "bigint", logical=from_pg_type("bigint"))]
    path = tmp_path / "f.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"other\n1\n"))
    with pytest.raises(IntegrityError, match="header"):
        list(batches(path, "f", columns, schema_of(columns)))


def test_null_and_the_empty_string_stay_apart(tmp_path: Path):
    import zstandard

    from topoff.targets.iceberg.rows import batches
    from topoff.targets.iceberg.table import schema_of

    columns = [Column("a", "text", logical=from_pg_type("text")),
               Column("b", "text", logical=from_pg_type("text"))]
    path = tmp_path / "f.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b'a,b\n"",\n,""\n"\\.",x\n'))
    [batch] = list(batches(path, "f", columns, schema_of(columns)))
    assert batch.to_pylist() == [{"a": "", "b": None}, {"a": None, "b": ""},
                                 {"a": "\\.", "b": "x"}]


def test_the_day_partition_does_not_take_a_column_s_name():
    from topoff.dataset.manifest import TableEntry
    from topoff.targets.iceberg.table import partition_spec, schema_of

    cols = [Column("ts", "timestamp with time zone",
                   logical=from_pg_type("timestamp with time zone")),
            Column("ts_day", "text", logical=from_pg_type("text")),
            Column("ts_day_", "text", logical=from_pg_type("text"))]
    entry = TableEntry("public", "t", "append", cols, [], cursor="ts",
                       cursor_type="timestamp with time zone")
    spec = partition_spec(entry, schema_of(cols))
    assert [f.name for f in spec.fields] == ["ts_day__"]
    assert partition_spec(TableEntry("public", "t", "snapshot", cols, []),
                          schema_of(cols)).fields == ()


def test_a_sql_catalog_made_by_two_processes_at_once(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The first runs on a new SQL catalog file create its tables at the same moment: the
    one that loses (sqlite: "table ... already exists") opens the catalog all the same."""
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy.exc import OperationalError

    from topoff.targets.iceberg.config import open_catalog, read_settings

    path = tmp_path / "catalog.toml"
    path.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/c.db"\n'
                    'warehouse = "warehouse"\nnamespace = "ns"\n')
    real, calls = SqlCatalog.__init__, []

    def raced(self: object, *args: object, **kwargs: object) -> None:
        calls.append(1)
        real(self, *args, **kwargs)  # type: ignore[arg-type]
        if len(calls) == 1:  # the other process created the tables first
            raise OperationalError("CREATE TABLE iceberg_tables", {},
                                   Exception("table iceberg_tables already exists"))

    monkeypatch.setattr(SqlCatalog, "__init__", raced)
    catalog = open_catalog(read_settings(f"iceberg:{path}"))
    assert catalog.namespace_exists("ns")


def test_a_sync_does_not_import_the_export_modules():
    """``topoff sync`` into Iceberg loads the modules it runs, not the export pipeline's
    (the output helpers it shares with ``topoff export`` loaded them for their types)."""
    code = ("import sys, click; from topoff.cli import cli; "
            "assert cli.get_command(click.Context(cli), 'sync') is not None; "
            "import topoff.sync.iceberg; "
            "print(sorted(m for m in sys.modules if m.startswith(('topoff.export.full', "
            "'topoff.export.runner', 'topoff.sources', 'topoff.dataset.retention', "
            "'topoff.dataset.roots', 'topoff.dataset.publish'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent / "src")
    assert out.stdout.strip() == "[]"
