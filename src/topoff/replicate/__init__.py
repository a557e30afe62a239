"""``topoff replicate``: live tables copied from PostgreSQL sources (hot standbys) into an
analytics replica (a DuckDB file, a PostgreSQL database, or Iceberg tables:
iceberg_apply), kept topped off.

The source side reads in one snapshot (config, describe, read, watermark, change, run);
the target side applies one refresh of one table in one target transaction with its
state (apply, shape, store); engine runs the configured tables (the library API of the
``topoff replicate`` command), report answers ``--status``. See docs/replicate.md.
"""
