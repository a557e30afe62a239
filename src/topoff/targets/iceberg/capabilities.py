"""What an Iceberg replica can do, declared as data like the other targets' (no pyiceberg
import: docs and tests read it without the library)."""

from topoff.targets.base import Capabilities

ICEBERG = Capabilities(
    name="iceberg",
    loader="pyarrow's streaming CSV reader, batches converted to the Iceberg types and "
           "written as Parquet data files",
    primary_keys=False,  # Iceberg has no indexes
    cursor_index=False,  # tables are partitioned by day of the cursor instead
    enum_types=False,
    native_types=False,
    concurrent_writers=False,
    load_in_place=True,  # data files are written straight into the table's commit
    parallel_tables=True,
    notes={"primary_keys": "Iceberg has no indexes; upserts delete by key",
           "cursor_index": "partitioned by day of the cursor: a window is a partition",
           "enum_types": "string", "native_types": "mapped, see the type table",
           "concurrent_writers": "optimistic: a commit that lost a race is refused and "
                                 "the next sync resumes",
           "load_in_place": "a table's full export and the partitions after it are one "
                            "Iceberg commit; each later partition one commit per table",
           "parallel_tables": "each table its own catalog and commits"},
)
