"""The PostgreSQL target."""

from topoff.targets.postgres.target import CAPABILITIES, PostgresTarget

__all__ = ["CAPABILITIES", "PostgresTarget"]
