"""Backups on real S3 buckets (moto over HTTP): Object Lock at upload, prune on locked and
versioned buckets, and locks refused before any work where the store cannot keep them."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli
from support.pg import Database
from support.s3_server import S3Server
from topoff.backup.retention import versions_warning
from topoff.stores.s3 import S3Store

PREFIX = "db"


def _age(s3: S3Server, bucket: str, name: str) -> None:
    """Make a backup look 40 days old: a new version of its started.json (the old version
    stays, as it does on any versioned bucket)."""
    key = f"{PREFIX}/catalog/{name}/started.json"
    started = json.loads(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    started["started"] = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    s3.client().put_object(Bucket=bucket, Key=key, Body=json.dumps(started).encode())


def _versions(s3: S3Server, bucket: str, prefix: str) -> list[str]:
    page = s3.client().list_object_versions(Bucket=bucket, Prefix=f"{PREFIX}/{prefix}")
    return [v["Key"] for kind in ("Versions", "DeleteMarkers") for v in page.get(kind, [])]


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_locked_backup_is_retained_and_prune_goes_on(s3_server: S3Server, datanommer: Database,
                                                     age_key: AgeKey, mode: str) -> None:
    bucket = s3_server.create_bucket(object_lock=True)
    url = f"s3://{bucket}/{PREFIX}"
    locked = run_cli(*backup_args(datanommer, age_key, url, "dump.locked"), "--lock-days", "1",
                     "--lock-mode", mode.lower())
    assert locked.exit_code == 0, locked.stderr
    for name in ("dump.plain", "dump.new"):
        assert run_cli(*backup_args(datanommer, age_key, url, name)).exit_code == 0
    for key in (f"{PREFIX}/backups/dump.locked.tar.zst.age",
                f"{PREFIX}/catalog/dump.locked/started.json",
                f"{PREFIX}/catalog/dump.locked/finished.json"):
        head = s3_server.client().head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == mode, key
        until = head["ObjectLockRetainUntilDate"]
        assert datetime.now(UTC) + timedelta(hours=23) < until < \
            datetime.now(UTC) + timedelta(days=1, hours=1)
    plain = s3_server.client().head_object(Bucket=bucket,
                                           Key=f"{PREFIX}/backups/dump.plain.tar.zst.age")
    assert "ObjectLockMode" not in plain
    _age(s3_server, bucket, "dump.locked")
    _age(s3_server, bucket, "dump.plain")

    result = run_cli("backups", "prune", url, "--keep-days", "30")
    assert result.exit_code == 0, result.stderr
    assert f"retained dump.locked until {until.date().isoformat()} (object lock)" \
        in result.stdout
    assert "removed dump.plain" in result.stdout
    assert "removed 1 backups, 1 retained by a lock, kept 1" in result.stdout
    # an object-lock bucket is versioned; without a lifecycle rule prune says so, once
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")] == [
        f"warning: {url} is a versioned bucket without a lifecycle rule that expires "
        "noncurrent versions: prune removes every version of what it deletes, anything else "
        "overwritten or deleted there is kept (and billed) forever"]
    # the unlocked backup is gone with every version, the locked one is whole and listed
    assert _versions(s3_server, bucket, "backups/dump.plain") == []
    assert _versions(s3_server, bucket, "catalog/dump.plain/") == []
    listed = run_cli("backups", "list", url, "--json")
    assert listed.exit_code == 0, listed.stderr
    statuses = {e["name"]: e["status"] for e in json.loads(listed.stdout)}
    assert statuses == {"dump.locked": "finished", "dump.new": "finished"}


def test_prune_on_a_versioned_bucket_leaves_no_versions(s3_server: S3Server,
                                                        datanommer: Database,
                                                        age_key: AgeKey) -> None:
    bucket = s3_server.create_bucket(versioned=True)
    url = f"s3://{bucket}/{PREFIX}"
    for name in ("dump.a", "dump.b"):
        assert run_cli(*backup_args(datanommer, age_key, url, name)).exit_code == 0
    _age(s3_server, bucket, "dump.a")
    assert len(_versions(s3_server, bucket, "catalog/dump.a/started.json")) == 2
    result = run_cli("backups", "prune", url, "--keep-days", "30")
    assert result.exit_code == 0, result.stderr
    assert "removed dump.a" in result.stdout
    assert "versioned bucket without a lifecycle rule" in result.stderr
    # no object, no old version, no delete marker left of dump.a
    assert _versions(s3_server, bucket, "backups/dump.a") == []
    assert _versions(s3_server, bucket, "catalog/dump.a/") == []
    assert _versions(s3_server, bucket, "backups/dump.b") != []


def test_no_warning_where_old_versions_expire(s3_server: S3Server) -> None:
    expiring = s3_server.create_bucket(versioned=True, expire_noncurrent_days=7)
    plain = s3_server.create_bucket()
    versioned = s3_server.create_bucket(versioned=True)
    with S3Store(expiring, PREFIX) as a, S3Store(plain, PREFIX) as b, \
            S3Store(versioned, PREFIX) as c:
        assert versions_warning(a) is None
        assert versions_warning(b) is None
        assert versions_warning(c) is not None and versioned in versions_warning(c)  # type: ignore[operator]


def test_lock_refused_by_a_local_directory_before_any_work(age_key: AgeKey,
                                                           tmp_path: Path) -> None:
    store = tmp_path / "s"
    # a source nobody listens on: the refusal must come before any connection is tried
    result = run_cli("backup", "--source", "postgresql://topoff@127.0.0.1:9/nowhere",
                     "--to", str(store), "--name", "dump.x", "--recipient", age_key.public,
                     "--lock-days", "7")
    assert result.exit_code == 5, result.stderr
    error, hint = error_lines(result)
    assert "cannot keep objects in" in error and "7 days" in error
    assert "Object Lock" in hint
    assert not store.exists() or list(store.rglob("*")) == []


def test_lock_refused_by_a_bucket_without_object_lock(s3_server: S3Server,
                                                      age_key: AgeKey) -> None:
    bucket = s3_server.create_bucket(versioned=True)
    url = f"s3://{bucket}/{PREFIX}"
    result = run_cli("backup", "--source", "postgresql://topoff@127.0.0.1:9/nowhere",
                     "--to", url, "--name", "dump.x", "--recipient", age_key.public,
                     "--lock-days", "7")
    assert result.exit_code == 5, result.stderr
    error, hint = error_lines(result)
    assert "does not have Object Lock enabled" in error and "create" in hint
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_legal_hold_is_retained_and_the_catalog_matches_the_stored_object(
        s3_server: S3Server, datanommer: Database, age_key: AgeKey) -> None:
    bucket = s3_server.create_bucket(object_lock=True)
    url = f"s3://{bucket}/{PREFIX}"
    for name in ("dump.held", "dump.new"):
        assert run_cli(*backup_args(datanommer, age_key, url, name)).exit_code == 0
    key = f"{PREFIX}/backups/dump.held.tar.zst.age"
    stored = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    finished = json.loads(s3_server.client().get_object(
        Bucket=bucket, Key=f"{PREFIX}/catalog/dump.held/finished.json")["Body"].read())
    assert finished["size"] == len(stored) and stored.startswith(b"age-encryption.org/v1")
    assert finished["sha256"] == hashlib.sha256(stored).hexdigest()
    s3_server.client().put_object_legal_hold(Bucket=bucket, Key=key,
                                             LegalHold={"Status": "ON"})
    _age(s3_server, bucket, "dump.held")
    result = run_cli("backups", "prune", url, "--keep-days", "30")
    assert result.exit_code == 0, result.stderr
    assert "retained dump.held until a legal hold is lifted (object lock)" in result.stdout
    assert s3_server.client().head_object(Bucket=bucket, Key=key)["ContentLength"] == \
        len(stored)
    listed = json.loads(run_cli("backups", "list", url, "--json").stdout)
    assert [e["name"] for e in listed] == ["dump.held", "dump.new"]
