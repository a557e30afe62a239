"""Clusters set up otherwise than the worker's own, one of each kind per worker, shared by
the modules that need it (each makes its own database there and drops it after): starting
one per module, again on each worker that ran one of its tests, took a few seconds each."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from support.pg import Database
from topoff.demo.cluster import ThrowawayCluster

_names = itertools.count(1)


def _cluster(**conf: dict[str, str]) -> Iterator[ThrowawayCluster]:
    cluster = ThrowawayCluster(**conf)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close(remove_in_background=True)


@pytest.fixture(scope="session")
def impatient_cluster() -> Iterator[ThrowawayCluster]:
    """A standby that cancels the sessions in conflict with recovery at once."""
    yield from _cluster(standby_conf={"max_standby_streaming_delay": "0"})


@pytest.fixture(scope="session")
def quiet_cluster() -> Iterator[ThrowawayCluster]:
    """A primary that writes nothing unless a test does (no autovacuum), and a standby that
    pings it every second, so the primary's keepalives arrive often."""
    yield from _cluster(primary_conf={"autovacuum": "off"},
                        standby_conf={"wal_receiver_timeout": "2s"})


def own_database(cluster: ThrowawayCluster, prefix: str) -> Database:
    """A new database in ``cluster``, a name no other module's uses."""
    name = f"{prefix}{os.getpid()}_{next(_names)}"
    cluster.create_database(name)
    return Database(name, cluster)


def drop(db: Database, *roles: str) -> None:
    """``db`` dropped, and then ``roles`` (of the cluster: they would outlive it)."""
    db.cluster.primary.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    for role in roles:
        db.cluster.primary.execute(f'DROP ROLE IF EXISTS "{role}"')
