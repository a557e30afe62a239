"""Where the exporter's COPY reader used to live: now topoff.sources.pg_copy (PostgreSQL's
row streams), re-exported here for the modules that read COPY rows themselves."""

from topoff.sources.pg_copy import BLOCK, KEEP, CopyReader, block_buffer, copy_digest, copy_rows

__all__ = ["BLOCK", "KEEP", "CopyReader", "block_buffer", "copy_digest", "copy_rows"]
