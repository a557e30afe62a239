"""Benchmark: topoff export against pg_dump and psql \\copy, on the same standby, same run.

    ./run bench export [--days 30] [--per-day 50000] [--big-day 400000] [--repeat 3]
                       [--compare SRC] [--full-only]

Builds a datanommer-shaped database (messages with jsonb payloads, users, packages and the
two link tables) on a primary with a streaming hot standby, then reads the standby with:

* a full export: ``topoff export full --jobs 2`` against ``pg_dump -Fc`` and
  ``pg_dump | zstd`` (zstd level 3, as topoff);
* one day: ``topoff export incremental --date D`` (after the days before it are published,
  so it does its usual 3-day late-row recheck; and once more with --lookback-days 0)
  against ``psql \\copy (SELECT ... WHERE cursor in the day) TO STDOUT CSV | zstd`` for
  the same three tables; for an ordinary day of the database, and for the newest day,
  which holds ``--big-day`` messages (about 50 MB compressed, datanommer's daily size);
  then one more -j2 run with --verbose prints the export's own breakdown of its time
  (snapshot, catalog, counts, re-check, reads, publish);
* the re-check's slow path: the ordinary day again after a no-op UPDATE in the day before
  it, which the re-check then has to hash, against the same export without re-check.

Each command runs ``--repeat`` times, interleaved with the others; the median is shown.
``--compare SRC`` also runs the full exports with the topoff package in the directory SRC
(e.g. an older commit's ``src``, from ``git archive``), shown as "before: ...": a
before/after comparison in the same run. ``--full-only`` leaves out the one-day exports.
Targets: one day within 1.3x of the psql pipeline; the full export no slower than
``pg_dump | zstd``; peak memory under 150 MB whatever the table size.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

from common import (
    CONFIG,
    CURSOR,
    WORK,
    Run,
    dir_mb,
    machine,
    median_runs,
    print_table,
    run,
    start_source,
    topoff,
    yesterday,
)
from topoff.demo import sample


def fresh(path: Path, like: Path | None = None):  # type: ignore[no-untyped-def]
    """A callable that empties ``path`` (or makes it a copy of ``like``) before a run."""
    def prepare() -> None:
        shutil.rmtree(path, ignore_errors=True)
        if like is not None:
            shutil.copytree(like, path)
    return prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big-day", type=int, default=400000)
    ap.add_argument("--compare", metavar="SRC", help="also run the full exports with the "
                    "topoff package in this directory (before/after, same run)")
    ap.add_argument("--full-only", action="store_true", help="no one-day exports")
    args = ap.parse_args()
    last = yesterday()
    cluster = start_source(args.days - 1, args.per_day, last - timedelta(days=1))
    assert cluster.standby is not None
    with cluster.primary.connect("datanommer") as conn:
        sample.add_messages(conn, last, args.big_day)
    cluster.wait_replay(timeout=600)
    out = WORK / "export"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "bench.toml").write_text(CONFIG)
    src = cluster.standby.url("datanommer")
    cfg = f"--config {out / 'bench.toml'} --source {src} --quiet"
    try:
        contenders = [
            ("topoff export full -j1", "full export",
             topoff(f"export full {cfg} --to {out / 'full1'} --jobs 1"), fresh(out / "full1")),
            ("topoff export full -j2", "full export",
             topoff(f"export full {cfg} --to {out / 'full'} --jobs 2"), fresh(out / "full")),
            ("pg_dump -Fc", "full export", f"pg_dump -Fc -d {src} -f {out / 'dump.fc'}", None),
            ("pg_dump | zstd -3", "full export",
             f"pg_dump -d {src} | zstd -q -f -3 -o {out / 'dump.sql.zst'}", None),
        ]
        if args.compare:
            for jobs in (1, 2):
                target = out / f"cmp{jobs}"
                contenders.append((f"before: topoff export full -j{jobs}",
                                   "full export", topoff(f"export full {cfg} --to {target} "
                                                         f"--jobs {jobs}", args.compare),
                                   fresh(target)))
        servers = [cluster.standby.datadir, cluster.primary.datadir]
        full = median_runs(contenders, args.repeat, servers)
        full[0].out_mb = dir_mb(out / "full1")
        full[1].out_mb = dir_mb(out / "full")
        full[2].out_mb = (out / "dump.fc").stat().st_size / 1e6
        full[3].out_mb = (out / "dump.sql.zst").stat().st_size / 1e6
        for run_, jobs in zip(full[4:], (1, 2), strict=False):
            run_.out_mb = dir_mb(out / f"cmp{jobs}")
        days = [(last - timedelta(days=1), f"one day ({args.per_day // 1000}k messages)"),
                (last, f"one day ({args.big_day // 1000}k messages)")]
        one = []
        rehash_task = f"one day ({args.per_day // 1000}k), the day before re-hashed"
        if not args.full_only:
            for day, task in days:
                one += _one_day(out, cfg, src, day, task, args.repeat, servers)
            one += _rehash(out, cfg, src, cluster, days[0][0], rehash_task, args.repeat,
                           servers)
    finally:
        cluster.close()
    print(f"\n{machine()}; {args.days - 1} days x {args.per_day:,} messages and one of "
          f"{args.big_day:,}; median of {args.repeat} runs\n")
    print_table("topoff export vs pg_dump and psql", full + one,
                {"full export": "pg_dump | zstd -3",
                 **{task: "psql \\copy | zstd -3" for _, task in days},
                 rehash_task: "topoff ... -j2 --lookback-days 0"})


def _one_day(out: Path, cfg: str, src: str, day: date, task: str, repeat: int,
             servers: list[Path]) -> list[Run]:
    """topoff export incremental of ``day`` against the psql pipeline for the same rows."""
    # The days before it are published once, so each measured run re-checks them.
    base = out / f"base-{day}"
    run(topoff(f"export incremental {cfg} --to {base} --date {day - timedelta(days=1)}"))
    nxt = day + timedelta(days=1)
    pipeline = []
    for table, cursor in CURSOR.items():
        query = (f"SELECT * FROM {table} WHERE \\\"{cursor}\\\" >= '{day}' AND "
                 f"\\\"{cursor}\\\" < '{nxt}'")
        pipeline.append(f"psql -X -q -d {src} -c \"\\copy ({query}) TO STDOUT WITH (FORMAT "
                        f"csv, HEADER true)\" | zstd -q -f -3 -o {out / (table + '.csv.zst')}")
    runs = median_runs([
        ("topoff export incremental -j2", task,
         topoff(f"export incremental {cfg} --to {out / 'inc'} --date {day}"),
         fresh(out / "inc", base)),
        ("topoff export incremental -j1", task,
         topoff(f"export incremental {cfg} --to {out / 'inc1'} --date {day} --jobs 1"),
         fresh(out / "inc1", base)),
        ("topoff ... -j2 --lookback-days 0", task,
         topoff(f"export incremental {cfg} --to {out / 'inc0'} --date {day} "
                "--lookback-days 0"), fresh(out / "inc0", base)),
        ("psql \\copy | zstd -3", task, " && ".join(pipeline), None),
    ], repeat, servers)
    for run_, name in zip(runs, ("inc", "inc1", "inc0"), strict=False):
        run_.out_mb = dir_mb(out / name / "incremental" / day.isoformat())
    runs[3].out_mb = sum((out / (t + ".csv.zst")).stat().st_size for t in CURSOR) / 1e6
    _phases(out, cfg, day, task, base)
    return runs


def _phases(out: Path, cfg: str, day: date, task: str, base: Path) -> None:
    """One more -j2 run with --verbose: the export's own breakdown of its time."""
    fresh(out / "inc", base)()
    loud = cfg.replace(" --quiet", "")  # --quiet would hide the debug line
    cmd = topoff(f"export incremental {loud} --to {out / 'inc'} --date {day} --verbose")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True)
    found = [ln.split("timings: ", 1)[1] for ln in proc.stderr.splitlines() if "timings: " in ln]
    print(f"# {task}, -j2: {found[-1] if found else 'no timings logged'}", flush=True)


def _rehash(out: Path, cfg: str, src: str, cluster, day: date, task: str,  # type: ignore[no-untyped-def]
            repeat: int, servers: list[Path]) -> list[Run]:
    """The re-check's slow path: a no-op UPDATE of one row of the day before ``day`` leaves
    its count as it was but gives it a newer xmin, so every run hashes that day again
    (cs1: its COPY is read once more, without compression). Against the same export with
    no re-check at all."""
    prev = day - timedelta(days=1)
    with cluster.primary.connect("datanommer") as conn:
        conn.execute("UPDATE messages SET topic = topic WHERE id = (SELECT min(id) FROM "
                     "messages WHERE \"timestamp\" >= %s AND \"timestamp\" < %s)", (prev, day))
    cluster.wait_replay(timeout=600)
    base = out / f"base-{day}"
    return median_runs([
        ("topoff export incremental -j2", task,
         topoff(f"export incremental {cfg} --to {out / 'rh'} --date {day}"),
         fresh(out / "rh", base)),
        ("topoff ... -j2 --lookback-days 0", task,
         topoff(f"export incremental {cfg} --to {out / 'rh0'} --date {day} "
                "--lookback-days 0"), fresh(out / "rh0", base)),
    ], repeat, servers)


if __name__ == "__main__":
    main()
