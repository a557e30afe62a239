"""The DuckDB target (the default: an embedded file, no server)."""

from topoff.targets.duckdb.target import CAPABILITIES, DuckDBTarget

__all__ = ["CAPABILITIES", "DuckDBTarget"]
