"""Where datasets live: local directories, HTTP sites (read-only) and S3 prefixes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from topoff.errors import ConfigError
from topoff.stores.base import (
    FileExists,
    FileInfo,
    FileMissing,
    ObjectOptions,
    ObjectVersion,
    Retained,
    Store,
    StoreOptions,
)

__all__ = ["FileExists", "FileInfo", "FileMissing", "ObjectOptions", "ObjectVersion", "Retained",
           "Store", "StoreOptions", "open_store"]

_KINDS_HINT = ("use s3://bucket/prefix, http(s)://host/path, rclone:remote:path, "
               "file:///path or a plain path")


def open_store(location: str, options: StoreOptions | None = None) -> Store:
    """The store a location string names (``s3://``, ``http(s)://``, ``rclone:``,
    ``file://`` or a path); a location no store takes is a ConfigError (usage, exit 2)."""
    options = options or StoreOptions()
    if location.lower().startswith("rclone:"):
        from topoff.stores.rclone import RcloneStore

        return RcloneStore(location[len("rclone:"):])
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    # The S3 and HTTP modules import boto3 and requests: load them only when needed.
    if scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"no bucket in store location {location!r}", hint=_KINDS_HINT)
        from topoff.stores.s3 import S3Store

        return S3Store(parts.netloc, unquote(parts.path), options)
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(f"no host in store location {location!r}", hint=_KINDS_HINT)
        from topoff.stores.http import HttpStore

        return HttpStore(location, options)
    from topoff.stores.local import LocalStore

    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"file:// locations must be on this machine: {location!r}",
                hint="write file:///absolute/path (three slashes)",
            )
        return LocalStore(Path(unquote(parts.path)))
    if scheme:
        raise ConfigError(f"unsupported store location {location!r}", hint=_KINDS_HINT)
    if not location:
        raise ConfigError("empty store location", hint=_KINDS_HINT)
    return LocalStore(Path(location).expanduser())
