"""SIGTERM, SIGHUP and Ctrl-C stop a command once: the first one stops it, the next ones
let it finish stopping.

The first signal raises KeyboardInterrupt in the main thread and cancels every statement
the command's connections run (from a thread of its own: the main thread may be inside a
driver's C code, waiting on a server; see workers.py); a command run inside another
program cancels its own statements only, not those of the program's other calls. What is
running then rolls back or removes what it wrote (an export's unpublished files), the
lock is released, and the command reports ``interrupted`` with exit status 130. A second
signal used to interrupt that cleanup in turn (two quick SIGTERMs, Ctrl-C then ``kill``),
leaving unpublished files, a lock or a temp file behind: every later signal is now only
noted (one warning), until the process ends. SIGKILL still stops it at once.

That is the ``topoff`` program (``__main__``). A command run inside another program's
process (click's ``main`` with ``standalone_mode=False``, CliRunner) gives that program
its own handlers back when the command returns, stopped or not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from topoff.workers import Run

log = logging.getLogger("topoff")

#: the signals that stop a command as Ctrl-C does: SIGTERM (systemd stopping a unit, kill)
#: and SIGHUP (the terminal or the SSH session closed), unless started ignored (nohup)
STOPPING = (signal.SIGTERM, signal.SIGHUP)
_ALL = (signal.SIGINT, *STOPPING)


class _State:
    depth = 0  # nested term_as_interrupt blocks (the CLI's, and a command's own)
    stopped = False  # the first signal was raised: the command is stopping
    program = False  # this process is the topoff program: once stopped, it only ends


def is_program() -> bool:
    """Whether this process is the ``topoff`` program (else a program runs the command)."""
    return _State.program


def as_program() -> None:
    """This process is the ``topoff`` program: once a signal stopped the command, its
    handlers stay until the process ends (__main__), instead of being put back."""
    _State.program = True


def _stop(signum: int, frame: Any) -> None:
    if _State.stopped:
        return  # stopping already: let the cleanup finish (the watching thread says so)
    _State.stopped = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def term_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd stopping a unit, kill), SIGHUP (a closed terminal) and Ctrl-C stop the
    command: what is running rolls back or is recorded as failed, and the exit code is 130
    (SIGHUP's default would kill the process, leaving what SIGKILL leaves: temp files, a
    held lock, a backup's unencrypted dump). A signal ignored when topoff started (``nohup``)
    stays ignored. Signals after the first do not interrupt the stop (module docstring);
    once stopped, in the ``topoff`` program, they are ignored until the process ends (its
    handlers stay); elsewhere the handlers found are put back. Nested blocks share the
    outer one's handlers."""
    if _State.depth:
        _State.depth += 1
        try:
            yield
        finally:
            _State.depth -= 1
        return
    from topoff.workers import new_run  # (not loaded before a command needs it)

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in _ALL:
            if signal.getsignal(sig) != signal.SIG_IGN:
                previous[sig] = signal.signal(sig, _stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    _State.stopped = False
    _State.depth = 1
    wake, woken = os.pipe()[::-1]
    os.set_blocking(wake, False)
    before = signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    with new_run() as run:  # the command's connections: what the signal cancels
        threading.Thread(target=_cancel_on_signal, args=(woken, run), name="topoff-signals",
                         daemon=True).start()
        try:
            yield
        finally:
            _State.depth = 0
            signal.set_wakeup_fd(before)
            if not (_State.stopped and _State.program):
                for sig, was in previous.items():
                    signal.signal(sig, was)
            os.close(wake)  # the thread reads the end of file and closes its side


def stopped() -> bool:
    """A signal stopped the command (in the program, its handlers stay: see
    :func:`term_as_interrupt`)."""
    return _State.stopped


def _cancel_on_signal(fd: int, run: Run) -> None:
    """On the first signal, cancel the command's statements (in the ``topoff`` program,
    every statement of the process); on a later one, say why nothing more happens (once)."""
    from topoff.workers import cancel_every_run

    seen = 0
    try:
        while data := os.read(fd, 64):
            count = sum(data.count(bytes([sig])) for sig in _ALL)
            if count and not seen:
                if _State.program:
                    cancel_every_run()
                else:  # a command run inside another program: not the program's own calls
                    run.cancel()
            if seen < 2 <= seen + count:
                with contextlib.suppress(Exception):
                    log.warning("stopping already: letting this run remove what it wrote "
                                "and release what it holds (SIGKILL stops it at once)")
            seen = min(seen + count, 2)
    finally:
        os.close(fd)
