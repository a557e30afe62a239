"""topoff: consistent exports from a PostgreSQL hot standby, and replicas that top off from them."""

import contextlib

# The single place the version is written; pyproject.toml reads it from here.
__version__ = "0.1.0"

# The MariaDB driver's C extension needs static TLS space from glibc when it loads; once
# DuckDB has opened a database or pyarrow is imported, that space is taken and the
# extension cannot load ("cannot allocate memory in static TLS block"): `topoff verify
# replica.duckdb --against mariadb://...` (or of an Iceberg replica) failed so. Loading it
# first (a few milliseconds) makes the order irrelevant.
with contextlib.suppress(ImportError):
    import _mysql_connector  # type: ignore[import-not-found]  # noqa: F401
