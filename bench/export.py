"""Benchmark: topoff export against pg_dump and psql \\copy, on the same standby, same run.

    ./run bench export [--days 30] [--per-day 50000]

Builds a datanommer-shaped database (messages with jsonb payloads, users, packages and the
two link tables) on a primary with a streaming hot standby, then reads the standby with:

* a full export: ``topoff export full --jobs 2`` against ``pg_dump -Fc`` and
  ``pg_dump | zstd`` (zstd level 3, as topoff);
* one day: ``topoff export incremental --date D`` (after the days before it are published,
  so it does its usual 3-day late-row recheck, and once more with --lookback-days 0)
  against ``psql \\copy (SELECT ... WHERE cursor in the day) TO STDOUT CSV | zstd`` for
  the same three tables.

Targets: one day within 1.3x of the psql pipeline; the full export no slower than
``pg_dump | zstd``; peak memory under 150 MB whatever the table size.
"""

from __future__ import annotations

import argparse
import shutil
from datetime import timedelta

from common import (
    CONFIG,
    CURSOR,
    WORK,
    Run,
    dir_mb,
    machine,
    print_table,
    run,
    start_source,
    topoff,
    yesterday,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=50000)
    args = ap.parse_args()
    last = yesterday()
    cluster = start_source(args.days, args.per_day, last - timedelta(days=1))
    assert cluster.standby is not None
    out = WORK / "export"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "bench.toml").write_text(CONFIG)
    src = cluster.standby.url("datanommer")
    cfg = f"--config {out / 'bench.toml'} --source {src} --quiet"
    runs: list[Run] = []
    try:
        # -- full export ---------------------------------------------------------------
        s, mem = run(topoff(f"export full {cfg} --to {out / 'topoff'} --jobs 2"))
        runs.append(Run("topoff export full -j2", "full export", s, mem, dir_mb(out / "topoff")))
        s, mem = run(f"pg_dump -Fc -d {src} -f {out / 'dump.fc'}")
        runs.append(Run("pg_dump -Fc", "full export", s, mem, dir_mb(out) - runs[0].out_mb))
        s, mem = run(f"pg_dump -d {src} | zstd -q -3 -o {out / 'dump.sql.zst'}")
        runs.append(Run("pg_dump | zstd -3", "full export", s, mem,
                        (out / "dump.sql.zst").stat().st_size / 1e6))

        # -- one day -------------------------------------------------------------------
        day = last - timedelta(days=1)  # the newest complete day of the source
        # publish the days before it, so the measured run re-checks them as every night
        run(topoff(f"export incremental {cfg} --to {out / 'topoff'} --date "
                   f"{day - timedelta(days=1)}"))
        s, mem = run(topoff(f"export incremental {cfg} --to {out / 'topoff'} --date {day}"))
        size = dir_mb(out / "topoff" / "incremental" / day.isoformat())
        runs.append(Run("topoff export incremental", "one day", s, mem, size))
        s, mem = run(topoff(f"export incremental {cfg} --to {out / 'topoff0'} --date {day} "
                            "--lookback-days 0"))
        runs.append(Run("topoff ... --lookback-days 0", "one day", s, mem,
                        dir_mb(out / "topoff0" / "incremental")))
        pipeline = []
        nxt = day + timedelta(days=1)
        for table, cursor in CURSOR.items():
            query = (f"SELECT * FROM {table} WHERE \\\"{cursor}\\\" >= '{day}' AND "
                     f"\\\"{cursor}\\\" < '{nxt}'")
            pipeline.append(f"psql -X -q -d {src} -c \"\\copy ({query}) TO STDOUT WITH (FORMAT "
                            f"csv, HEADER true)\" | zstd -q -3 -o {out / (table + '.csv.zst')}")
        s, mem = run(" && ".join(pipeline))
        runs.append(Run("psql \\copy | zstd -3", "one day", s, mem,
                        sum((out / (t + ".csv.zst")).stat().st_size for t in CURSOR) / 1e6))
    finally:
        cluster.close()
    print(f"\n{machine()}; {args.days} days x {args.per_day:,} messages\n")
    print_table("topoff export vs pg_dump and psql", runs,
                {"full export": "pg_dump | zstd -3", "one day": "psql \\copy | zstd -3"})


if __name__ == "__main__":
    main()
