"""An Apache Iceberg replica (``iceberg:catalog.toml``), written through pyiceberg.

Only this package imports pyiceberg and pyarrow, and only when an Iceberg target is used:
``is_iceberg`` (config.py) is all the rest of topoff needs to route a location here.
"""

from topoff.targets.iceberg.config import is_iceberg

__all__ = ["is_iceberg"]
