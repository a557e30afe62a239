"""The whole catalog read is bounded: a store holding more catalog objects, or more catalog
bytes, than any topoff backups write is refused (exit 6) before it fills memory, and what
is read is kept as a summary (a backup's per-table records are read again only for the
backup a drill compares)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.backup import AgeKey, entry
from support.cli import error_lines, run_cli
from support.s3_server import S3Server
from topoff.backup import catalog
from topoff.stores.local import LocalStore
from topoff.stores.s3 import S3Store


def _files(store: Path) -> set[Path]:
    return set(store.rglob("*"))


def _refused(result: object, what: str) -> None:
    assert result.exit_code == 6, result.stderr  # type: ignore[attr-defined]
    error, hint = error_lines(result)  # type: ignore[arg-type]
    assert what in error and "catalog" in error
    assert "catalog/" in hint


def test_more_catalog_objects_than_the_limit_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, age_key: AgeKey) -> None:
    monkeypatch.setattr(catalog, "MAX_CATALOG_OBJECTS", 30)
    store = tmp_path / "store"
    for n in range(16):  # 32 objects
        entry(store, f"dump.{n:02d}", 24 * 40 + n)
    before = _files(store)
    _refused(run_cli("backups", "list", str(store)), "more than 30 objects")
    _refused(run_cli("backups", "prune", str(store), "--keep-days", "1"),
             "more than 30 objects")
    assert _files(store) == before  # prune removed nothing
    _refused(run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                     "--target", "postgresql://localhost/x"), "more than 30 objects")
    check = run_cli("backups", "check", str(store))
    assert check.exit_code == 2 and "cannot read the catalog" in check.stdout, check.output
    # one backup with a flood of drill objects: the listing of its own prefix is bounded too
    d = store / "catalog" / "dump.00"
    for n in range(40):
        (d / f"drill-{n}.json").write_text("{}")
    _refused(run_cli("restore", str(store), "--name", "dump.00", "--identity",
                     str(age_key.identity), "--target", "postgresql://localhost/x"),
             "more than 30 objects")


def test_more_catalog_bytes_than_the_limit_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "MAX_CATALOG_BYTES", 8192)
    store = tmp_path / "store"
    for n in range(6):
        entry(store, f"dump.{n}", 10 + n)
        f = store / "catalog" / f"dump.{n}" / "finished.json"
        f.write_text(json.dumps({**json.loads(f.read_text()), "pad": "x" * 2000}))
    _refused(run_cli("backups", "list", str(store)), "more than 8192 bytes")
    # a listing that understates the sizes (replaced since): the bytes read count
    from test_backup_catalog import StaleListing

    with pytest.raises(catalog.IntegrityError, match="more than 8192 bytes"):
        catalog.read_catalog(StaleListing(str(store)))
    monkeypatch.setattr(catalog, "MAX_CATALOG_BYTES", 1 << 20)
    assert run_cli("backups", "list", str(store)).exit_code == 0


def test_the_catalog_keeps_a_summary_and_the_drill_reads_the_records(tmp_path: Path) -> None:
    """backups list, check and prune need a count of the tables, not 5,000 records per
    backup held for every backup at once; the drill reads its one backup's again."""
    store = tmp_path / "store"
    tables = {f"public.t{n}": {"rows": n, "hash": "ab" * 16} for n in range(5000)}
    for n in range(3):
        entry(store, f"dump.{n}", 10 - n)
        f = store / "catalog" / f"dump.{n}" / "finished.json"
        f.write_text(json.dumps({**json.loads(f.read_text()), "tables": tables,
                                 "phases": {"dump": 1.0}, "pad": "x" * 1000}))
    entries = catalog.read_catalog(LocalStore(str(store)))
    for e in entries:
        assert e.finished is not None and "tables" not in e.finished and "pad" not in e.finished
        assert e.to_json()["tables"] == 5000
    listed = json.loads(run_cli("backups", "list", str(store), "--json").stdout)
    assert [e["tables"] for e in listed] == [5000] * 3
    newest = catalog.latest_finished(LocalStore(str(store)))
    assert newest is not None and newest.name == "dump.2"
    assert newest.finished is not None and newest.finished["tables"] == tables


def test_an_s3_catalog_over_the_limit_is_refused(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "MAX_CATALOG_OBJECTS", 5)
    bucket = s3_server.create_bucket()
    for n in range(6):
        s3_server.client().put_object(Bucket=bucket, Key=f"p/catalog/dump.{n}/started.json",
                                      Body=b"{}")
    _refused(run_cli("backups", "list", f"s3://{bucket}/p"), "more than 5 objects")
    _refused(run_cli("backups", "prune", f"s3://{bucket}/p", "--keep-days", "1"),
             "more than 5 objects")


@pytest.mark.slow
def test_an_s3_catalog_is_listed_a_page_at_a_time(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 lists 1,000 keys a page: the catalog is refused once the pages read pass the
    limit, not after the whole bucket was listed into memory."""
    monkeypatch.setattr(catalog, "MAX_CATALOG_OBJECTS", 1001)
    bucket = s3_server.create_bucket()
    s3 = s3_server.client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: s3.put_object(
            Bucket=bucket, Key=f"p/catalog/dump.{n:05d}/started.json", Body=b"{}"),
            range(1002)))
    store = S3Store(bucket, "p")
    pages = store.scan("catalog/")
    assert next(pages).name == "catalog/dump.00000/started.json"
    # the second page is asked for only now: a key put since is listed
    s3.put_object(Bucket=bucket, Key="p/catalog/dump.99999/started.json", Body=b"{}")
    assert sum(1 for _ in pages) == 1002
    _refused(run_cli("backups", "list", f"s3://{bucket}/p"), "more than 1001 objects")
