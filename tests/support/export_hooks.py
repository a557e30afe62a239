"""Export hooks (``export_full(..., hook=...)``) that steer the moments of a parallel run."""

from __future__ import annotations

import time
from collections.abc import Callable


def late_start(table: str, delay: float = 2.0) -> tuple[Callable[..., None], list[str]]:
    """A hook holding back the start of ``table``'s read ``delay`` seconds (another worker's
    query fails and is reported meanwhile, so this read's query reaches the server after
    the first cancel), and the list of the tables whose reads finished."""
    done: list[str] = []

    def hook(event: str, **kw: object) -> None:
        if event == "table_start" and kw.get("table") == table:
            time.sleep(delay)
        if event == "table_done":
            done.append(str(kw["table"]))

    return hook, done
