"""Decrypting a backup in a separate process, so that decryption overlaps with zstd and
the tar extraction (one Python thread each would take turns under the GIL).

The child is the ``age`` program when it is on ``PATH``, else a Python child running
``pyrage.decrypt_io`` from its stdin to its stdout. The parent feeds it the encrypted bytes
from a thread, hashing exactly the bytes it feeds (the catalog's SHA-256 is checked on
them), and reads the plaintext from the child's stdout.

The secret keys reach the child through a pipe (``-i /dev/fd/N``), never a command line,
the environment or a file: nothing of them is left behind, whatever happens to either
process. The child runs in its own process group (a Ctrl-C reaches topoff only, which
stops the child itself) with a minimal environment, and it is always reaped: on success,
on any error and on KeyboardInterrupt (SIGINT, and SIGTERM through the CLI) it is killed
if still running, then waited for. If topoff itself is killed with SIGKILL, the child sees
end of file on its stdin or a broken pipe on its stdout and exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from topoff.errors import IntegrityError

CHUNK = 1 << 20
_ENV_KEYS = ("PATH", "PYTHONPATH", "PYTHONHOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")

#: the Python child when the age program is missing: identities from fd argv[1]
PYRAGE_CHILD = """
import os, sys
import pyrage
with os.fdopen(int(sys.argv[1]), "r") as f:
    keys = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
ids = [pyrage.x25519.Identity.from_str(k) for k in keys]
src = open(0, "rb", buffering=1 << 20, closefd=False)
out = open(1, "wb", buffering=1 << 20, closefd=False)
try:
    pyrage.decrypt_io(src, out, ids)
    out.flush()
except BrokenPipeError:
    sys.exit(141)
except Exception as e:
    m = str(e).lower()
    sys.stderr.write("no identity matched\\n" if "no matching keys" in m
                     else f"pyrage: {type(e).__name__}\\n")
    sys.exit(1)
"""


def age_program() -> str | None:
    return shutil.which("age")


def secret_lines(identities: Sequence[Any]) -> list[str] | None:
    """The identities as age key lines, or None when one cannot be written out (an ssh
    identity: pyrage keeps its key inside)."""
    lines = []
    for identity in identities:
        text = str(identity)
        if not text.startswith("AGE-SECRET-KEY-1"):
            return None
        lines.append(text)
    return lines


class _Tracked:
    """The child's stdout as the zstd reader reads it: records end of file."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        if not data and n != 0:
            self.eof = True
        return data


class DecryptProcess:
    """One decrypting child: ``start()``, read ``plain``, then ``finish(ok)``."""

    def __init__(self, src: Any, identities: Sequence[str]) -> None:
        self.src = src  # a HashingReader over the store's reader
        self._keys = ("\n".join(identities) + "\n").encode()
        self.program = age_program()
        self.label = "age" if self.program else "pyrage"
        self.feed_error: BaseException | None = None
        self.broken = False  # the child stopped reading its stdin
        self.killed = False  # topoff stopped it (the caller gave up first)
        self._err = bytearray()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> _Tracked:
        key_r, key_w = os.pipe()
        try:
            if self.program:
                cmd = [self.program, "--decrypt", "--identity", f"/dev/fd/{key_r}"]
            else:
                # -P: the working directory is not on sys.path (no stray pyrage.py)
                cmd = [sys.executable, "-P", "-c", PYRAGE_CHILD, str(key_r)]
            env = {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, pass_fds=(key_r,), env=env,
                                         process_group=0, bufsize=0)
        except BaseException:
            os.close(key_w)
            raise
        finally:
            os.close(key_r)
        self._feeder = threading.Thread(target=self._feed, args=(key_w,), daemon=True,
                                        name="decrypt-feed")
        self._errors = threading.Thread(target=self._read_errors, daemon=True,
                                        name="decrypt-stderr")
        self._feeder.start()
        self._errors.start()
        assert self.proc.stdout is not None
        self.plain = _Tracked(self.proc.stdout)
        return self.plain

    def _feed(self, key_w: int) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        stdin = self.proc.stdin
        try:
            with contextlib.closing(os.fdopen(key_w, "wb", buffering=0)) as keys:
                keys.write(self._keys)
            while data := self.src.read(CHUNK):
                stdin.write(data)
        except BrokenPipeError:
            self.broken = True
        except BaseException as e:  # the store's reader failed
            self.feed_error = e
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read_errors(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while data := self.proc.stderr.read(4096):
            if len(self._err) < 8192:
                self._err += data

    def finish(self, ok: bool) -> None:
        """Reap the child. ``ok``: the caller read the plaintext to the end; the child
        then exits by itself. Otherwise it is killed if still running."""
        proc = self.proc
        if proc is None:
            return
        assert proc.stdout is not None
        try:
            if ok:
                while proc.stdout.read(CHUNK):  # anything after the tar's end
                    pass
                self.plain.eof = True
            if not self.plain.eof:
                self.killed = True
                _kill(proc)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.killed = True
                _kill(proc)
                proc.wait()
        finally:
            if proc.poll() is None:
                self.killed = True
            _kill(proc)
            proc.wait()
            proc.stdout.close()
            self._feeder.join()
            self._errors.join()
            assert proc.stderr is not None
            proc.stderr.close()

    def failure(self) -> Exception | None:
        """The child's own failure, once it has exited by itself (None if it succeeded
        or was stopped by topoff)."""
        proc = self.proc
        if proc is None or proc.returncode == 0 or self.killed:
            return None
        if proc.returncode < 0 and proc.returncode != -signal.SIGPIPE:
            name = signal.Signals(-proc.returncode).name
            return IntegrityError(f"the backup could not be decrypted: the {self.label} "
                                  f"process was killed ({name})",
                                  hint="nothing was restored; run the restore again (see the "
                                  "kernel log if the OOM killer stopped it)")
        return decrypt_failure(self._err.decode("utf-8", "replace"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def decrypt_failure(stderr: str) -> IntegrityError:
    """A fixed message for what the child said: its text may quote the object's bytes
    (age's "unexpected intro"), which are not shown."""
    text = stderr.lower()
    if "no identity matched" in text:
        return IntegrityError("the backup cannot be decrypted with this identity",
                              hint="pass the age identity whose public key was a recipient "
                              "of this backup (--identity FILE)")
    if "header" in text:
        why = "bad age header"
    elif "payload" in text:
        why = "a payload chunk does not authenticate"
    elif "pyrage: " in text:
        why = text.split("pyrage: ", 1)[1].split()[0][:40]
    else:
        why = "decryption failed"
    return IntegrityError(f"the backup cannot be decrypted ({why}): it is corrupted or "
                          f"truncated", hint="restore another backup (topoff backups list)")
