"""Progress bars for long work when a person watches a terminal; silence otherwise.

Library functions take plain callbacks (``on_rows(table, n)``, ``on_bytes(n)``); this module
turns them into rich progress bars. Under cron (stderr not a terminal) or with ``--quiet``
nothing is drawn and the log's one line per step is all there is.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any


def _amount_column() -> Any:
    """Done / total as a count of rows or steps, or as bytes with a transfer speed."""
    from rich import filesize
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class AmountColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            if task.fields.get("unit") == "bytes":
                done = filesize.decimal(int(task.completed))
                total = f"/{filesize.decimal(int(task.total))}" if task.total else ""
                speed = f" {filesize.decimal(int(task.speed))}/s" if task.speed else ""
                return Text(f"{done}{total}{speed}")
            total = f"/{int(task.total):,}" if task.total else ""
            return Text(f"{int(task.completed):,}{total}")

    return AmountColumn()


class Bars:
    """A set of named progress bars (one per table, file or partition)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Bars:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                _amount_column(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _task(self, key: str, total: float | None, description: str | None = None,
              unit: str = "count") -> Any:
        assert self._progress is not None
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                task = self._tasks[key] = self._progress.add_task(
                    description or key, total=total, unit=unit)
            return task

    def rows(self) -> Callable[[str, int], None] | None:
        """Callback counting rows per table."""
        if self._progress is None:
            return None

        def on_rows(table: str, n: int) -> None:
            assert self._progress is not None
            self._progress.advance(self._task(table, None, f"{table} rows"), n)

        return on_rows

    def bytes_bar(self, key: str, total: int | None,
                  description: str) -> Callable[[int], None] | None:
        """Callback for a download: a bar with bytes and speed."""
        if self._progress is None:
            return None
        task = self._task(key, total, description, unit="bytes")

        def on_bytes(n: int) -> None:
            assert self._progress is not None
            self._progress.advance(task, n)

        return on_bytes

    def step(self, key: str, total: int, description: str) -> Callable[[int], None] | None:
        """Callback for counted steps (partitions applied, files loaded)."""
        if self._progress is None:
            return None
        task = self._task(key, total, description)

        def advance(n: int = 1) -> None:
            assert self._progress is not None
            self._progress.advance(task, n)

        return advance
