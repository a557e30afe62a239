"""What the freshness checks (``backups check``, ``replicate --check``) share: ages as
people read them, Prometheus label escaping, and textfile-collector files written
atomically (a temp file in the same directory, fsync, rename), so a scrape never reads a
half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from topoff.errors import ConfigError


def human(seconds: float) -> str:
    """An age or a lag: 45s, 12m, 3.5h, 2.0d."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def write_textfile(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the collector (0644)."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as e:
        raise ConfigError(f"cannot write the metrics file {target}: {e.strerror}",
                          hint="give a file in an existing, writable directory (the "
                          "textfile collector's)") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
