"""Logging for people and for cron: one line per step, as text or as JSON lines, on stderr."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

from topoff.redact import redact

LOGGER = "topoff"

#: characters that would break a line or drive a terminal: C0 and C1 controls, DEL, the
#: Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` as one line of plain characters: a control character (from a table or
    file name, a dataset's field, a server's message) is written as its escape."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}")
                        if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": redact(record.getMessage()),
        }
        for key in ("event", "publication", "table", "rows", "bytes", "seconds"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        return json.dumps(doc)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{stamp} {level}{one_line(redact(record.getMessage()))}"


def setup_logging(quiet: bool = False, verbose: bool = False, fmt: str = "text") -> None:
    """Route topoff's log to stderr: warnings only with ``quiet``, debug with ``verbose``."""
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


@contextlib.contextmanager
def logging_kept(names: tuple[str, ...] = (LOGGER, "psycopg")) -> Iterator[None]:
    """The loggers ``names`` as they were once the block is left (their handlers, level and
    propagation): a command run inside another program leaves that program's logging
    alone."""
    loggers = [logging.getLogger(n) for n in names]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            lg.handlers = handlers
            lg.setLevel(level)
            lg.propagate = propagate
