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


class DirChain:
    """The directories from a store's root down to the one holding ``name``, each opened
    below its parent without following a link (a link or a special file on the way is
    refused, a regular file on the way is ENOTDIR). A write or delete acts on ``dir`` and
    ``leaf`` with ``dir_fd=``: a directory swapped for a link after the walk cannot send it
    outside the root. ``create`` makes missing directories (``prune_created`` removes them
    again); without it a missing one is :class:`FileMissing`. Missing root: OSError."""

    def __init__(self, root: Path, name: str, url: str, create: bool = False) -> None:
        parts = check_name(name).split("/")
        self.leaf = parts[-1]
        self._parts = parts[:-1]
        self._created: list[int] = []  # indexes of the parts this walk made
        self._fds = [_open_root(root)]
        try:
            for i, part in enumerate(self._parts):
                shown = "/".join(parts[: i + 1])
                try:
                    self._fds.append(_step(self._fds[-1], part, shown, url))
                    continue
                except FileNotFoundError:
                    if not create:
                        raise _missing(name, url) from None
                try:
                    os.mkdir(part, dir_fd=self._fds[-1])
                    self._created.append(i)
                except FileExistsError:  # made by another writer meanwhile
                    pass
                self._fds.append(_step(self._fds[-1], part, shown, url))
        except BaseException:
            self.prune_created()
            self.close()
            raise

    @property
    def dir(self) -> int:
        return self._fds[-1]

    def prune_created(self) -> None:
        """Remove the directories this walk made (deepest first), as far as they are empty."""
        created, self._created = self._created, []
        for i in reversed(created):
            try:
                os.rmdir(self._parts[i], dir_fd=self._fds[i])
            except OSError:
                return

    def prune_empty(self) -> None:
        """Remove the directories holding the name, deepest first, while they are empty
        (never the root)."""
        for i in reversed(range(len(self._fds) - 1)):
            try:
                os.rmdir(self._parts[i], dir_fd=self._fds[i])
            except OSError:
                return

    def sync(self) -> None:
        """fsync the directory holding the name, and those that got a new directory: the
        rename and the new directories are then durable (where directories can be synced)."""
        for i in {len(self._fds) - 1, *self._created}:
            with contextlib.suppress(OSError):
                os.fsync(self._fds[i])

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())


def _step(fd: int, part: str, shown: str, url: str) -> int:
    """:func:`_enter` for a write: a regular file in a directory's place is ENOTDIR."""
    try:
        return _enter(fd, part, shown, url)
    except FileMissing:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), shown) from None
