"""How much of the machine a DuckDB replica may use.

DuckDB's own default memory limit is 80% of the machine's RAM, and a full load takes what
it is given: building a replica of 1.45 million messages peaked above 1 GB, growing with
the dataset. A consumer is often a small machine, so topoff caps DuckDB at
:data:`DEFAULT_MEMORY_LIMIT` (changed with ``topoff sync --memory-limit`` or
``$TOPOFF_DUCKDB_MEMORY_LIMIT``) and at :data:`MAX_THREADS` threads; what does not fit spills
to ``<replica>.tmp`` next to the file, so the peak stays flat as the dataset grows.
"""

from __future__ import annotations

import os
import re

from topoff.errors import ConfigError

DEFAULT_MEMORY_LIMIT = "1GB"
MEMORY_ENV = "TOPOFF_DUCKDB_MEMORY_LIMIT"
#: each DuckDB thread holds its own buffers: more threads need more memory, not less time
#: on the bulk loads topoff runs
MAX_THREADS = 4
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)
_MINIMUM = 64 * 10**6
_MAXIMUM = 10**15  # DuckDB's parser refuses much more ("Memory value out of range")
MAX_LINE = 256 * 1024 * 1024
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10,
          "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def memory_limit(value: str | None = None) -> tuple[str, int]:
    """The memory limit to give DuckDB (``value``, else the environment, else the default),
    as DuckDB reads it and in bytes.

    A size with a unit (512MB, 2GiB); at least 64 MB, below which DuckDB cannot load a
    file's row groups.
    """
    chosen = value if value is not None else os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY_LIMIT
    m = _SIZE.match(chosen)
    size = float(m.group(1)) * _UNITS[m.group(2).upper()] if m else 0
    if not m or not _MINIMUM <= size <= _MAXIMUM:
        raise ConfigError(f"invalid DuckDB memory limit {chosen!r}",
                          hint=f"give --memory-limit or {MEMORY_ENV} a size of at least 64MB "
                          "(at most 1000TB) with its unit, such as 512MB or 2GB")
    return f"{m.group(1)}{m.group(2).upper().replace('I', 'i')}", int(size)


def resource_settings(limit: str | None = None) -> tuple[dict[str, str], int]:
    """DuckDB settings for a replica's connection, and the longest CSV line it can read.

    The CSV reader holds a buffer of the longest line allowed (by default 16 times it, which
    alone would exceed any small limit): a quarter of the memory limit, 256 MB at most (a
    jsonb document stays below that).
    """
    text, size = memory_limit(limit)
    settings = {"memory_limit": text, "threads": str(max(1, min(os.cpu_count() or 1,
                                                                 MAX_THREADS)))}
    return settings, min(MAX_LINE, size // 4)
