"""The ``topoff`` program (``python -m topoff`` and the installed command).

SIGTERM, SIGHUP and Ctrl-C are answered from the first moment: while the command's modules are
still being imported (a few hundred milliseconds in which nothing has started yet), they
end the program with the same ``error: interrupted`` and exit status 130 as later on (not
a traceback, or death by signal 15), where the command's own handlers (cli/__init__.py and
cli/options.py ``term_as_interrupt``) take over and roll back what runs.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
from typing import Any

_HINT = "topoff was stopped while starting, before it did anything; run the command again"


def _stopped_while_starting(signum: int, frame: Any) -> None:
    # the lines cli.report() prints, written here without importing the CLI (the import
    # is what is under way)
    args = sys.argv[1:]
    if "--log-format=json" in args or any(
            a == "--log-format" and b == "json" for a, b in itertools.pairwise(args)):
        text = json.dumps({"level": "error", "error": "interrupted", "message": "interrupted",
                           "hint": _HINT, "exit_code": 130}) + "\n"
    else:
        text = f"error: interrupted\nhint: {_HINT}\n"
    os.write(2, text.encode())
    os._exit(130)  # nothing to clean up yet: no file, connection or child exists


def main() -> None:
    # the three handlers go in while the signals are held back: one arriving between two
    # of the calls waits for the last of them (else a Ctrl-C just after SIGTERM's handler
    # was a KeyboardInterrupt traceback, a SIGHUP death by signal)
    held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    signal.signal(signal.SIGTERM, _stopped_while_starting)
    signal.signal(signal.SIGINT, _stopped_while_starting)  # no traceback from an import
    hangup = signal.getsignal(signal.SIGHUP)
    if hangup != signal.SIG_IGN:  # started under nohup: stays ignored
        signal.signal(signal.SIGHUP, _stopped_while_starting)
    signal.pthread_sigmask(signal.SIG_SETMASK, before)
    if sys.platform == "linux":  # before pyarrow is loaded: its wheels there ship jemalloc,
        # which an Iceberg write sets to return freed pages (targets/iceberg/memory.py)
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    from topoff.cli import main as run
    from topoff.cli.signals import as_program

    as_program()  # once stopped, the command's handlers stay until the end (below)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt from now
    try:
        run()
    finally:
        readahead = sys.modules.get("topoff.readahead")
        if readahead is not None:  # no reader left running into the exit (its docstring)
            readahead.stop_all()
        from topoff.cli.signals import stopped

        if stopped():  # the next signals are ignored to the end (the interpreter's own
            # shutdown puts back the default handlers: one more would kill the process)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, hangup)


if __name__ == "__main__":
    main()
