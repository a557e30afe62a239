"""Hostile datasets: a consumer reads, writes and deletes nothing outside its cache and
target, runs no SQL a dataset's text smuggles in, and spends bounded memory and disk.

Each test starts from a real published dataset (a full export and one day) and changes it
the way an attacker controlling the server could, keeping sizes and sha256s consistent so
that only the checks of the fields themselves can refuse it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from support.dataset import (
    compress,
    decompress,
    files_under,
    index_ids,
    replace_data_file,
    rewrite_index,
    rewrite_manifest,
)
from support.hostile_http import HostileServer, endless, redirect
from support.pg import Database, make_config
from support.replica import Replicas, connect_pg, day, query
from topoff.dataset import checks
from topoff.dataset.index import Index, Publication, read_index, read_manifest
from topoff.dataset.layout import Window, manifest_name
from topoff.demo.cluster import ThrowawayCluster
from topoff.errors import IntegrityError, StoreError, TopoffError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.stores import StoreOptions, open_store
from topoff.sync import SyncOptions, sync
from topoff.sync.plan import plan_sync
from topoff.targets.base import ReplicaState

SCHEMA = """
CREATE TABLE things (id integer PRIMARY KEY, note text, tag text, at timestamptz NOT NULL);
CREATE TABLE victim (id integer PRIMARY KEY);
"""
CONFIG = """
dataset = "hostile"

[tables.things]
method = "append"
cursor = "at"
"""
FULL = "public.things"
FAST = StoreOptions(retries=1, backoff=0.01, http_timeout=10)


@pytest.fixture(scope="module")
def base_dataset(cluster: ThrowawayCluster, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Path, list[str]]]:
    """A real dataset, published once for the module: (directory, publication ids)."""
    name = f"hostile{os.getpid()}"
    cluster.create_database(name)
    db = Database(name, cluster)
    try:
        db.execute(SCHEMA)
        for d, n in ((day(2), 5), (day(1), 3)):
            db.execute("INSERT INTO things SELECT g + %s, E'line one\\nsaid \"hi\", ok', "
                       "CASE WHEN g %% 2 = 0 THEN 'x' ELSE 'y' END, "
                       "%s::timestamptz + g * interval '1 minute' FROM generate_series(1, %s) g",
                       [100 * d.day, f"{d.isoformat()} 01:00+00", n])
        directory = tmp_path_factory.mktemp("hostile") / "published"
        config = make_config(db, CONFIG)
        with open_store(str(directory)) as store:
            ids = [p.id for p in export_full(config, store).publications]
            db.execute("INSERT INTO things VALUES (999, 'late', 'x', %s)",
                       [f"{day(1).isoformat()} 05:00+00"])
            ids += [p.id for p in export_incremental(config, store,
                                                     Window.day(day(1))).publications]
        yield directory, ids
    finally:
        cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def dataset(base_dataset: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, str, str]:
    """A fresh copy of the dataset: (directory, full export id, partition id)."""
    directory = tmp_path / "published"
    shutil.copytree(base_dataset[0], directory)
    ids = base_dataset[1]
    return directory, ids[0], next(i for i in reversed(ids) if day(1).isoformat() in i)


def read_everything(directory: Path) -> None:
    with open_store(str(directory)) as store:
        index = read_index(store)
        assert index is not None
        for p in index.publications:
            read_manifest(store, p)


def table(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["tables"][FULL]


def file0(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["tables"][FULL]["files"][0]


def column(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in table(doc)["columns"] if c["name"] == name)


# -- every field is checked when the manifest is read --------------------------------------

MANIFEST_EDITS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "sha256 climbing out of the cache": lambda d: file0(d).update(sha256="../../x/y"),
    "sha256 in capitals": lambda d: file0(d).update(sha256=file0(d)["sha256"].upper()),
    "path with ..": lambda d: file0(d).update(path="../../../etc/passwd"),
    "absolute path": lambda d: file0(d).update(path="/etc/passwd"),
    "backslash": lambda d: file0(d).update(path="data\\public.things.00001.csv.zst"),
    "NUL in path": lambda d: file0(d).update(path="data/public.things.00001.csv.zst\x00x"),
    "glob in path": lambda d: file0(d).update(path="data/public.*.00001.csv.zst"),
    "not a data file": lambda d: file0(d).update(path="schema/pre-data.sql"),
    "schema file elsewhere": lambda d: d["schema_files"]["pre_data"].update(path="../x.sql"),
    "unknown schema file": lambda d: d["schema_files"].update(
        evil=dict(d["schema_files"]["pre_data"])),
    "negative bytes": lambda d: file0(d).update(bytes=-1),
    "bytes as a boolean": lambda d: file0(d).update(bytes=True),
    "rows as text": lambda d: file0(d).update(rows="5"),
    "no rows": lambda d: file0(d).pop("rows"),
    "unknown method": lambda d: table(d).update(method="merge"),
    "unknown kind": lambda d: d.update(kind="partial"),
    "kind against its id": lambda d: d.update(kind="incremental"),
    "another publication's id": lambda d: d.update(publication="full/2020-01-01T000000Z"),
    "foreign key in a type": lambda d: column(d, "tag").update(
        type="integer references public.victim"),
    "cascade in a type": lambda d: column(d, "tag").update(
        type="integer references public.victim on delete cascade"),
    "default in a type": lambda d: column(d, "tag").update(type="text default 'x'"),
    "statement in a type": lambda d: column(d, "tag").update(type="text); DROP TABLE victim; --"),
    "array of a smuggled type": lambda d: column(d, "tag").update(type="text collate \"C\"[]"),
    "enum labels on a built-in type": lambda d: column(d, "tag").update(enum=["x", "y"]),
    "enum label too long": lambda d: column(d, "tag").update(type="public.t", enum=["x" * 64]),
    "column twice": lambda d: table(d)["columns"].append(dict(column(d, "tag"))),
    "column name too long": lambda d: column(d, "tag").update(name="c" * 64),
    "terminal escape in a name": lambda d: column(d, "tag").update(name="t\x1b]0;x\x07"),
    "cursor not a column": lambda d: table(d).update(cursor="nope"),
    "cursor_type not the column's": lambda d: table(d).update(cursor_type="date"),
    "cursor on a text column": lambda d: table(d).update(cursor="tag", cursor_type="text"),
    "time zone as a path": lambda d: table(d).update(cursor_timezone="../../../etc/passwd"),
    "primary key not a column": lambda d: table(d).update(primary_key=["nope"]),
    "table under another name": lambda d: d["tables"].update(
        {"public.other": d["tables"].pop(FULL)}),
    "table rows not those of its files": lambda d: table(d).update(rows=table(d)["rows"] + 1),
    "unchanged_since not an id": lambda d: table(d).update(unchanged_since="../../x"),
    "dataset with a newline": lambda d: d.update(dataset="a\nb"),
    "format version": lambda d: d.update(format_version=2),
}


@pytest.mark.parametrize("edit", list(MANIFEST_EDITS), ids=list(MANIFEST_EDITS))
def test_a_manifest_field_out_of_its_grammar_is_refused(dataset, edit):
    directory, full, _ = dataset
    rewrite_manifest(directory, full, MANIFEST_EDITS[edit])
    with pytest.raises(IntegrityError) as info:
        read_everything(directory)
    assert info.value.exit_code == 6 and info.value.hint


PARTITION_EDITS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "window against its id": lambda d: d["window"].update(start="2020-01-01T00:00:00+00:00",
                                                          end="2020-01-02T00:00:00+00:00"),
    "revision against its id": lambda d: d.update(revision=7),
    "previous revision outside": lambda d: d.update(previous_revision="../../../x"),
}


@pytest.mark.parametrize("edit", list(PARTITION_EDITS), ids=list(PARTITION_EDITS))
def test_a_partition_field_out_of_its_grammar_is_refused(dataset, edit):
    directory, _, partition = dataset
    rewrite_manifest(directory, partition, PARTITION_EDITS[edit])
    with pytest.raises(IntegrityError):
        read_everything(directory)


def _pub(ix: dict[str, Any], n: int = 0) -> dict[str, Any]:
    return ix["publications"][n]


INDEX_EDITS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "id climbing out": lambda ix: _pub(ix).update(id="full/../../x"),
    "manifest elsewhere": lambda ix: _pub(ix).update(manifest="../elsewhere/manifest.json"),
    "manifest_sha256 as a path": lambda ix: _pub(ix).update(manifest_sha256="../x"),
    "unknown kind": lambda ix: _pub(ix).update(kind="partial"),
    "kind against its id": lambda ix: _pub(ix, 1).update(kind="full"),
    "sequence twice": lambda ix: _pub(ix, 1).update(sequence=_pub(ix)["sequence"]),
    "sequence beyond next_sequence": lambda ix: ix.update(next_sequence=1),
    "label against its id": lambda ix: _pub(ix, 1)["window"].update(label="2020-01-01"),
    "removed label as a path": lambda ix: ix.update(removed=[
        {"id": "incremental/2020-01-01/r1", "sequence": 1, "kind": "incremental",
         "label": "../../x"}]),
    "dataset not a string": lambda ix: ix.update(dataset=["x"]),
}


@pytest.mark.parametrize("edit", list(INDEX_EDITS), ids=list(INDEX_EDITS))
def test_an_index_field_out_of_its_grammar_is_refused(dataset, edit):
    directory = dataset[0]
    rewrite_index(directory, INDEX_EDITS[edit])
    with pytest.raises(IntegrityError):
        read_everything(directory)


def test_a_sha256_path_touches_nothing_outside_the_cache(dataset, tmp_path):
    """Over HTTP files are cached under their sha256: a manifest naming ``../victim``
    must neither delete nor create anything there."""
    directory, full, _ = dataset
    cache = tmp_path / "cache"
    cache.mkdir()
    victim = tmp_path / "victim.csv.zst"
    victim.write_bytes(b"precious")
    rewrite_manifest(directory, full, lambda d: file0(d).update(sha256="../victim"))
    with HostileServer(directory) as server, pytest.raises(IntegrityError):
        sync(server.url, str(tmp_path / "r.duckdb"),
             SyncOptions(cache_dir=cache, store_options=FAST))
    assert victim.read_bytes() == b"precious"
    assert files_under(cache) == []
    # (the DuckDB file this failed first sync created is removed again)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "published",
                                                          "victim.csv.zst"]


# -- no DDL from a dataset's text ----------------------------------------------------------

@pytest.fixture
def pg_replica(cluster: ThrowawayCluster, tmp_path: Path) -> Iterator[str]:
    r = Replicas("postgresql", tmp_path, cluster)
    try:
        yield r.new()
    finally:
        r.close()


def test_a_smuggled_foreign_key_is_refused_before_any_ddl(dataset, pg_replica):
    directory, full, _ = dataset
    with connect_pg(pg_replica) as conn:
        conn.execute("CREATE TABLE public.victim (id integer PRIMARY KEY)")
    rewrite_manifest(directory, full, lambda d: column(d, "tag").update(
        type="integer references public.victim on delete cascade"))
    with pytest.raises(IntegrityError, match="type"):
        sync(str(directory), pg_replica)
    assert query(pg_replica, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == [(0,)]
    assert query(pg_replica, "SELECT to_regclass('public.things')") == [(None,)]


@pytest.mark.parametrize("engine", ["postgresql", "duckdb"])
def test_a_sync_refused_before_loading_leaves_no_state_schema(dataset, engine, cluster,
                                                              tmp_path):
    """A first sync refused before it loaded anything leaves the target as it found it:
    no ``topoff`` schema, while another user's schema and table stay (the ledger's schema
    and its empty tables stayed behind in PostgreSQL, and in a DuckDB file that existed)."""
    directory, full, _ = dataset
    rewrite_manifest(directory, full, MANIFEST_EDITS["statement in a type"])
    r = Replicas(engine, tmp_path, cluster)
    try:
        replica = r.new()
        if engine == "postgresql":
            with connect_pg(replica) as conn:
                conn.execute("CREATE TABLE public.mine (id integer)")
        else:
            with duckdb.connect(replica) as con:
                con.execute("CREATE TABLE main.mine (id integer)")
        with pytest.raises(IntegrityError, match="type"):
            sync(str(directory), replica)
        assert query(replica, "SELECT table_schema, table_name FROM information_schema.tables "
                     "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')") == \
            [("public" if engine == "postgresql" else "main", "mine")]
        assert query(replica, "SELECT count(*) FROM information_schema.schemata WHERE "
                     "schema_name = 'topoff'") == [(0,)]
    finally:
        r.close()


def test_an_enum_named_like_a_table_gets_the_replicas_own_type(dataset, pg_replica):
    """An enum column typed as an existing table's row type must not become a column of
    that composite type (a dependency on another dataset's table)."""
    directory = dataset[0]
    with connect_pg(pg_replica) as conn:
        conn.execute("CREATE TABLE public.victim (id integer PRIMARY KEY)")
    for pub in index_ids(directory):
        rewrite_manifest(directory, pub, lambda d: column(d, "tag").update(
            type="public.victim", enum=["x", "y"]))
    sync(str(directory), pg_replica)
    (kind, name), = query(pg_replica, "SELECT t.typtype::text, t.typname::text FROM "
                          "pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE "
                          "a.attrelid = 'public.things'::regclass AND a.attname = 'tag'")
    assert kind == "e" and name.startswith("victim_")
    assert query(pg_replica, "SELECT count(*) FROM public.things") == [(9,)]
    # dropping the other table is not blocked by a dependency from this replica
    with connect_pg(pg_replica) as conn:
        conn.execute("DROP TABLE public.victim")


# -- rows and bytes are bounded before a target sees a file ---------------------------------

def _csv(directory: Path, pub: str) -> bytes:
    doc = json.loads((directory / pub / "manifest.json").read_bytes())
    return decompress((directory / pub / file0(doc)["path"]).read_bytes())


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_extra_rows_in_a_full_export_are_refused(dataset, engine, cluster, tmp_path):
    directory, full, _ = dataset
    text = _csv(directory, full)
    extra = text + b"".join(f"{i},x,x,2020-01-01 00:00:00+00\n".encode()
                            for i in range(5000, 5010))
    replace_data_file(directory, full, FULL, compress(extra))
    r = Replicas(engine, tmp_path, cluster)
    try:
        replica = r.new()
        with pytest.raises(IntegrityError, match="more than the 8 rows"):
            sync(str(directory), replica)
        found = query(replica, "SELECT count(*) FROM public.things")
        assert found == [(0,)]
    finally:
        r.close()


def test_fewer_rows_than_declared_are_refused(dataset, tmp_path):
    directory, full, _ = dataset
    text = _csv(directory, full)
    replace_data_file(directory, full, FULL, compress(text.split(b"\n", 1)[0] + b"\n"))
    with pytest.raises(IntegrityError, match="holds 0 rows, its manifest says 8"):
        sync(str(directory), str(tmp_path / "r.duckdb"))


def test_a_row_bomb_is_stopped_early(dataset, tmp_path):
    """A few KB of zstd holding millions of rows, declared as one: refused after the
    first block, long before the target (or the disk) sees them."""
    directory, full, _ = dataset
    header = _csv(directory, full).split(b"\n", 1)[0] + b"\n"
    bomb = compress(header + b"1,a,x,2020-01-01 00:00:00+00\n" * 3_000_000)
    assert len(bomb) < 100_000
    rewrite_manifest(directory, full, lambda d: table(d).update(rows=1))
    replace_data_file(directory, full, FULL, bomb, rows=1)
    with pytest.raises(IntegrityError, match="more than the 1 rows"):
        sync(str(directory), str(tmp_path / "r.duckdb"))


def test_one_endless_line_is_stopped_at_the_size_cap(dataset, tmp_path):
    """92 KB of zstd can hold a 3 GB line: without a declared size, a file may hold
    at most MIN_CAP or MAX_RATIO times its compressed size."""
    from topoff.sync import scan
    directory, full, _ = dataset
    header = _csv(directory, full).split(b"\n", 1)[0] + b"\n"
    line = b'1,"' + b"a" * (scan.MIN_CAP + 1) + b'",x,2020-01-01 00:00:00+00\n'
    rewrite_manifest(directory, full, lambda d: table(d).update(rows=1))
    replace_data_file(directory, full, FULL, compress(header + line), rows=1)
    with pytest.raises(IntegrityError, match="decompresses to more than"):
        sync(str(directory), str(tmp_path / "r.duckdb"))


def test_the_declared_uncompressed_size_is_exact(dataset, tmp_path):
    directory, full, _ = dataset
    text = _csv(directory, full)
    replace_data_file(directory, full, FULL, compress(text), uncompressed_bytes=len(text) - 1)
    with pytest.raises(IntegrityError, match="more than"):
        sync(str(directory), str(tmp_path / "r.duckdb"))
    replace_data_file(directory, full, FULL, compress(text), uncompressed_bytes=len(text) + 1)
    with pytest.raises(IntegrityError, match=f"decompresses to {len(text):,} bytes"):
        sync(str(directory), str(tmp_path / "r2.duckdb"))
    replace_data_file(directory, full, FULL, compress(text), uncompressed_bytes=len(text))
    sync(str(directory), str(tmp_path / "r3.duckdb"))
    assert query(str(tmp_path / "r3.duckdb"), "SELECT count(*) FROM public.things") == [(9,)]


def test_rows_in_a_second_zstd_frame_are_counted(dataset, tmp_path):
    """A reader that stops at the first frame would miss rows DuckDB loads."""
    directory, full, _ = dataset
    text = _csv(directory, full)
    two = compress(text) + compress(b"7000,x,x,2020-01-01 00:00:00+00\n")
    replace_data_file(directory, full, FULL, two)
    with pytest.raises(IntegrityError, match="more than the 8 rows"):
        sync(str(directory), str(tmp_path / "r.duckdb"))


def test_quoted_newlines_are_not_rows(dataset, tmp_path):
    """The notes hold newlines and quotes inside CSV quotes: the real dataset passes."""
    directory = dataset[0]
    assert b'"line one\nsaid ""hi"", ok"' in _csv(directory, dataset[1])
    sync(str(directory), str(tmp_path / "r.duckdb"))
    assert query(str(tmp_path / "r.duckdb"), "SELECT count(*) FROM public.things") == [(9,)]


# -- downloads and the index are capped ---------------------------------------------------

def test_an_endless_data_file_stops_at_its_declared_size(dataset, tmp_path):
    directory, full, _ = dataset
    f = file0(json.loads((directory / full / "manifest.json").read_bytes()))
    cache = tmp_path / "cache"
    with HostileServer(directory) as server:
        server.answers[f"/{full}/{f['path']}"] = endless
        with pytest.raises(IntegrityError, match=f"more than {f['bytes']} bytes"):
            sync(server.url, str(tmp_path / "r.duckdb"),
                 SyncOptions(cache_dir=cache, store_options=FAST))
    assert files_under(cache) == []


@pytest.mark.parametrize("name", ["index.json", "manifest.json"])
def test_an_endless_index_or_manifest_is_capped(dataset, tmp_path, monkeypatch, name):
    directory, full, _ = dataset
    monkeypatch.setattr(checks, "MAX_INDEX_BYTES", 1 << 20)
    monkeypatch.setattr(checks, "MAX_MANIFEST_BYTES", 1 << 20)
    path = "/index.json" if name == "index.json" else f"/{full}/manifest.json"
    with HostileServer(directory) as server:
        server.answers[path] = endless
        with pytest.raises(IntegrityError, match="larger than 1 MiB"):
            sync(server.url, str(tmp_path / "r.duckdb"), SyncOptions(
                cache_dir=tmp_path / "cache", store_options=FAST))


# -- DuckDB loads exactly the verified file ----------------------------------------------

def test_glob_characters_in_a_local_path_load_only_the_verified_file(dataset, tmp_path):
    """DuckDB reads ``pub[1]/...`` as a pattern that matches ``pub1/...``: the file it is
    handed must be the one that was hashed."""
    directory = dataset[0]
    glob_dir = tmp_path / "pub[1]"
    shutil.copytree(directory, glob_dir)
    decoy = tmp_path / "pub1"
    shutil.copytree(directory, decoy)
    full = dataset[1]
    replace_data_file(decoy, full, FULL, compress(_csv(directory, full).split(b"\n", 1)[0]
                                                  + b"\n"), rows=0)
    replica = str(tmp_path / "r.duckdb")
    sync(str(glob_dir), replica, SyncOptions(cache_dir=tmp_path / "cache"))
    assert query(replica, "SELECT count(*) FROM public.things") == [(9,)]
    assert files_under(tmp_path / "cache") == []


# -- planning is linear ------------------------------------------------------------------

@pytest.mark.slow
def test_planning_32000_revisions_of_one_day():
    window = Window.day(day(3))
    full = "full/2020-01-01T000000Z"
    pubs = [Publication(full, 1, "full", manifest_name(full), "0" * 64, 0, "", "")]
    for n in range(1, 32_001):
        pub_id = f"incremental/{window.label}/r{n}"
        pubs.append(Publication(pub_id, n + 1, "incremental", manifest_name(pub_id),
                                "0" * 64, 0, "", "", window.to_json(), n))
    # read back as a consumer reads it: every field of 32,001 publications is checked
    index = Index.from_json(json.loads(Index("d", pubs, next_sequence=32_002).dumps()))
    state = ReplicaState("d", "o", "full/2020-01-01T000000Z", 1, "ready", 1)
    plan = plan_sync(index, state, "o", "t")
    assert [p.sequence for p in plan.apply] == [32_001]
    assert len(plan.skip) == 31_999


def test_an_index_claiming_a_huge_next_sequence_plans_quickly():
    """A hostile next_sequence of 2**62 must not make the gap check count to it."""
    pubs = [Publication("full/2020-01-01T000000Z", 1, "full", "full/x", "0" * 64, 0, "", "")]
    index = Index("d", pubs, next_sequence=2 ** 62)
    state = ReplicaState("d", "o", "full/2020-01-01T000000Z", 1, "ready", 1)
    with pytest.raises(TopoffError, match="removed"):
        plan_sync(index, state, "o", "t")


# -- redirects ---------------------------------------------------------------------------

def test_a_redirect_to_another_server_is_refused_without_credentials(dataset, tmp_path):
    directory = dataset[0]
    with HostileServer(directory) as there, HostileServer(directory) as here:
        here.answers["/index.json"] = redirect(f"{there.url}/index.json")
        url = here.url.replace("http://", "http://reader:s3cret-pw@")
        with pytest.raises(StoreError, match="same server") as info:
            sync(url, str(tmp_path / "r.duckdb"), SyncOptions(store_options=FAST))
    assert there.log == []
    assert "s3cret-pw" not in str(info.value) + (info.value.hint or "")
    assert here.log[0][2] is not None  # the credentials did go to the store itself


def test_a_redirect_within_the_server_is_followed(dataset, tmp_path):
    directory = dataset[0]
    shutil.copy(directory / "index.json", directory / "moved-index.json")
    with HostileServer(directory) as here:
        here.answers["/index.json"] = redirect("/moved-index.json")
        sync(here.url, str(tmp_path / "r.duckdb"),
             SyncOptions(store_options=FAST, cache_dir=tmp_path / "cache"))
    assert query(str(tmp_path / "r.duckdb"), "SELECT count(*) FROM public.things") == [(9,)]
