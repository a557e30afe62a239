"""A test's database on the session's primary + standby, and configs pointed at it."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

import psycopg

from topoff.config import Config, parse_config
from topoff.demo import sample
from topoff.demo.cluster import ThrowawayCluster


@dataclass
class Database:
    """A database on the session's primary, replicated to its standby."""

    name: str
    cluster: ThrowawayCluster

    @property
    def primary_url(self) -> str:
        return self.cluster.primary.url(self.name)

    @property
    def standby_url(self) -> str:
        assert self.cluster.standby is not None
        return self.cluster.standby.url(self.name)

    def primary(self) -> psycopg.Connection:
        return self.cluster.primary.connect(self.name)

    def standby(self) -> psycopg.Connection:
        assert self.cluster.standby is not None
        return self.cluster.standby.connect(self.name)

    def execute(self, sql: str, params: object = None) -> list[tuple]:
        """Run on the primary (autocommit) and wait until the standby has replayed it."""
        with self.primary() as conn:
            cur = conn.execute(sql, params)  # type: ignore[arg-type]
            rows = cur.fetchall() if cur.description else []
        self.cluster.wait_replay()
        return rows

    def standby_query(self, sql: str, params: object = None) -> list[tuple]:
        with self.standby() as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def sync(self) -> None:
        self.cluster.wait_replay()


def make_config(db: Database, text: str | None = None, **export: object) -> Config:
    """The example datanommer config (or ``text``) pointed at the test's standby."""
    config = parse_config(tomllib.loads(text if text is not None else sample.example_config()))
    config = config.with_overrides(source_url=db.standby_url)
    settings: dict[str, object] = {"retry_backoff": 0.05, "jobs": 2}
    settings.update(export)
    return config.with_export(**settings)
