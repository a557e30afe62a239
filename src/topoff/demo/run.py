"""``topoff demo``: the whole story on embedded defaults, in a temp dir, then cleaned up.

A throwaway PostgreSQL primary with a streaming hot standby, a datanommer-shaped database,
a full export and a few days published from the standby, a DuckDB replica built from them;
then a new day (and late rows for an already published one) written on the primary,
exported and applied as a top-off; the replica verified against the standby and queried.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from topoff.config import Config, parse_config
from topoff.dataset.layout import Window
from topoff.demo import sample
from topoff.demo.cluster import ThrowawayCluster
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.stores.local import LocalStore
from topoff.sync import sync
from topoff.verify import verify

log = logging.getLogger("topoff")

ANALYTICS_QUERY = """
SELECT category,
       count(*) AS messages,
       count(DISTINCT username) AS users,
       max("timestamp") AS newest
FROM public.messages
WHERE "timestamp" >= current_date - INTERVAL 3 DAY
GROUP BY category
ORDER BY messages DESC
"""


@dataclass
class Step:
    what: str
    seconds: float


@dataclass
class DemoReport:
    steps: list[Step] = field(default_factory=list)
    query: str = ANALYTICS_QUERY
    query_columns: list[str] = field(default_factory=list)
    query_rows: list[tuple[Any, ...]] = field(default_factory=list)
    verified_equal: bool = False
    kept: Path | None = None


@contextmanager
def _timed(report: DemoReport, say: Callable[[Step], None]) -> Iterator[list[str]]:
    """Time a step; the block appends its description to the yielded list."""
    started = time.monotonic()
    what: list[str] = []
    yield what
    step = Step(" ".join(what), time.monotonic() - started)
    report.steps.append(step)
    say(step)


def run_demo(days: int = 6, per_day: int = 20000, keep: Path | None = None,
             say: Callable[[Step], None] = lambda s: None) -> DemoReport:
    report = DemoReport()
    work = Path(tempfile.mkdtemp(prefix="topoff-demo-"))
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    published, replica = work / "published", work / "replica.duckdb"
    cluster = ThrowawayCluster()
    try:
        with _timed(report, say) as what:
            cluster.start()
            assert cluster.standby is not None
            version = cluster.primary.execute("SHOW server_version")[0][0].split()[0]
            what.append(f"started PostgreSQL {version}: primary on :{cluster.primary.port}, "
                        f"streaming hot standby on :{cluster.standby.port}")
        cluster.create_database("datanommer")
        with _timed(report, say) as what:
            with cluster.primary.connect("datanommer") as conn:
                n = sample.fill(conn, days=days, per_day=per_day,
                                last_day=yesterday - timedelta(days=1))
            cluster.wait_replay()
            what.append(f"filled {days} days x {per_day:,} messages ({n:,} messages, users, "
                        "packages and link tables) on the primary")
        config: Config = parse_config(tomllib.loads(sample.example_config())).with_overrides(
            source_url=cluster.standby.url("datanommer"))
        store = LocalStore(published)
        with _timed(report, say) as what:
            full = export_full(config, store)
            m = full.manifests[0]
            what.append(f"export full from the standby -> {m.publication} ({len(m.tables)} "
                        f"tables, {full.rows:,} rows, {m.total_bytes / 1e6:.1f} MB)")
        with _timed(report, say) as what:
            inc = export_incremental(config, store, Window.day(yesterday - timedelta(days=1)))
            what.append(f"export incremental --date {yesterday - timedelta(days=1)} -> "
                        f"{len(inc.publications)} daily partitions (the day and the 3 before)")
        with _timed(report, say) as what:
            first = sync(str(published), str(replica))
            what.append(f"sync -> {replica.name} built from {first.base_loaded} + "
                        f"{len(first.applied)} partitions ({first.rows:,} rows)")
        with _timed(report, say) as what:
            late_day = yesterday - timedelta(days=3)
            with cluster.primary.connect("datanommer") as conn:
                sample.add_messages(conn, yesterday, per_day)
                sample.add_messages(conn, late_day, 25, tag="late")
            cluster.wait_replay()
            what.append(f"new day {yesterday} written on the primary, and 25 late rows for "
                        f"{late_day} (already published)")
        with _timed(report, say) as what:
            inc = export_incremental(config, store, Window.day(yesterday))
            what.append("export incremental (yesterday) -> " + ", ".join(
                p.id.removeprefix("incremental/") for p in inc.publications))
        with _timed(report, say) as what:
            second = sync(str(published), str(replica))
            what.append(f"sync (top off) -> applied {len(second.applied)} partitions, "
                        f"{second.rows:,} rows")
        with _timed(report, say) as what:
            result = verify(str(replica), cluster.standby.url("datanommer"))
            report.verified_equal = result.equal
            rows = sum(t.compared_rows for t in result.tables)
            what.append(f"verify replica against the standby: "
                        f"{'equal' if result.equal else 'DIFFERENT'} ({len(result.tables)} "
                        f"tables, {rows:,} rows compared)")
        with _timed(report, say) as what:
            con = duckdb.connect(str(replica), read_only=True)
            try:
                cur = con.execute(ANALYTICS_QUERY)
                report.query_columns = [d[0] for d in cur.description or []]
                report.query_rows = cur.fetchall()
            finally:
                con.close()
            what.append("analytics query on the replica")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(published, keep / "published", dirs_exist_ok=True)
            shutil.copy2(replica, keep / "replica.duckdb")
            report.kept = keep
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)
    return report
