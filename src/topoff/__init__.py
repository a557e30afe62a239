"""topoff: consistent exports from a PostgreSQL hot standby, and replicas that top off from them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("topoff")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
