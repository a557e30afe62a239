"""Where the export's PostgreSQL statements used to live: now topoff.sources.pg_queries."""

from topoff.sources.pg_queries import (
    MD5_HASH,
    OLD_RECORD_HASH,
    ROW_TEXT_HASH,
    STREAM_HASH,
    algorithm_of,
    changed_since_query,
    copy_statement,
    hash_algorithm,
    hash_query,
    recheck_algorithm,
    stream_hashable,
    where_clause,
    window_condition,
    xmin_usable,
)

__all__ = ["MD5_HASH", "OLD_RECORD_HASH", "ROW_TEXT_HASH", "STREAM_HASH", "algorithm_of",
           "changed_since_query", "copy_statement", "hash_algorithm", "hash_query",
           "recheck_algorithm", "stream_hashable", "where_clause", "window_condition",
           "xmin_usable"]
