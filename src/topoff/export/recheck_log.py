"""What an incremental export found for each window it looked at, in the log."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from topoff.export.incremental import WindowPlan

log = logging.getLogger("topoff")


def log_window(wp: WindowPlan) -> None:
    for tp in wp.tables:
        log.debug("%s %s: %s (rows published %s, now %s)", wp.window.label, tp.table.qualified,
                  tp.how, tp.rows_before, tp.rows_now)
    if wp.previous_pub is None:
        log.info("%s: first publication -> r%d", wp.window.label, wp.revision)
        return
    changed = [tp for tp in wp.tables if tp.export]
    if not changed:
        how = sorted({tp.how.removeprefix("unchanged-") for tp in wp.tables})
        log.info("%s: unchanged since %s (checked by %s)", wp.window.label, wp.previous_pub,
                 " and ".join(how))
        return
    details = ", ".join(
        f"{tp.table.config.name} {tp.how}" + (f" {tp.rows_now - tp.rows_before:+d} rows"
                                       if tp.rows_now is not None and tp.rows_before is not None
                                       and tp.rows_now != tp.rows_before else "")
        for tp in changed)
    log.info("%s: changed since %s (%s) -> r%d", wp.window.label, wp.previous_pub, details,
             wp.revision)


class Phases:
    """Wall time of an export's steps, logged at debug level (``--verbose``) as one line:
    where a run's time went (the re-check runs beside the first reads, so its share of
    the reads' time is not theirs)."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.spent: list[tuple[str, float]] = []

    def mark(self, step: str) -> None:
        now = time.monotonic()
        self.spent.append((step, now - self._last))
        self._last = now

    def log(self) -> None:
        log.debug("timings: %s", ", ".join(f"{step} {s:.3f} s" for step, s in self.spent))
