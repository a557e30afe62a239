"""Arrow's memory pool while Iceberg tables are written.

A build reads, converts and writes batches of tens of megabytes one after another: the
allocator Arrow uses by default (mimalloc) keeps the pages of freed batches for reuse, so
the process's resident memory grows far past its live data (at 9 days of the benchmark,
about 240 MB past the Arrow buffers in use). jemalloc, which pyarrow's Linux wheels ship,
gives freed pages back after a decay time: the peak then follows the live data. At 0 ms
every batch's pages were returned and faulted in again (a quarter of the build's CPU time
in the kernel); at 300 ms most of the pages of one batch serve the next and the peak is
still the live data's (the benchmark's build: about a third less system time, the same
peak; at 1000 ms the peak grew by a tenth).
Arrow picks its pool when it is loaded (``ARROW_DEFAULT_MEMORY_POOL``): the ``topoff``
program sets jemalloc there on Linux unless the variable is set (__main__.py)."""

from __future__ import annotations

import pyarrow as pa

#: how long jemalloc keeps freed pages before it returns them to the system
DECAY_MS = 300


def returning_pool() -> None:
    """When Arrow's pool is jemalloc, have it return freed pages after DECAY_MS (for the
    arenas made from now on: those of the threads that read and write the batches)."""
    if pa.default_memory_pool().backend_name == "jemalloc":
        pa.jemalloc_set_decay_ms(DECAY_MS)
