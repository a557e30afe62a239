"""Fixtures for the consumer tests: ``replicas`` (parametrized over both targets) and
``replica`` (one empty replica). Load with ``pytest_plugins = ["support.replica_fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.replica import ENGINES, Replicas
from topoff.demo.cluster import ThrowawayCluster


@pytest.fixture(params=ENGINES)
def replicas(request: pytest.FixtureRequest, tmp_path: Path,
             cluster: ThrowawayCluster) -> Iterator[Replicas]:
    r = Replicas(request.param, tmp_path, cluster)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def replica(replicas: Replicas) -> str:
    """The location of an empty replica (a DuckDB path or a postgresql:// URL)."""
    return replicas.new()
