"""A store in a local directory (also what a web server serves for HTTP readers)."""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from topoff.errors import OPEN_FILES_HINT, StoreError
from topoff.stores.base import (
    FileExists,
    FileInfo,
    FileMissing,
    ObjectOptions,
    Store,
    check_name,
    refuse_lock,
)
from topoff.stores.local_open import DirChain, open_regular

# Temp files live next to their final name so that os.replace is an atomic rename.
_TEMP = re.compile(r"^\..+\.tmp-[0-9a-f]+$")
# Filesystems without hard links (a new name is then taken by a check and a rename).
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
_TOO_MANY = (errno.EMFILE, errno.ENFILE)  # the process's (or the system's) open files
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalStore(Store):
    """Files under ``root``; names map to paths below it."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    # -- reading -----------------------------------------------------------------------

    def list(self, prefix: str = "") -> list[FileInfo]:
        return self._list(prefix, temp=False)

    def list_all(self, prefix: str = "") -> builtins.list[FileInfo]:
        return self._list(prefix, temp=True)

    def _list(self, prefix: str, temp: bool) -> builtins.list[FileInfo]:
        return sorted(self._scan(prefix, temp), key=lambda info: info.name)

    def scan(self, prefix: str = "") -> Iterator[FileInfo]:
        return self._scan(prefix, temp=False)

    def _scan(self, prefix: str, temp: bool) -> Iterator[FileInfo]:
        if prefix:
            # a prefix may end in "/" (a directory) or in a partial name; both are fine
            check_name(prefix[:-1] if prefix.endswith("/") else prefix)
        # Walk only the directory the prefix points into, not the whole tree.
        base = prefix.rpartition("/")[0]
        try:
            yield from self._walk(self.root / base if base else self.root, base, prefix, temp)
        except OSError as exc:
            raise self._error(exc, "list", prefix or ".") from exc

    def _walk(self, path: Path, rel: str, prefix: str, temp: bool) -> Iterator[FileInfo]:
        try:
            entries = os.scandir(path)  # read as walked: a directory of any size
        except (FileNotFoundError, NotADirectoryError):
            return
        with entries:
            for entry in entries:
                name = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    # descend only where names under it can still match the prefix
                    if name.startswith(prefix[: len(name)]):
                        yield from self._walk(Path(entry.path), name, prefix, temp)
                elif entry.is_file(follow_symlinks=False) and name.startswith(prefix) and (
                        temp or not _TEMP.match(entry.name)):
                    # links and special files are no files of the store: never listed
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # deleted while we were listing
                        continue
                    yield FileInfo(name, st.st_size, st.st_mtime)

    def stat(self, name: str) -> FileInfo | None:
        try:
            fd = self._open_fd(name)
        except FileMissing:
            return None
        try:
            return FileInfo(name, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def open_read(self, name: str, offset: int = 0) -> BinaryIO:
        f = os.fdopen(self._open_fd(name), "rb")
        if offset:
            f.seek(offset)
        return f

    def regular_file(self, name: str) -> Path:
        """The path of ``name`` for a reader that opens it itself, once it is a regular
        file reached below the root through no link (FileMissing, or a StoreError)."""
        os.close(self._open_fd(name))
        return self._path(name)

    def _open_fd(self, name: str) -> int:
        """A descriptor of the regular file ``name``: no link below the root is followed,
        and a FIFO or other special file is refused, never opened for reading."""
        try:
            return open_regular(self.root, name, self.url)
        except OSError as exc:
            raise self._error(exc, "read", name) from exc

    # -- writing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, name: str, replace: bool = False,
              options: ObjectOptions | None = None) -> Iterator[BinaryIO]:
        # a lock is refused before anything is created; the content type has no place here
        refuse_lock(self, options, "a local directory cannot lock objects")
        check_name(name)
        made_root = self._make_root(name)
        try:
            chain = DirChain(self.root, name, self.url, create=True)
        except OSError as exc:
            self._prune(made_root)
            raise self._error(exc, "write", name) from exc
        except BaseException:
            self._prune(made_root)
            raise
        try:
            yield from self._write_in(chain, name, replace, made_root)
        finally:
            chain.close()

    def _write_in(self, chain: DirChain, name: str, replace: bool,
                  made_root: builtins.list[Path]) -> Iterator[BinaryIO]:
        """The write itself: every step names a file of ``chain.dir`` (never a path)."""
        tmp, d = f".{chain.leaf}.tmp-{secrets.token_hex(6)}", chain.dir
        try:
            f = os.fdopen(os.open(tmp, _NEW, 0o666, dir_fd=d), "wb")
        except OSError as exc:
            chain.prune_created()
            self._prune(made_root)
            raise self._error(exc, "write", name) from exc
        try:
            try:
                yield f
            finally:
                # The block may have closed the file itself (a compressor with closefd).
                if not f.closed:
                    f.close()
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=d)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if replace:
                os.replace(tmp, chain.leaf, src_dir_fd=d, dst_dir_fd=d)
            else:
                self._link_new(d, tmp, chain.leaf, name)
            chain.sync()
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=d)
            chain.prune_created()
            self._prune(made_root)
            # Translate only errors about our own file, not OSErrors from the caller's code.
            if isinstance(exc, OSError) and exc.filename in (None, tmp, chain.leaf):
                raise self._error(exc, "write", name) from exc
            raise

    def _link_new(self, d: int, tmp: str, leaf: str, name: str) -> None:
        """Give the written file its name only if no file has it (atomic: a hard link)."""
        try:
            os.link(tmp, leaf, src_dir_fd=d, dst_dir_fd=d, follow_symlinks=False)
        except FileExistsError:
            raise FileExists(f"{name} already exists in {self.url}; it is not overwritten",
                             hint="published files never change: another export may be "
                             "running on this dataset") from None
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            try:  # no hard links here: a check, then a rename
                os.stat(leaf, dir_fd=d, follow_symlinks=False)
            except FileNotFoundError:
                os.replace(tmp, leaf, src_dir_fd=d, dst_dir_fd=d)
                return
            raise FileExists(f"{name} already exists in {self.url}; it is not overwritten",
                             hint="another export may be running on this dataset") from None
        os.unlink(tmp, dir_fd=d)

    def swap_bytes(self, name: str, expected: bytes, data: bytes | None) -> bool:
        with self._guard():
            try:
                with self.open_read(name) as f:
                    current = f.read()
            except FileMissing:
                return False
            if current != expected:
                return False
            if data is None:
                self.delete(name)
            else:
                self.write_bytes(name, data, replace=True)
            return True

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """An exclusive flock on the root directory for the length of a compare and swap
        (released by the kernel if the process dies). Where flock is not available the swap
        runs unguarded: a narrow race, documented."""
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            yield
            return
        try:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def delete(self, name: str) -> None:
        try:
            chain = DirChain(self.root, name, self.url)
        except (FileMissing, FileNotFoundError, NotADirectoryError):
            return  # no directory, no file
        except OSError as exc:
            raise self._error(exc, "delete", name) from exc
        try:
            try:
                os.unlink(chain.leaf, dir_fd=chain.dir)
            except (FileNotFoundError, NotADirectoryError):
                return
            except OSError as exc:
                raise self._error(exc, "delete", name) from exc
            chain.prune_empty()
        finally:
            chain.close()

    # -- helpers -----------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).split("/"))

    def _make_root(self, name: str) -> builtins.list[Path]:
        """Create the root (and the directories above it) when missing; return those we
        created, deepest first. The root and what is above it may be links."""
        missing = []
        d = self.root
        while not d.exists():
            missing.append(d)
            if d.parent == d:
                break
            d = d.parent
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc, "write", name) from exc
        return missing

    def _prune(self, created: builtins.list[Path]) -> None:
        """Remove the directories a failed write made above the store, deepest first."""
        for d in created:
            try:
                d.rmdir()
            except OSError:
                break

    def _error(self, exc: OSError, action: str, name: str) -> StoreError:
        where = f"{name} {'to' if action == 'write' else 'in'} {self.url}"
        if exc.errno in _DISK_FULL:
            return StoreError(
                f"disk full while writing {name} to {self.url}",
                hint="free space on that filesystem (or prune old datasets) and run again",
            )
        if exc.errno in _DENIED:
            return StoreError(
                f"permission denied: cannot {action} {where}",
                hint=f"make {self.root} writable (and readable) by the user running topoff",
            )
        if exc.errno in _TOO_MANY:
            return StoreError(
                f"cannot {action} {where}: {exc.strerror or exc}",
                hint=OPEN_FILES_HINT,
            )
        return StoreError(
            f"cannot {action} {where}: {exc.strerror or exc}",
            hint=f"check that {self.root} is a usable directory",
        )
