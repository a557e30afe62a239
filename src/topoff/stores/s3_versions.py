"""What S3 buckets add for backups: Object Lock, object versions and lifecycle rules.

On a versioned bucket (every bucket with Object Lock is versioned) a plain delete only
adds a delete marker: the data stays, and is billed, until every version is removed.
:func:`purge` removes every version of one name; a version under retention is not
removable and raises :class:`~topoff.stores.base.Retained` with the date it is kept until.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions as bce

from topoff.errors import StoreError
from topoff.stores.base import FileMissing, ObjectVersion, Retained, check_name

if TYPE_CHECKING:
    from topoff.stores.s3 import S3Store


@dataclass(frozen=True)
class BucketInfo:
    """What a bucket does with old data: versions kept, object lock, lifecycle expiry."""

    #: "Enabled" or "Suspended" versioning (a suspended bucket still holds old versions)
    versioned: bool
    object_lock: bool
    #: a lifecycle rule expires noncurrent versions (else they are kept, and billed, forever)
    expires_noncurrent: bool


def _code(exc: BaseException) -> str:
    if isinstance(exc, bce.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def object_lock_enabled(store: S3Store) -> bool:
    try:
        response = store.client.get_object_lock_configuration(Bucket=store.bucket)
    except Exception as exc:
        if _code(exc) in ("ObjectLockConfigurationNotFoundError", "NotImplemented"):
            return False
        raise store._error(exc, "list", "object lock configuration") from exc
    config = response.get("ObjectLockConfiguration") or {}
    return config.get("ObjectLockEnabled") == "Enabled"


def require_object_lock(store: S3Store) -> None:
    """Refuse (before anything is uploaded) a lock asked of a bucket without Object Lock."""
    if not object_lock_enabled(store):
        raise StoreError(
            f"S3 bucket {store.bucket} does not have Object Lock enabled; objects cannot be "
            "locked there",
            hint="Object Lock can only be chosen when a bucket is created: create a new bucket "
            "with it (aws s3api create-bucket --object-lock-enabled-for-bucket), or drop the lock",
        )


def ensure_retention(store: S3Store, name: str, lock: dict[str, Any]) -> None:
    """Make sure a completed upload carries its retention (some S3-compatible servers drop
    the lock headers of a multipart upload); set it explicitly where it is missing."""
    key = store._key(name)
    try:
        head = store.client.head_object(Bucket=store.bucket, Key=key)
        if head.get("ObjectLockRetainUntilDate"):
            return
        store.client.put_object_retention(
            Bucket=store.bucket, Key=key, VersionId=head["VersionId"],
            Retention={"Mode": lock["ObjectLockMode"],
                       "RetainUntilDate": lock["ObjectLockRetainUntilDate"]},
            ChecksumAlgorithm="SHA256")
    except Exception as exc:
        raise store._error(exc, "lock", name) from exc


def bucket_info(store: S3Store) -> BucketInfo:
    try:
        status = store.client.get_bucket_versioning(Bucket=store.bucket).get("Status")
    except Exception as exc:
        raise store._error(exc, "list", "versioning settings") from exc
    try:
        rules = store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)["Rules"]
    except Exception as exc:
        if _code(exc) not in ("NoSuchLifecycleConfiguration", "NotImplemented"):
            raise store._error(exc, "list", "lifecycle rules") from exc
        rules = []
    expires = any(
        rule.get("Status") == "Enabled" and rule.get("NoncurrentVersionExpiration")
        for rule in rules)
    return BucketInfo(versioned=status in ("Enabled", "Suspended"),
                      object_lock=object_lock_enabled(store), expires_noncurrent=bool(expires))


def list_versions(store: S3Store, prefix: str = "") -> list[ObjectVersion]:
    """Every version and delete marker under the store's prefix + ``prefix``."""
    skip = len(store._key(""))
    found = []
    try:
        pages = store.client.get_paginator("list_object_versions").paginate(
            Bucket=store.bucket, Prefix=store._key("") + prefix)
        for page in pages:
            for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
                for v in page.get(kind, ()):
                    modified = v.get("LastModified")
                    found.append(ObjectVersion(
                        v["Key"][skip:], str(v.get("VersionId") or "null"), v.get("Size", 0),
                        bool(v.get("IsLatest")), marker,
                        modified.timestamp() if modified else None))
    except Exception as exc:
        raise store._error(exc, "list", prefix or "versions") from exc
    return sorted(found, key=lambda v: (v.name, not v.latest, -(v.modified or 0)))


def purge(store: S3Store, name: str) -> None:
    """Remove every version (and delete marker) of ``name``; unversioned: a plain delete.

    A version under retention stops the purge with :class:`Retained` (versions already
    removed stay removed; the retained one, those not reached yet and the delete markers
    stay, so a name that was deleted stays hidden).
    """
    check_name(name)
    versions = [v for v in list_versions(store, name) if v.name == name]
    # data first, delete markers last: a purge stopped by a lock leaves the name hidden
    for version in sorted(versions, key=lambda v: v.delete_marker):
        key = store._key(name)
        try:
            store.client.delete_object(Bucket=store.bucket, Key=key,
                                       VersionId=version.version_id)
        except Exception as exc:
            if _code(exc) in ("AccessDenied", "403"):
                until = _retained_until(store, key, version.version_id)
                if until is None or isinstance(until, datetime):
                    raise _retained(store, name, until) from None
            error = store._error(exc, "delete", name)
            if not isinstance(error, FileMissing):
                raise error from exc


def _retained_until(store: S3Store, key: str, version_id: str) -> datetime | bool | None:
    """The retention date of a version, None for a legal hold, False when not locked."""
    try:
        head = store.client.head_object(Bucket=store.bucket, Key=key, VersionId=version_id)
    except Exception:
        return False
    until = head.get("ObjectLockRetainUntilDate")
    if until is not None and until > datetime.now(UTC):
        return until
    if head.get("ObjectLockLegalHoldStatus") == "ON":
        return None
    return False


def _retained(store: S3Store, name: str, until: datetime | None) -> Retained:
    if until is None:
        return Retained(f"{store.url}/{name} is under a legal hold", None,
                        hint="it can be deleted once the legal hold is lifted")
    day = until.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Retained(f"{store.url}/{name} is retained until {day}", until,
                    hint="Object Lock keeps it until then; it is deleted by a later run")
