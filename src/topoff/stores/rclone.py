"""A store on any rclone remote (``rclone:remote:path``), driving the ``rclone`` program.

rclone reaches some 70 storage systems (SFTP, WebDAV, Google Drive, B2, Azure, ...) and can
encrypt through a ``crypt`` remote. topoff runs it as a subprocess (arguments as a list,
never a shell) and streams through its stdin and stdout:

* list: ``rclone lsjson -R --files-only`` of the directory a prefix points into
* read: ``rclone cat --offset N`` (resumable reads start where they stopped)
* write: ``rclone rcat`` to a temp name next to the final one, then ``rclone moveto``;
  a new name is not overwritten (a claim, then ``--ignore-existing``, see below)
* delete: ``rclone deletefile``, then empty parent directories are removed

Remotes are configured the way rclone is: its config file (``rclone config``) or
``RCLONE_CONFIG_<NAME>_<KEY>`` environment variables, passed through untouched. Passwords in
rclone's config are obscured; topoff never prints the environment or the config.

rclone cannot create a name only if it is absent in one atomic step (``moveto
--ignore-existing`` checks, then moves). A create-only write therefore claims the name
first: it creates an empty claim object ``.<leaf>.claim-<token>`` beside the name, lists
the directory, and publishes only when neither the name nor another writer's live claim
is there; its claim is removed after the move. Of two processes racing for one name at
most one publishes (whichever lists second sees the other's claim; both may give up,
never both win), provided the remote lists what was written before (local disks, SFTP,
S3 and most remotes do). A claim left by a killed writer stops counting after
``CLAIM_TTL`` seconds (by the remote's modification times).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import re
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO, cast

from topoff.errors import StoreError
from topoff.stores.base import (
    FileExists,
    FileInfo,
    FileMissing,
    ObjectOptions,
    Store,
    check_name,
    refuse_lock,
)
from topoff.stores.rclone_claim import CLAIM_TTL, case_twin, contested
from topoff.stores.rclone_read import NOT_FOUND, CatReader, read_all

__all__ = ["CLAIM_TTL", "RcloneStore"]

_TEMP = re.compile(r"^\..+\.(?:tmp|claim)-[0-9a-f]+$")
_HINT = "check the remote with `rclone lsd REMOTE:` and its settings (rclone config)"
_DATE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s+")
# one lock per remote location: writers of one process do not race each other
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(root: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(root, threading.Lock())


def _first_error(stderr: str) -> str:
    """The line of rclone's log that says what failed, without its timestamp."""
    lines = [_DATE.sub("", line).strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("NOTICE")]
    for line in lines:
        if line.startswith(("ERROR", "Failed", "CRITICAL")):
            return line[:300]
    return (lines[-1] if lines else "no message")[:300]


class RcloneStore(Store):
    """Files under ``remote`` (``name:path`` of a configured remote, or a local path)."""

    def __init__(self, remote: str, program: str = "rclone") -> None:
        if not remote or remote.startswith("-") or "\n" in remote or "\x00" in remote:
            raise StoreError(f"invalid rclone location {remote!r}",
                             hint="write rclone:REMOTE:path (a remote from rclone config) "
                             "or rclone:/local/path")
        self.root = remote.rstrip("/") if remote.rstrip("/") else "/"
        self.url = f"rclone:{self.root}"
        self._program = program
        self._folds_case: bool | None = None

    # -- running rclone ----------------------------------------------------------------

    def _path(self, name: str) -> str:
        if self.root.endswith(":") or self.root == "/":
            return self.root + name
        return f"{self.root}/{name}" if name else self.root

    def _run(self, *args: str, what: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self._program, "--retries", "1", *args],
                                  stdin=subprocess.DEVNULL, capture_output=True, check=False)
        except FileNotFoundError as exc:
            raise self._no_program() from exc
        except OSError as exc:
            raise StoreError(f"cannot run rclone to {what}: {exc.strerror}",
                             hint="check that rclone is installed and executable") from exc

    def _no_program(self) -> StoreError:
        return StoreError(f"rclone is not installed (needed for {self.url})",
                          hint="install it (apt-get install rclone, or https://rclone.org)")

    def _failed(self, what: str, code: int, stderr: bytes | str) -> StoreError:
        text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
        return StoreError(f"rclone could not {what} (exit {code}): {_first_error(text)}",
                          hint=_HINT)

    # -- reading -----------------------------------------------------------------------

    def list(self, prefix: str = "") -> list[FileInfo]:
        return self._list(prefix, temp=False)

    def list_all(self, prefix: str = "") -> builtins.list[FileInfo]:
        return self._list(prefix, temp=True)

    def _list(self, prefix: str, temp: bool) -> builtins.list[FileInfo]:
        if prefix:
            check_name(prefix[:-1] if prefix.endswith("/") else prefix)
        base = prefix.rpartition("/")[0]
        done = self._run("lsjson", "-R", "--files-only", "--no-mimetype", self._path(base),
                         what=f"list {self.url}")
        if done.returncode in NOT_FOUND:
            return []
        if done.returncode:
            raise self._failed(f"list {self.url}", done.returncode, done.stderr)
        found = []
        for entry in self._parse(done.stdout, list):
            name = f"{base}/{entry.get('Path')}" if base else str(entry.get("Path"))
            if not name.startswith(prefix) or (not temp and _TEMP.match(name.rpartition("/")[2])):
                continue
            found.append(self._info(name, entry))
        return sorted(found, key=lambda info: info.name)

    def _parse(self, output: bytes, kind: type) -> Any:
        try:
            value = json.loads(output)
        except ValueError:
            value = None
        if not isinstance(value, kind):
            raise StoreError(f"rclone gave an unreadable listing of {self.url}",
                             hint="check the rclone version (1.56 or newer is needed)")
        return value

    def _info(self, name: str, entry: dict[str, Any]) -> FileInfo:
        size = entry.get("Size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise StoreError(f"rclone listed {self.url}/{name} without a valid size",
                             hint="the remote does not report sizes; topoff needs them")
        modified = None
        with contextlib.suppress(TypeError, ValueError):
            modified = datetime.fromisoformat(str(entry.get("ModTime"))).timestamp()
        return FileInfo(name, size, modified)

    def stat(self, name: str) -> FileInfo | None:
        check_name(name)
        done = self._run("lsjson", "--stat", "--no-mimetype", self._path(name),
                         what=f"read {self.url}/{name}")
        if done.returncode in NOT_FOUND:
            return None
        if done.returncode:
            raise self._failed(f"read {self.url}/{name}", done.returncode, done.stderr)
        entry = self._parse(done.stdout, dict)
        return None if entry.get("IsDir") else self._info(name, entry)

    def open_read(self, name: str, offset: int = 0) -> BinaryIO:
        reader = CatReader(self, check_name(name), offset)
        return cast(BinaryIO, io.BufferedReader(reader.start(), 256 * 1024))

    # -- writing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self, name: str, replace: bool = False,
              options: ObjectOptions | None = None) -> Iterator[BinaryIO]:
        refuse_lock(self, options, "rclone remotes cannot lock objects through topoff")
        check_name(name)
        directory, _, leaf = name.rpartition("/")
        temp = f"{directory}/.{leaf}.tmp-{secrets.token_hex(6)}".lstrip("/")
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        try:
            proc = subprocess.Popen([self._program, "rcat", self._path(temp)],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=errors)
        except FileNotFoundError as exc:
            errors.close()
            raise self._no_program() from exc
        try:
            try:
                assert proc.stdin is not None
                yield cast(BinaryIO, proc.stdin)
            except BrokenPipeError as exc:
                proc.wait()
                raise self._failed(f"write {self.url}/{name}", proc.returncode,
                                   read_all(errors)) from exc
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            if proc.wait():
                raise self._failed(f"write {self.url}/{name}", proc.returncode,
                                   read_all(errors))
            self._publish(temp, name, replace)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self._remove(temp)
            raise
        finally:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            errors.close()

    def _publish(self, temp: str, name: str, replace: bool) -> None:
        with _lock_for(self.root):
            if replace:
                self._move(temp, name, [])
                return
            directory, _, leaf = name.rpartition("/")
            claim = f"{directory}/.{leaf}.claim-{secrets.token_hex(6)}".lstrip("/")
            done = self._run("touch", self._path(claim), what=f"write {self.url}/{name}")
            if done.returncode:
                raise self._failed(f"write {self.url}/{name}", done.returncode, done.stderr)
            try:
                if self._contested(directory, leaf, claim):
                    raise self._exists(name)
                self._move(temp, name, ["--ignore-existing"])
                if self.stat(temp) is not None:
                    raise self._exists(name)  # rclone found the name taken and skipped it
            finally:
                with contextlib.suppress(StoreError):
                    self._run("deletefile", self._path(claim), what="remove a claim")

    def _move(self, temp: str, name: str, flags: builtins.list[str]) -> None:
        done = self._run("moveto", *flags, self._path(temp), self._path(name),
                         what=f"write {self.url}/{name}")
        if done.returncode:
            raise self._failed(f"write {self.url}/{name}", done.returncode, done.stderr)

    def _contested(self, directory: str, leaf: str, claim: str) -> bool:
        done = self._run("lsjson", "--no-mimetype", self._path(directory),
                         what=f"list {self.url}")
        if done.returncode:
            raise self._failed(f"list {self.url}", done.returncode, done.stderr)
        listing = self._parse(done.stdout, list)
        twin = case_twin(listing, leaf)
        if twin is not None and self._case_insensitive():
            name, other = (f"{directory}/{leaf}", f"{directory}/{twin}") if directory else (
                leaf, twin)
            raise StoreError(
                f"{name} differs only in case from {other} in {self.url}, which does not "
                "tell names apart by case: both would be one object",
                hint="give one of them another name, or use a remote that tells names apart "
                "by case (S3, SFTP, a Linux disk)")
        return contested(listing, leaf, claim.rpartition("/")[2])

    def _case_insensitive(self) -> bool:
        """Whether the remote takes names differing only in case for one (rclone's
        CaseInsensitive feature; asked once, when such a pair first turns up)."""
        if self._folds_case is None:
            done = self._run("backend", "features", self._path(""), what=f"ask {self.url}")
            try:
                features = self._parse(done.stdout, dict).get("Features", {})
            except StoreError:
                features = {}
            # unknown counts as insensitive: refusing a pair is safe, merging it is not
            self._folds_case = bool(done.returncode or features.get("CaseInsensitive", True))
        return self._folds_case

    def _exists(self, name: str) -> FileExists:
        return FileExists(f"{name} already exists in {self.url}; it is not overwritten",
                          hint="published files never change: another export may be "
                          "running on this dataset")

    def _remove(self, name: str) -> None:
        """Best effort removal of a temp file and the directories it leaves empty."""
        with contextlib.suppress(StoreError):
            self.delete(name)

    def delete(self, name: str) -> None:
        check_name(name)
        done = self._run("deletefile", self._path(name), what=f"delete {self.url}/{name}")
        # a missing file makes deletefile fail too: that is not an error here
        if done.returncode and self.stat(name) is not None:
            raise self._failed(f"delete {self.url}/{name}", done.returncode, done.stderr)
        self._prune(name)

    def _prune(self, name: str) -> None:
        """Remove the directories above ``name`` that are now empty (where remotes have
        directories at all); stops at the first one that is not empty."""
        parts = name.split("/")[:-1]
        while parts:
            done = self._run("rmdir", self._path("/".join(parts)), what="remove a directory")
            if done.returncode:
                return
            parts.pop()

    def swap_bytes(self, name: str, expected: bytes, data: bytes | None) -> bool:
        """Best effort: compare then swap, serialized within this process only (rclone has
        no conditional writes); across processes two swaps could both succeed."""
        with _lock_for(self.root + "\x00swap"):
            try:
                current = self.read_bytes(name)
            except FileMissing:
                return False
            if current != expected:
                return False
            if data is None:
                self.delete(name)
            else:
                self.write_bytes(name, data, replace=True)
            return True
