"""Download one file from a store to disk, resuming what an earlier run left behind."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from topoff.errors import IntegrityError, StoreError
from topoff.stores.base import Store

BLOCK = 1 << 20


def fetch_to_file(
    store: Store,
    name: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Download ``name`` to ``dest``; return (size, sha256 hex) of the whole file.

    Bytes go to ``<dest>.part`` first; a ``.part`` left by a killed run is hashed and the
    download continues after it. ``on_bytes`` is called once with the size already on disk
    (when resuming) and then with the size of every block received, so a progress bar with
    the file's total size ends full.
    """
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    size = 0
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if part.exists():
            if expected_size is not None and part.stat().st_size > expected_size:
                part.unlink()  # longer than the file can be: not a prefix of it
            else:
                size = _hash_into(part, digest)
        if size and on_bytes:
            on_bytes(size)
        # open the source first: a missing file must not leave an empty .part behind
        with store.open_read(name, offset=size) as src, open(part, "ab") as out:
            while block := src.read(_want(size, expected_size)):
                out.write(block)
                digest.update(block)
                size += len(block)
                if on_bytes:
                    on_bytes(len(block))
                if expected_size is not None and size >= expected_size:
                    # never read past what the manifest declares: one byte more tells
                    # a longer file (or an endless body) from the right one
                    if src.read(1):
                        size += 1
                    break
            out.flush()
            os.fsync(out.fileno())
        if expected_size is not None and size != expected_size:
            with contextlib.suppress(OSError):
                part.unlink()
            raise IntegrityError(
                f"{name} from {store.url} is {'more than ' if size > expected_size else ''}"
                f"{size if size < expected_size else expected_size} bytes, the manifest says "
                f"{expected_size}",
                hint="the published dataset is damaged or was rewritten; republish it",
            )
        os.replace(part, dest)
    except OSError as exc:
        raise disk_error(exc, part) from exc
    return size, digest.hexdigest()


def _want(size: int, expected: int | None) -> int:
    return BLOCK if expected is None else max(min(BLOCK, expected - size), 1)


def _hash_into(path: Path, digest: hashlib._Hash) -> int:
    size = 0
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
            size += len(block)
    return size


def disk_error(exc: OSError, path: Path) -> StoreError:
    """The StoreError of a file of the download cache that cannot be written."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"disk full while downloading to {path}",
            hint="free space on that filesystem and run again; the download resumes",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(
            f"permission denied writing {path}",
            hint=f"make {path.parent} writable by the user running topoff",
        )
    if exc.errno in (errno.EMFILE, errno.ENFILE):  # the process's (or system's) open files
        return StoreError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="raise the limit on open files of the user running topoff (ulimit -n, "
            "LimitNOFILE= in a systemd unit), then run again; the download resumes",
        )
    return StoreError(
        f"cannot write {path}: {exc.strerror or exc}",
        hint="check the download directory",
    )
