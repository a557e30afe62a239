"""Test configuration shared by every test module.

Each pytest worker starts one real PostgreSQL primary with a streaming hot standby (initdb,
pg_basebackup -R, free loopback ports; run as the postgres user when the tests run as
root). Each test gets a fresh database on it, replicated to the standby.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.pg import Database, make_config
from support.slow import VARIANTS
from topoff.config import Config
from topoff.demo import sample
from topoff.demo.cluster import ThrowawayCluster

# The MariaDB driver's C extension needs static TLS space from glibc when it loads; once
# pyarrow (the Iceberg tests) has taken that space, it cannot load ("cannot allocate memory
# in static TLS block") in the same worker. Loading it first makes the order irrelevant.
with contextlib.suppress(ImportError):
    import _mysql_connector  # noqa: F401

# A shell starts a background job with SIGINT ignored, and the programs the tests start
# would inherit that (Python installs its KeyboardInterrupt handler only where SIGINT is
# not ignored): the tests that interrupt topoff need the default, whoever started pytest.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

pytest_plugins = ["support.store_fixtures", "support.backup", "support.mariadb",
                  "support.maria_backup", "support.clusters", "support.full_disk"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true",
                     help="also run the scenarios marked slow (repeated kills at random "
                     "moments, long reads): ./run test --slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scenarios marked ``slow`` (each a longer variant of one the suite runs anyway) run
    with ``--slow``, or when ``-m`` names them; the default run stays within CI's ten
    minutes."""
    for item in items:  # the twins listed in support/slow.py
        if item.nodeid.removeprefix("tests/") in VARIANTS:
            item.add_marker(pytest.mark.slow)
    if config.getoption("--slow") or "slow" in (config.getoption("-m") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]

DAYS = 5
#: a test whose files must be big enough to split takes more: @pytest.mark.per_day(300)
PER_DAY = 60
_names = itertools.count(1)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ThrowawayCluster]:
    # no autovacuum: the worker's cluster gathers hundreds of databases, which its
    # launcher would visit one after another all through the run, on the tests' CPU (no
    # test can rely on it: it runs at most once a minute per database)
    c = ThrowawayCluster(primary_conf={"autovacuum": "off"})
    try:
        c.start()
        yield c
    finally:
        c.close(remove_in_background=True)  # the worker's end does not wait for it


@pytest.fixture
def db(cluster: ThrowawayCluster) -> Iterator[Database]:
    name = f"t{os.getpid()}_{next(_names)}"
    cluster.create_database(name)
    yield Database(name, cluster)
    cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def datanommer(db: Database, request: pytest.FixtureRequest) -> Database:
    """The datanommer-shaped sample: DAYS days of PER_DAY messages ending yesterday (UTC),
    or as many as the test's ``per_day`` mark says."""
    mark = request.node.get_closest_marker("per_day")
    with db.primary() as conn:
        sample.fill(conn, days=DAYS, per_day=mark.args[0] if mark else PER_DAY)
    db.sync()
    return db


@pytest.fixture
def config(datanommer: Database) -> Config:
    return make_config(datanommer)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "published"
