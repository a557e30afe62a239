"""Reading a file of an rclone remote: ``rclone cat`` streamed from its output."""

from __future__ import annotations

import io
import subprocess
import tempfile
from typing import IO, TYPE_CHECKING, Any, cast

from topoff.stores.base import FileMissing

if TYPE_CHECKING:
    from topoff.stores.rclone import RcloneStore

# rclone's exit codes: 3 directory not found, 4 file not found
NOT_FOUND = (3, 4)


def read_all(f: IO[bytes]) -> bytes:
    f.seek(0)
    return f.read(64 * 1024)


class CatReader(io.RawIOBase):
    """The stdout of ``rclone cat --offset N``; a failure of rclone is a StoreError at the
    end of the stream (never a silently short file)."""

    def __init__(self, store: RcloneStore, name: str, offset: int) -> None:
        super().__init__()
        self._store = store
        self._name = name
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        args = [store._program, "cat", "--offset", str(int(offset)), store._path(name)]
        try:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=self._errors)
        except FileNotFoundError as exc:
            self._errors.close()
            raise store._no_program() from exc

        self._first = b""

    def start(self) -> CatReader:
        """Wait for the first bytes (or the end), so a missing file fails here."""
        try:
            assert self._proc.stdout is not None
            self._first = cast(io.BufferedReader, self._proc.stdout).read1(256 * 1024)
            if not self._first:
                self._finish()
        except BaseException:
            self.close()
            raise
        return self

    def _finish(self) -> None:
        if self._proc.wait() == 0:
            return
        where = f"{self._store.url}/{self._name}"
        if self._proc.returncode in NOT_FOUND:
            raise FileMissing(f"{self._name} not found in {self._store.url}",
                              hint="check the store location")
        raise self._store._failed(f"read {where}", self._proc.returncode,
                                  read_all(self._errors))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._first:
            n = min(len(buffer), len(self._first))
            buffer[:n], self._first = self._first[:n], self._first[n:]
            return n
        assert self._proc.stdout is not None
        n = cast(io.BufferedReader, self._proc.stdout).readinto(buffer)
        if not n and len(buffer):
            self._finish()
        return n or 0

    def close(self) -> None:
        if not self.closed:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._errors.close()
        super().close()
