"""topoff: consistent exports from a PostgreSQL hot standby, and replicas that top off from them."""

# The single place the version is written; pyproject.toml reads it from here.
__version__ = "0.1.0"
