"""Claims of docs/iceberg.md and docs/commands/iceberg-*.md, checked by running what
the pages show."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from support.cli import run_cli
from test_iceberg_sync import catalog_file, iceberg_table, standard  # noqa: F401
from topoff.sync import sync

pytest_plugins = ["support.replica_fixtures"]

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_duckdb_queries_and_catalog_the_page_shows(standard, tmp_path: Path) -> None:  # noqa: F811
    """iceberg.md "Querying the replica": the metadata file's path as shown, the SQL
    catalog's ``iceberg_tables`` with its ``metadata_location`` and the catalog name
    ``topoff``, and the offline DuckDB query over the data files pyiceberg lists."""
    import sqlite3

    import duckdb

    _, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    table = iceberg_table(target, "public.messages")
    warehouse = tmp_path / "warehouse"
    assert re.fullmatch(rf"(file://)?{warehouse}/replica/messages/metadata/"
                        r"\d{5}-[0-9a-f-]+\.metadata\.json", table.metadata_location), \
        table.metadata_location
    with sqlite3.connect(tmp_path / "catalog.db") as conn:
        rows = conn.execute("SELECT catalog_name, table_namespace, metadata_location "
                            "FROM iceberg_tables WHERE table_name = 'messages'").fetchall()
    assert rows == [("topoff", "replica", table.metadata_location)]
    files = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    count = duckdb.connect().execute(
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = false, "
        "union_by_name = true)", [files]).fetchone()
    assert count == (table.scan().to_arrow().num_rows,)


@pytest.mark.parametrize("option", [("--since", "2026-01-01"), ("--schema", "x"),
                                    ("--primary-keys",)])
def test_sync_options_an_iceberg_replica_refuses(standard, tmp_path: Path,  # noqa: F811
                                                 option: tuple[str, ...]) -> None:
    """iceberg.md: "`--since`, `--schema` and `--primary-keys` are refused (exit 2)"."""
    _, url = standard
    target = catalog_file(tmp_path)
    out = run_cli("sync", url, target, *option)
    assert out.exit_code == 2, out.stdout + out.stderr
    assert f"{option[0]} is not supported for an Iceberg replica" in out.stderr
    assert not (tmp_path / "warehouse").exists()


#: iceberg.md "Types", one PostgreSQL column per row of the table
PG_TYPES = {
    "bo": ("boolean", "true", "boolean"),
    "i2": ("smallint", "-32768", "int"), "i4": ("integer", "2147483647", "int"),
    "i8": ("bigint", "-9223372036854775808", "long"),
    "f4": ("real", "'NaN'", "float"), "f8": ("double precision", "'-Infinity'", "double"),
    "n38": ("numeric(38,2)", "'-" + "9" * 36 + ".99'", "decimal(38, 2)"),
    "n": ("numeric", "'NaN'", "string"), "n40": ("numeric(40,2)", "'1.50'", "string"),
    "nng": ("numeric(5,-2)", "12345", "string"), "nsp": ("numeric(2,5)", "0.00012", "string"),
    "oi": ("oid", "4294967295", "long"), "amd": ("integer[][]", "'{{1,2},{3,4}}'", "string"),
    "tz": ("timestamptz", "'2024-01-01 01:00:00.000001+01'", "timestamptz"),
    "ts": ("timestamp", "'9999-12-31 23:59:59.999999'", "timestamp"),
    "d": ("date", "'0001-01-01'", "date"), "by": ("bytea", "'\\x00ff'", "binary"),
    "ai2": ("smallint[]", "'{1,NULL}'", "list<int>"), "ai4": ("integer[]", "'{}'", "list<int>"),
    "ai8": ("bigint[]", "'{1}'", "list<long>"), "af4": ("real[]", "'{1.5}'", "list<float>"),
    "af8": ("double precision[]", "'{NaN}'", "list<double>"),
    "abo": ("boolean[]", "'{t,f}'", "list<boolean>"),
    "atx": ("text[]", "'{a,\"b,c\"}'", "list<string>"), "aen": ("mood[]", "'{ok}'", "list<string>"),
    "anu": ("numeric[]", "'{1.50}'", "list<string>"),
    "js": ("json", "'{\"a\": 1}'", "string"), "jb": ("jsonb", "'{\"a\": 1}'", "string"),
    "tx": ("text", "''", "string"), "en": ("mood", "'ok'", "string"),
    "uu": ("uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "string"),
    "tm": ("time", "'24:00:00'", "string"), "ttz": ("timetz", "'10:00:00+15:59'", "string"),
    "iv": ("interval", "'1 mon'", "string"), "bi": ("bit(3)", "'101'", "string"),
    "ip": ("inet", "'10.0.0.1'", "string"),
}


def test_every_row_of_the_iceberg_type_table(db, tmp_path: Path) -> None:
    """iceberg.md "Types": each kind of column becomes the Iceberg type the table names,
    and the value lands (strings as PostgreSQL's text, lists as lists)."""
    from support.pg import make_config
    from support.replica import publish_full
    from test_iceberg_sync import iceberg_rows
    from topoff.verify import verify

    db.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
    db.execute("CREATE TABLE one (id int PRIMARY KEY, "
               + ", ".join(f"{n} {t}" for n, (t, _v, _i) in PG_TYPES.items()) + ")")
    db.execute(f"INSERT INTO one (id, {', '.join(PG_TYPES)}) VALUES (1, "
               + ", ".join(v for _t, v, _i in PG_TYPES.values()) + "), "
               f"(2, {', '.join('NULL' for _ in PG_TYPES)})")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, 'dataset = "t"\n[tables.one]\nmethod = "snapshot"\n'), url)
    target = catalog_file(tmp_path)
    out = run_cli("sync", url, target)
    assert out.exit_code == 0, out.stdout + out.stderr
    table = iceberg_table(target, "public.one")
    types = {f.name: str(f.field_type).replace("list<", "list<").lower()
             for f in table.schema().fields}
    assert {n: types[n] for n in PG_TYPES} == {n: i for n, (_t, _v, i) in PG_TYPES.items()}
    assert all(f.optional for f in table.schema().fields)  # every column is optional
    [full, empty] = [dict(zip(["id", *PG_TYPES], r, strict=True))
                     for r in sorted(iceberg_rows(target, "public.one"),
                                     key=lambda r: r[0])]
    assert set(empty.values()) == {2, None}
    assert (full["n"], full["n40"], full["tm"], full["ttz"], full["iv"], full["bi"]) == \
        ("NaN", "1.50", "24:00:00", "10:00:00+15:59", "1 mon", "101")
    assert (full["nng"], full["nsp"], full["oi"], full["amd"]) == \
        ("12300", "0.00012", 4294967295, "{{1,2},{3,4}}")
    assert full["by"] == b"\x00\xff" and full["atx"] == ["a", "b,c"]
    assert full["aen"] == ["ok"] and full["anu"] == ["1.50"] and full["ai2"] == [1, None]
    assert verify(target, db.standby_url).equal


def _page_lines(page: str) -> list[re.Pattern[str]]:
    """The output lines a command page's examples show, numbers left open."""
    text = (DOCS / "commands" / page).read_text().split("## Examples", 1)[1]
    lines = [ln for block in text.split("```console\n")[1:] for ln in
             block.split("```", 1)[0].splitlines()
             if ln and not ln.startswith(("$ ", "error:", "hint:", "(exit"))]
    patterns = [re.sub(r"\d+(\\\.\d+)?", r"\\d+(\\.\\d+)?", re.escape(ln.split(": ", 1)[1]))
                for ln in lines]
    return [re.compile(r"public\.\w+: " + p.replace("\\ ", " ")) for p in patterns]


def _shown(page: str, stdout: str) -> None:
    patterns = _page_lines(page)
    for line in stdout.splitlines():
        assert any(p.fullmatch(line) for p in patterns), (page, line)


def test_the_maintenance_commands_print_as_their_pages_show(standard, tmp_path: Path,  # noqa: F811
                                                            monkeypatch) -> None:
    """iceberg-compact.md, iceberg-expire.md, iceberg-remove-orphans.md: every line the
    commands print is of a form their examples show."""
    from topoff.sync import iceberg_apply

    monkeypatch.setattr(iceberg_apply, "WRITE_BYTES", 1)  # small files to compact
    _, url = standard
    target = catalog_file(tmp_path)
    assert run_cli("sync", url, target).exit_code == 0
    runs = [("iceberg-compact.md", ("compact", "--table", "messages", "--dry-run")),
            ("iceberg-compact.md", ("compact", "--table", "messages",
                                    "--target-file-size", "64MB")),
            ("iceberg-compact.md", ("compact", "--table", "messages")),
            ("iceberg-expire.md", ("expire", "--older-than", "0s", "--dry-run")),
            ("iceberg-expire.md", ("expire", "--older-than", "0s")),
            ("iceberg-remove-orphans.md", ("remove-orphans", "--dry-run")),
            ("iceberg-remove-orphans.md", ("remove-orphans", "--older-than", "3d"))]
    outs = []
    for page, args in runs:
        out = run_cli("iceberg", args[0], target, *args[1:])
        assert out.exit_code == 0, out.stdout + out.stderr
        _shown(page, out.stdout)
        outs.append(out.stdout)
    assert "would rewrite" in outs[0] and "rewrote" in outs[1] and "nothing to merge" in outs[2]


def test_compact_of_a_table_in_a_catalog_without_tables_says_there_are_none(
        tmp_path: Path) -> None:
    """iceberg-compact.md: an unknown --table is exit 2, its hint names the tables there;
    a catalog that holds none says so (the hint was "tables here: ", naming nothing)."""
    target = catalog_file(tmp_path)
    out = run_cli("iceberg", "compact", target, "--table", "public.nope")
    assert out.exit_code == 2, out.stdout + out.stderr
    hint = [ln for ln in out.stderr.splitlines() if ln.startswith("hint: ")]
    assert hint == ["hint: no table topoff made is here: build one with `topoff sync` or "
                    "`topoff replicate`"], out.stderr


def test_the_ledger_properties_and_summaries_the_page_names(standard, tmp_path: Path  # noqa: F811
                                                            ) -> None:
    """iceberg.md "What one commit holds": the table properties and snapshot summary keys
    of the ledger, `topoff.step` `ready` once built; `topoff.revision` in a partition's
    snapshots only (the page named it for every snapshot: a full export has none)."""
    _, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    table = iceberg_table(target, "public.messages")
    props = {k for k in table.properties if k.startswith("topoff.")}
    assert props >= {"topoff.dataset", "topoff.origin", "topoff.base", "topoff.sequence",
                     "topoff.publication", "topoff.step", "topoff.definition"}, props
    assert table.properties["topoff.step"] == "ready"
    for snap in table.metadata.snapshots:
        keys = {k for k in snap.summary.additional_properties if k.startswith("topoff.")}
        partition = not snap.summary["topoff.publication"].startswith("full/")
        assert keys == {"topoff.dataset", "topoff.publication", "topoff.sequence",
                        "topoff.step", "topoff.manifest-sha256"} | (
                            {"topoff.revision"} if partition else set()), keys
    assert any("topoff.revision" in s.summary.additional_properties
               for s in table.metadata.snapshots)
    assert "topoff.revision" in (DOCS / "iceberg.md").read_text().split(
        "into the summary of each snapshot it adds", 1)[0].rsplit("writes", 1)[1]
    assert "a partition's snapshots only" in " ".join((DOCS / "iceberg.md").read_text().split())


def test_tables_with_a_time_cursor_are_partitioned_by_its_day(standard, tmp_path: Path  # noqa: F811
                                                              ) -> None:
    """iceberg.md "Full export": partitioned by `day(cursor)` for tables with a date or
    timestamp cursor; the others are not partitioned."""
    _, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    messages = iceberg_table(target, "public.messages")
    [field] = messages.spec().fields
    assert str(field.transform) == "day"
    assert messages.schema().find_field(field.source_id).name == "timestamp"
    assert not iceberg_table(target, "public.users").spec().fields


def test_iceberg_verify_leaves_out_a_column_named_like_another_but_for_case(
        db, tmp_path: Path) -> None:
    """iceberg.md "Verify": a column whose name differs from an earlier one's only in the
    case of its letters is left out, with a `note:`; the others are compared."""
    from support.pg import make_config
    from support.replica import publish_full

    db.execute('CREATE TABLE twins (id int PRIMARY KEY, "A" text, a text, v int);'
               "INSERT INTO twins SELECT g, 'x' || g, 'y' || g, g FROM generate_series(1, 9) g")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, 'dataset = "t"\n[tables.twins]\nmethod = "snapshot"\n'), url)
    target = catalog_file(tmp_path)
    sync(url, target)
    out = run_cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 0, out.stdout + out.stderr
    assert any(ln.startswith("note:") and "twins.a" in ln for ln in
               (out.stdout + out.stderr).splitlines()), out.stdout + out.stderr
    db.execute("UPDATE twins SET v = -1 WHERE id = 3")
    db.sync()
    assert run_cli("verify", target, "--against", db.standby_url).exit_code == 1


@pytest.mark.slow
def test_a_sql_catalog_in_postgresql(standard, tmp_path: Path) -> None:  # noqa: F811
    """iceberg.md: `uri = "postgresql+psycopg://..."` keeps the SQL catalog in PostgreSQL
    (the one to share between machines): sync, status, verify and the maintenance
    commands work on it, and its password shows in no output."""
    from urllib.parse import urlsplit

    db, url = standard
    # the catalog in the source's primary database: a database the user may write
    parts = urlsplit(db.primary_url)
    uri = f"postgresql+psycopg://{parts.netloc}{parts.path}"
    path = tmp_path / "catalog.toml"
    path.write_text(f'uri = "{uri}"\nwarehouse = "warehouse"\nnamespace = "lake"\n')
    target = f"iceberg:{path}"
    outs = [run_cli("sync", url, target), run_cli("status", target),
            run_cli("verify", target, "--against", db.standby_url),
            run_cli("iceberg", "compact", target),
            run_cli("iceberg", "expire", target, "--older-than", "0s"),
            run_cli("iceberg", "remove-orphans", target)]
    for out in outs:
        assert out.exit_code == 0, out.stdout + out.stderr
        if parts.password:
            assert parts.password not in out.stdout + out.stderr
    assert iceberg_table(target, "public.messages").scan().to_arrow().num_rows > 0


def test_a_bc_date_is_refused_with_the_lines_the_page_shows(db, tmp_path: Path) -> None:
    """iceberg.md "Types": the error and hint of a BC date in a date column, as shown."""
    from support.pg import make_config
    from support.replica import publish_full

    db.execute("CREATE TABLE edges (id integer PRIMARY KEY, d date)")
    db.execute("INSERT INTO edges VALUES (1, NULL), (2, '0044-03-15 BC')")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, 'dataset = "t"\n[tables.edges]\nmethod = "snapshot"\n'), url)
    out = run_cli("sync", url, catalog_file(tmp_path))
    assert out.exit_code == 7, out.stdout + out.stderr
    page = (DOCS / "iceberg.md").read_text()
    shown = page.split("commits nothing of that publication", 1)[1].split("```\n", 1)[1] \
        .split("```", 1)[0]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith(("error:", "hint:"))]
    assert [re.sub(r"full/\S+Z/", "full/T/", ln) for ln in lines] == \
        [re.sub(r"full/\S+Z/", "full/T/", ln) for ln in shown.splitlines()]


def _half_applied(db: Any, url: str, target: str) -> tuple[Path, bytes]:
    """A sync of a new day that applied it to public.messages, then stopped at a damaged
    file of public.users_messages (exit 6); the damaged file and its bytes."""
    from support.replica import add_messages, day, nommer_config, publish_day
    from test_iceberg_sync import CHUNK

    assert run_cli("sync", url, target).exit_code == 0
    add_messages(db, day(1), 30)
    publish_day(nommer_config(db, chunk_bytes=CHUNK), url, day(1))
    [victim] = [f for f in Path(url).rglob("public.users_messages.*.csv.zst")
                if str(day(1)) in f.name]
    good = victim.read_bytes()
    victim.write_bytes(good[:-5] + bytes([good[-5] ^ 0xFF]) + good[-4:])
    return victim, good


def test_status_of_an_iceberg_replica_a_sync_left_half_way(standard, tmp_path: Path  # noqa: F811
                                                           ) -> None:
    """iceberg.md: `topoff status` reads the tables' ledgers, the replica's sequence the
    smallest of its tables'; the publication it says was last applied is that one (it named
    the newest table's, one publication ahead of the number it printed, and listed that
    publication as pending too)."""
    from support.replica import day

    db, url = standard
    target = catalog_file(tmp_path)
    victim, good = _half_applied(db, url, target)
    assert run_cli("sync", url, target).exit_code == 6
    assert iceberg_table(target, "public.messages").properties["topoff.sequence"] == "4"
    out = run_cli("status", target, "--json")
    assert out.exit_code == 0, out.stdout + out.stderr
    [state] = json.loads(out.stdout)
    assert (state["last_sequence"], state["last_applied"]) == (
        3, f"incremental/{day(2)}/r1"), state
    assert [p["id"] if isinstance(p, dict) else p for p in state["pending"]] == [
        f"incremental/{day(1)}/r1"], state
    victim.write_bytes(good)
    assert run_cli("sync", url, target).exit_code == 0
    [state] = json.loads(run_cli("status", target, "--json").stdout)
    assert (state["last_sequence"], state["last_applied"], state["pending"]) == (
        4, f"incremental/{day(1)}/r1", []), state


@pytest.mark.slow
def test_a_damaged_file_after_a_table_committed_does_not_say_nothing_was_applied(
        standard, tmp_path: Path) -> None:  # noqa: F811
    """iceberg.md: a damaged file stops the sync with exit 6 "and nothing of its commit is
    applied"; a publication is one commit per table, so the error says that of its commit
    (it said "nothing was applied" after the sync had applied the publication to
    public.messages, as its log line said)."""
    db, url = standard
    target = catalog_file(tmp_path)
    _half_applied(db, url, target)
    out = run_cli("sync", url, target)
    assert out.exit_code == 6, out.stdout + out.stderr
    assert "applied incremental/" in out.stderr  # public.messages' commit
    [error] = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert "nothing was applied" not in error, error
    assert error.endswith("does not match the size and sha256 in its manifest; nothing of "
                          "the commit that reads it was applied"), error


def test_verify_of_an_iceberg_replica_a_sync_left_half_way_is_equal(standard, tmp_path: Path  # noqa: F811
                                                                    ) -> None:
    """iceberg.md "Verify": days after the newest window the tables have applied are "not
    yet published"; a sync stopped between two tables' commits leaves tables one
    publication apart, each compared up to its own (the tables behind were reported
    different by the rows of the day they had not applied yet, exit 1)."""
    db, url = standard
    target = catalog_file(tmp_path)
    _half_applied(db, url, target)
    assert run_cli("sync", url, target).exit_code == 6
    out = run_cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 0, out.stdout + out.stderr
    db.execute("DELETE FROM users_messages WHERE msg_id = (SELECT min(msg_id) FROM "
               "users_messages)")
    db.sync()
    out = run_cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 1, out.stdout + out.stderr  # a day it applied still differs


def test_a_warehouse_that_cannot_be_made_is_not_called_a_race(standard, tmp_path: Path  # noqa: F811
                                                              ) -> None:
    """iceberg.md: a commit refused because another writer changed the table is "run the
    sync again"; a warehouse directory that cannot be made is the warehouse's failure, exit
    7, "fix the warehouse" (it said another writer changed or made a table)."""
    _, url = standard
    path = tmp_path / "catalog.toml"
    path.write_text('uri = "sqlite:///c.db"\nwarehouse = "/proc/topoff-nowhere/w"\n')
    out = run_cli("sync", url, f"iceberg:{path}")
    assert out.exit_code == 7, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    error = next(ln for ln in lines if ln.startswith("error: "))
    assert "another writer" not in error and "failed" in error, error
    assert lines[lines.index(error) + 1].startswith("hint: fix the warehouse"), lines


def test_the_error_examples_of_the_maintenance_pages(standard, tmp_path: Path) -> None:  # noqa: F811
    """iceberg-expire.md, iceberg-compact.md, iceberg-remove-orphans.md: each error example
    prints the lines shown, exit 2."""
    _, url = standard
    target = catalog_file(tmp_path)
    assert run_cli("sync", url, target).exit_code == 0
    shown = "iceberg:/srv/lake/catalog.toml"
    for page in ("iceberg-expire.md", "iceberg-compact.md", "iceberg-remove-orphans.md"):
        text = (DOCS / "commands" / page).read_text().split("## Examples", 1)[1]
        block = "$ topoff" + text.rsplit("\n$ topoff", 1)[1].split("```", 1)[0]
        command, *lines = block.splitlines()
        args = command.removeprefix("$ topoff ").split()
        args = [str(tmp_path / a) if a == "replica.duckdb" else target if a == shown else a
                for a in args]
        out = run_cli(*args)
        assert lines[-1] == "(exit status 2)" and out.exit_code == 2, (page, args, out.output)
        got = [ln.replace(target, shown).replace(str(tmp_path / "replica.duckdb"),
                                                 "replica.duckdb")
               for ln in out.stderr.splitlines()]
        assert got == lines[:-1], page
