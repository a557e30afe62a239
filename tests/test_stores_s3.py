"""S3 for backups: parallel multipart uploads, Object Lock, versions, bucket settings."""

from __future__ import annotations

import hashlib
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.s3_server import S3Server
from topoff.errors import ConfigError, StoreError
from topoff.stores import StoreOptions
from topoff.stores.base import FileExists, FileInfo, ObjectOptions, Retained
from topoff.stores.s3 import S3Store
from topoff.stores.s3_upload import MAX_PARTS, PART_SIZE, PARTS_IN_FLIGHT, part_size

FAST = StoreOptions(retries=3, backoff=0.01, http_timeout=5)
MiB = 1024 * 1024


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


class _Counting:
    """Wraps the store's real client: counts upload_part calls in flight at once."""

    def __init__(self, store: S3Store, fail_part: int | None = None) -> None:
        self._real = store.client.upload_part
        self._lock = threading.Lock()
        self._fail_part = fail_part
        self.now = 0
        self.most = 0
        self.sizes: list[int] = []
        store.client.upload_part = self

    def __call__(self, **args: Any) -> Any:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.sizes.append(len(args["Body"]))
        try:
            if args["PartNumber"] == self._fail_part:
                raise ConnectionResetError("the link broke while sending a part")
            return self._real(**args)
        finally:
            with self._lock:
                self.now -= 1


def uploads(s3: S3Server, bucket: str) -> list[dict]:
    return s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_part_sizes_reach_several_terabytes() -> None:
    assert part_size(1) == part_size(1000) == PART_SIZE == 8 * MiB
    assert part_size(1001) == 16 * MiB
    assert part_size(2001) == 32 * MiB
    assert all(part_size(n) >= 5 * MiB for n in range(1, MAX_PARTS + 1))
    total = sum(part_size(n) for n in range(1, MAX_PARTS + 1))
    assert total > 8 * 10**12


def test_parts_are_sent_in_parallel(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    data = payload(7 * PART_SIZE + 123)
    with S3Store(bucket, "p", FAST) as store:
        counting = _Counting(store)
        with store.write("big.bin") as f:
            view = memoryview(data)
            for start in range(0, len(data), MiB):
                f.write(view[start : start + MiB])
        assert 1 < counting.most <= PARTS_IN_FLIGHT
        assert counting.sizes.count(PART_SIZE) == 7
        got = hashlib.sha256(store.read_bytes("big.bin")).hexdigest()
        assert got == hashlib.sha256(data).hexdigest()
        head = s3_server.client().head_object(Bucket=bucket, Key="p/big.bin")
        assert head["ETag"].strip('"').endswith("-8")
        # create-only semantics hold for multipart uploads too
        with pytest.raises(FileExists), store.write("big.bin") as f:
            f.write(data[: 2 * PART_SIZE])
    assert uploads(s3_server, bucket) == []


def test_multipart_upload_declares_the_checksum_its_parts_carry(s3_server: S3Server) -> None:
    """The upload is created with the CRC32 its parts are sent with, so the server keeps a
    composite of the parts' checksums (S3's and boto3's transfer manager's way) rather
    than hashing the whole object again when the upload completes."""
    bucket = s3_server.create_bucket()
    data = payload(2 * PART_SIZE + 7)
    with S3Store(bucket, "p", FAST) as store:
        store.write_bytes("big.bin", data)
    head = s3_server.client().head_object(Bucket=bucket, Key="p/big.bin",
                                          ChecksumMode="ENABLED")
    checksums = sorted(k for k in head if k.startswith("Checksum") and k != "ChecksumType")
    assert checksums == ["ChecksumCRC32"], head


def test_a_failed_part_aborts_the_upload(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    with S3Store(bucket, "p", FAST) as store:
        _Counting(store, fail_part=2)
        with pytest.raises(StoreError) as err, store.write("big.bin") as f:
            for _ in range(12):
                f.write(payload(PART_SIZE))
        assert "big.bin" in err.value.message
        assert store.list() == []
    assert uploads(s3_server, bucket) == []


@pytest.mark.parametrize("size", [1000, 2 * PART_SIZE + 5], ids=["put", "multipart"])
def test_object_lock_at_upload(s3_server: S3Server, size: int) -> None:
    bucket = s3_server.create_bucket(object_lock=True)
    data = payload(size)
    with S3Store(bucket, "backups", FAST) as store:
        with store.write("db.dump.age", options=ObjectOptions(lock_days=30)) as f:
            f.write(data)
        head = s3_server.client().head_object(Bucket=bucket, Key="backups/db.dump.age")
        until = head["ObjectLockRetainUntilDate"]
        assert head["ObjectLockMode"] == "COMPLIANCE"
        expected = datetime.now(UTC) + timedelta(days=30)
        assert abs((until - expected).total_seconds()) < 3600
        assert store.read_bytes("db.dump.age") == data
        # a plain delete only hides it behind a delete marker; purging meets the lock
        store.delete("db.dump.age")
        assert store.stat("db.dump.age") is None
        with pytest.raises(Retained) as err:
            store.purge("db.dump.age")
        assert err.value.until is not None
        assert abs((err.value.until - until).total_seconds()) < 1
        assert f"retained until {until.strftime('%Y-%m-%d')}" in err.value.message
        versions = store.list_versions("db.dump.age")
        assert [(v.delete_marker, v.latest) for v in versions] == [(True, True), (False, False)]
        assert versions[1].size == size
        info = store.bucket_info()
        assert info.object_lock and info.versioned and not info.expires_noncurrent


def test_governance_mode(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket(object_lock=True)
    with S3Store(bucket, "", FAST) as store:
        opts = ObjectOptions(lock_days=1, lock_mode="GOVERNANCE", content_type="text/plain")
        with store.write("a.txt", options=opts) as f:
            f.write(b"kept")
        head = s3_server.client().head_object(Bucket=bucket, Key="a.txt")
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ContentType"] == "text/plain"


@pytest.mark.parametrize("size", [10, PART_SIZE + 1], ids=["put", "multipart"])
def test_lock_refused_without_object_lock(s3_server: S3Server, size: int) -> None:
    bucket = s3_server.create_bucket()
    with S3Store(bucket, "b", FAST) as store:
        with pytest.raises(StoreError) as err, store.write(
                "x.bin", options=ObjectOptions(lock_days=7)) as f:
            f.write(payload(size))
        assert "does not have Object Lock enabled" in err.value.message
        assert "create" in (err.value.hint or "")
        assert store.list_versions() == []
    assert uploads(s3_server, bucket) == []


@pytest.mark.parametrize("days, mode", [(0, "COMPLIANCE"), (-1, "COMPLIANCE"), (True, "COMPLIANCE"),
                                        (7, "compliance"), (7, "'; DROP")])
def test_invalid_lock_settings(s3_server: S3Server, days: Any, mode: str) -> None:
    bucket = s3_server.create_bucket(object_lock=True)
    with S3Store(bucket, "", FAST) as store:
        with pytest.raises(StoreError) as err, store.write(
                "x", options=ObjectOptions(lock_days=days, lock_mode=mode)) as f:
            f.write(b"x")
        assert err.value.hint
        assert store.list_versions() == []


def test_versions_delete_and_purge(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket(versioned=True)
    with S3Store(bucket, "v", FAST) as store:
        store.write_bytes("a", b"1")
        store.write_bytes("a", b"22", replace=True)
        store.write_bytes("ab", b"333")
        store.delete("a")
        assert store.list() == [FileInfo("ab", 3)]
        versions = store.list_versions("a")
        assert [(v.name, v.delete_marker, v.size) for v in versions if v.name == "a"] == [
            ("a", True, 0), ("a", False, 2), ("a", False, 1)]
        store.purge("a")
        assert [v.name for v in store.list_versions()] == ["ab"]
        store.purge("a")  # nothing left: not an error
        store.purge("ab")
        assert store.list_versions() == []
        assert s3_server.client().list_object_versions(Bucket=bucket).get("Versions") is None


def test_purge_on_an_unversioned_bucket(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    with S3Store(bucket, "", FAST) as store:
        store.write_bytes("a", b"1")
        store.purge("a")
        assert store.list() == []
        with pytest.raises(StoreError):
            store.purge("../a")


def test_bucket_info(s3_server: S3Server) -> None:
    plain = s3_server.create_bucket()
    versioned = s3_server.create_bucket(versioned=True)
    expiring = s3_server.create_bucket(versioned=True, expire_noncurrent_days=30)
    infos = []
    for bucket in (plain, versioned, expiring):
        with S3Store(bucket, "", FAST) as store:
            info = store.bucket_info()
            infos.append((info.versioned, info.object_lock, info.expires_noncurrent))
    assert infos == [(False, False, False), (True, False, False), (True, False, True)]


def test_addressing_style(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    with S3Store("b", "", FAST) as store:  # a custom endpoint: path style by default
        assert store.client.meta.config.s3["addressing_style"] == "path"
    opts = StoreOptions(s3_addressing_style="virtual")
    with S3Store("b", "", opts) as store:
        assert store.client.meta.config.s3["addressing_style"] == "virtual"
    monkeypatch.setenv("TOPOFF_S3_ADDRESSING_STYLE", "auto")
    with S3Store("b", "", FAST) as store:
        assert store.client.meta.config.s3["addressing_style"] == "auto"
    # an environment variable of docs/configuration.md: a configuration error, exit 2, as
    # TOPOFF_DUCKDB_MEMORY_LIMIT's (it was a store error, exit 5)
    monkeypatch.setenv("TOPOFF_S3_ADDRESSING_STYLE", "sideways")
    with pytest.raises(ConfigError) as err:
        S3Store("b", "", FAST)
    assert "sideways" in err.value.message and err.value.exit_code == 2
    from support.cli import run_cli

    result = run_cli("list", "s3://b/p", env={"TOPOFF_S3_ADDRESSING_STYLE": "sideways"})
    assert result.exit_code == 2 and "TOPOFF_S3_ADDRESSING_STYLE" in result.stderr


def test_region(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """[store] s3_region, else AWS_DEFAULT_REGION, else AWS_REGION (docs/stores.md)."""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    with S3Store("b", "", FAST) as store:
        assert store.client.meta.region_name == "eu-west-3"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "fr-par")
    with S3Store("b", "", FAST) as store:
        assert store.client.meta.region_name == "fr-par"
    opts = StoreOptions(retries=0, s3_region="us-west-004")
    with S3Store("b", "", opts) as store:
        assert store.client.meta.region_name == "us-west-004"
