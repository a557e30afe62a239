"""Benchmark: the canonical row hash (verify, reconcile, backup table hashes, replicate's
snapshot change detection) with and without the escaping of U+001D-U+001F in the values
that may hold any character.

    ./run bench canonical_hash [--days 10] [--per-day 50000] [--repeat 3]

Builds the datanommer-shaped database in a throwaway cluster, then hashes every table as
the backup's table hashes do (:func:`topoff.backup.tables.table_hash`), interleaved
``--repeat`` times (the order alternates): once as topoff hashes today, once with
``topoff.canonical.FREE_TEXT`` emptied, which is the hash before the escaping (every value
written as it is). Reported: median wall seconds of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

from topoff import canonical
from topoff.backup.tables import list_tables, table_hash
from topoff.demo import sample
from topoff.demo.cluster import throwaway_cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--per-day", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    free = canonical.FREE_TEXT
    times: dict[str, list[float]] = {"escaped (today)": [], "unescaped (before)": []}
    with throwaway_cluster(standby=False) as cluster:
        cluster.create_database("b")
        with cluster.primary.connect("b") as conn:
            n = sample.fill(conn, days=args.days, per_day=args.per_day)
            conn.execute("VACUUM ANALYZE")
        print(f"# {n:,} messages over {args.days} days", flush=True)
        with psycopg.connect(cluster.primary.url("b"), autocommit=True) as conn:
            tables = list_tables(conn)
            for table in tables:  # warm the cache
                table_hash(conn, table)
            for r in range(args.repeat):
                order = list(times) if r % 2 == 0 else list(reversed(times))
                for label in order:
                    canonical.FREE_TEXT = free if label.startswith("escaped") else frozenset()
                    start = time.perf_counter()
                    for table in tables:
                        table_hash(conn, table)
                    times[label].append(time.perf_counter() - start)
    canonical.FREE_TEXT = free
    base = statistics.median(times["unescaped (before)"])
    print("| hash of every table | seconds (median) | ratio |")
    print("|---|---:|---:|")
    for label, ts in times.items():
        m = statistics.median(ts)
        print(f"| {label} | {m:.2f} | {m / base:.2f}x |")


if __name__ == "__main__":
    main()
