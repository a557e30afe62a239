"""Names of a local directory store opened without leaving it.

Every directory below the store's root is opened relative to its parent with
``O_NOFOLLOW``, and so is the file itself: a symbolic link anywhere below the root is
refused rather than followed (the root, and the directories above it, may be links).
Only regular files are read: a FIFO, socket or device is refused before it is opened
for reading, so that a FIFO put in a file's place cannot make a read wait for ever.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from topoff.errors import StoreError
from topoff.stores.base import FileMissing, check_name

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO that slipped in after the check returns at once
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


class NotRegular(StoreError):
    """A name in a local store is a symbolic link or a special file, not a regular file."""


def refused(name: str, url: str, mode: int) -> NotRegular:
    kind = next((text for test, text in _KINDS if test(mode)), "not a regular file")
    if stat.S_ISLNK(mode):
        return NotRegular(
            f"{name} in {url} is {kind}; topoff follows no link inside a store",
            hint="put the file itself there (the store's root may be a link, nothing below it)")
    return NotRegular(f"{name} in {url} is {kind}, not a regular file; topoff reads only "
                      "regular files from a store",
                      hint=f"remove it from {url}: a store holds regular files and directories")


def _missing(name: str, url: str) -> FileMissing:
    return FileMissing(f"{name} not found in {url}", hint="check the store location")


def _open_root(root: Path) -> int:
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _enter(fd: int, part: str, shown: str, url: str) -> int:
    """The directory ``part`` of the directory ``fd``, never through a link."""
    try:
        return os.open(part, _DIR, dir_fd=fd)
    except NotADirectoryError:
        mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
        if stat.S_ISREG(mode):
            raise _missing(shown, url) from None
        raise refused(shown, url, mode) from None


@contextlib.contextmanager
def parent_fd(root: Path, name: str, url: str) -> Iterator[int]:
    """The directory holding ``name``, reached below ``root`` without following a link
    (FileMissing when a directory on the way does not exist)."""
    parts = check_name(name).split("/")
    try:
        fd = _open_root(root)
    except (FileNotFoundError, NotADirectoryError):
        raise _missing(name, url) from None
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                inner = _enter(fd, part, "/".join(parts[: i + 1]), url)
            except FileNotFoundError:
                raise _missing(name, url) from None
            # the variable holds the new directory before the old one is closed: a Ctrl-C
            # raised as the close returns must not make the cleanup below close the old
            # number again, which another thread may hold by then
            old, fd = fd, inner
            os.close(old)
        yield fd
    finally:
        os.close(fd)


def open_regular(root: Path, name: str, url: str) -> int:
    """A read-only descriptor of the regular file ``name`` (FileMissing when it does not
    exist or is a directory, :class:`NotRegular` for a link or a special file)."""
    last = name.rpartition("/")[2]
    with parent_fd(root, name, url) as directory:
        try:
            mode = os.stat(last, dir_fd=directory, follow_symlinks=False).st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise _missing(name, url) from None
        if stat.S_ISDIR(mode):
            raise _missing(name, url)
        if not stat.S_ISREG(mode):
            raise refused(name, url, mode)
        try:
            fd = os.open(last, _FILE, dir_fd=directory)
        except OSError as exc:  # replaced between the check and the open
            if exc.errno in (errno.ELOOP, errno.ENXIO):
                raise refused(name, url, stat.S_IFLNK if exc.errno == errno.ELOOP
                              else stat.S_IFSOCK) from None
            raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise refused(name, url, mode)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_dirs(root: Path, name: str, url: str) -> None:
    """Refuse a write or delete of ``name`` when a directory on its way below ``root`` is a
    link or not a directory (directories still to be created are fine)."""
    parts = check_name(name).split("/")
    try:
        fd = _open_root(root)
    except OSError:  # a root still to be created, or one the write reports on
        return
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                inner = _enter(fd, part, "/".join(parts[: i + 1]), url)
            except (FileNotFoundError, FileMissing):
                return
            old, fd = fd, inner  # as in parent_fd
            os.close(old)
    finally:
        os.close(fd)
