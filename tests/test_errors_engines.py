"""Environment and data failures of the replica's engine, as ``topoff sync`` reports them:
one ``error:`` line, one ``hint:`` line, the documented exit code, never "internal error"
(a malformed file, a full disk, a read-only directory, a role without CREATE, a missing
database, hostile names in a manifest)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from support.full_disk import tmpfs
from support.replica import Replicas, cli, fill, is_postgres, nommer_config, publish_standard

pytest_plugins = ["support.replica_fixtures"]


def error_and_hint(stderr: str) -> tuple[str, str]:
    lines = stderr.strip().splitlines()
    assert len(lines) >= 2, stderr
    error, hint = lines[-2:]
    assert error.startswith("error: ") and hint.startswith("hint: "), stderr
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    return error.removeprefix("error: "), hint.removeprefix("hint: ")


@pytest.fixture
def published(db, tmp_path) -> Path:
    fill(db, days=2, per_day=50)
    url = tmp_path / "published"
    publish_standard(nommer_config(db), str(url))
    return url


def full_export(url: Path) -> tuple[dict, dict]:
    """The index and the (first) full export's entry in it."""
    index = json.loads((url / "index.json").read_text())
    pub = next(p for p in index["publications"] if p["kind"] == "full")
    return index, pub


def rewrite_first_file(url: Path, data: bytes | None = None,
                       path: str | None = None) -> tuple[str, str]:
    """Replace the first data file of the full export's first table (its checksums made to
    match, as a careless or hostile publisher would), or rename it in the manifest; returns
    (publication id, file path as the manifest names it)."""
    index, pub = full_export(url)
    manifest_path = url / pub["id"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = next(iter(manifest["tables"].values()))
    f = entry["files"][0]
    if data is not None:
        raw = zstandard.ZstdCompressor().compress(data)
        (url / pub["id"] / f["path"]).write_bytes(raw)
        f["bytes"], f["sha256"] = len(raw), hashlib.sha256(raw).hexdigest()
        # the declared counts match too: the file gets past the consumer's row and size
        # check, and only the engine's CSV parser can tell it is malformed
        rows = data.count(b"\n") - 1
        entry["rows"] += rows - f["rows"]
        f["rows"], f["uncompressed_bytes"] = rows, len(data)
    if path is not None:
        f["path"] = path
    text = json.dumps(manifest, indent=2).encode()
    manifest_path.write_bytes(text)
    pub["manifest_sha256"] = hashlib.sha256(text).hexdigest()
    (url / "index.json").write_text(json.dumps(index, indent=2))
    return pub["id"], f["path"]


def test_a_malformed_file_is_an_integrity_error(published: Path, replica: str):
    header = (published / full_export(published)[1]["id"]).glob("**/*.csv.zst")
    assert next(header, None) is not None
    pub_id, name = rewrite_first_file(published, b'id,name\n1,"bad"quote\n2,x\n')

    result = cli("sync", str(published), replica)
    assert result.exit_code == 6, result.stderr
    error, hint = error_and_hint(result.stderr)
    assert f"of publication {pub_id} is malformed" in error
    if not is_postgres(replica):
        assert f"file {name} " in error
    assert "republish" in hint and "nothing of it was applied" in hint
    status = cli("status", replica, "--offline")  # the tables were made: a resumable load
    assert status.exit_code == 0 and "INCOMPLETE" in status.stdout


def test_a_hostile_file_name_in_a_manifest(published: Path, replica: str):
    pub_id, _ = rewrite_first_file(published, path="../../../etc/passwd")
    result = cli("sync", str(published), replica)
    assert result.exit_code == 6, result.stderr
    error, hint = error_and_hint(result.stderr)
    assert "bug in topoff" not in hint
    assert f"manifest {pub_id}/manifest.json cannot be read" in error
    assert "'../../../etc/passwd'" in error
    if not is_postgres(replica):  # the file this first sync created is gone again
        assert not Path(replica).exists()
        assert not Path(replica + ".wal").exists()


def test_a_hostile_manifest_name_in_the_index(published: Path, replica: str):
    index, pub = full_export(published)
    pub["manifest"] = "/etc/passwd"
    (published / "index.json").write_text(json.dumps(index))
    result = cli("sync", str(published), replica)
    assert result.exit_code == 6, result.stderr
    error, hint = error_and_hint(result.stderr)
    assert "index.json cannot be read" in error and "manifest must be" in error
    assert "bug in topoff" not in hint


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", "64k") as mnt:
        yield mnt


def test_a_full_disk_under_a_duckdb_replica(published: Path, small_disk: Path):
    replica = small_disk / "r.duckdb"
    result = cli("sync", str(published), str(replica))
    assert result.exit_code == 7, result.stderr
    error, hint = error_and_hint(result.stderr)
    assert "full" in error and str(replica) in error, error
    assert "free some space" in hint


def test_a_duckdb_replica_in_a_read_only_directory(published: Path, tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        result = cli("sync", str(published), str(mnt / "r.duckdb"))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert result.exit_code == 7, result.stderr
    error, hint = error_and_hint(result.stderr)
    assert str(mnt / "r.duckdb") in error and "permission" in hint


def test_a_role_without_create_on_the_postgresql_replica(published: Path, cluster):
    name = f"nocreate{os.getpid()}"
    password = "s3cret-Pw"
    cluster.primary.execute(f'CREATE ROLE "{name}" LOGIN PASSWORD \'{password}\'')
    cluster.primary.execute(f'CREATE DATABASE "{name}"')
    try:
        cluster.primary.execute(f'REVOKE CREATE ON DATABASE "{name}" FROM PUBLIC', dbname=name)
        cluster.primary.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC", dbname=name)
        result = cli("sync", str(published), cluster.primary.url(name, name, password))
    finally:
        cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cluster.primary.execute(f'DROP ROLE IF EXISTS "{name}"')
    assert result.exit_code == 7, result.stderr
    error, hint = error_and_hint(result.stderr)
    assert "may not" in error and "permission denied" in error
    assert "GRANT CREATE ON DATABASE" in hint
    assert password not in result.stderr + result.stdout


def test_a_postgresql_replica_database_that_does_not_exist(published: Path, cluster):
    result = cli("sync", str(published), cluster.primary.url("no_such_database"))
    assert result.exit_code == 7, result.stderr
    error, hint = error_and_hint(result.stderr)
    assert "does not exist" in error and "createdb" in hint


def test_a_libpq_string_is_a_postgresql_target(published: Path, cluster, tmp_path,
                                               monkeypatch):
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    monkeypatch.chdir(tmp_path)
    replicas = Replicas("postgresql", tmp_path, cluster)
    try:
        url = replicas.new()
        conninfo = make_conninfo(**conninfo_to_dict(url))  # host=127.0.0.1 port=... dbname=...
        assert "://" not in conninfo and "dbname=" in conninfo
        result = cli("sync", str(published), conninfo)
        assert result.exit_code == 0, result.stderr
        assert "rows held" in result.stdout
        assert sorted(p.name for p in tmp_path.iterdir()) == ["published"]  # no DuckDB file

        result = cli("sync", str(published), "replica=1.duckdb")
        assert result.exit_code == 2  # a location of no kind topoff takes: usage
        error, hint = error_and_hint(result.stderr)
        assert "neither a PostgreSQL connection string nor a DuckDB file" in error
        assert "duckdb://" in hint
        assert sorted(p.name for p in tmp_path.iterdir()) == ["published"]
    finally:
        replicas.close()


def test_errors_as_json(tmp_path):
    result = cli("sync", str(tmp_path / "nothing"), str(tmp_path / "r.duckdb"),
                 "--log-format", "json")
    assert result.exit_code == 5
    doc = json.loads(result.stderr.strip().splitlines()[-1])
    assert doc == {"level": "error", "error": "not_published",
                   "message": f"nothing is published at {tmp_path / 'nothing'} (no index.json)",
                   "hint": "check the location, or publish with `topoff export full`",
                   "exit_code": 5}
    assert not (tmp_path / "r.duckdb").exists()


def test_host_and_port_from_the_environment_are_reported(published: Path, cluster,
                                                          monkeypatch):
    """A libpq string without host and port takes them from PGHOST and PGPORT: errors and
    logs name those, not localhost:5432."""
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "1")  # nothing listens there
    result = cli("sync", str(published), "dbname=nowhere user=postgres")
    assert result.exit_code == 7, result.stderr
    error, _ = error_and_hint(result.stderr)
    assert "127.0.0.1:1/nowhere" in error and ":5432" not in error

    name = f"envport{os.getpid()}"
    cluster.primary.execute(f'CREATE DATABASE "{name}"')
    try:
        monkeypatch.setenv("PGPORT", str(cluster.primary.port))
        result = cli("sync", str(published), f"dbname={name} user=postgres")
    finally:
        cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert result.exit_code == 0, result.stderr
    assert f"into postgresql://postgres@127.0.0.1:{cluster.primary.port}/{name}" in result.stderr
