"""Benchmark: topping off a replica by one day, against a full restore and a bare psql load.

    ./run bench sync [--days 30] [--per-day 50000] [--new-day 50000] [--repeat 3]

A datanommer-shaped source (primary + streaming standby) holds days 1..N-1; topoff
publishes a full export and the nightly partitions of day N-1, served over HTTP on
loopback, and replicas are built from them on a separate PostgreSQL server and in a DuckDB
file. Then day N is written on the primary
and published as one incremental partition, and three ways to get it are timed:

* ``topoff sync http://... postgresql://...`` and ``... replica.duckdb``: download, check
  sha256, apply the day in one transaction with its ledger row;
* ``pg_restore -j 2`` of a ``pg_dump -Fc`` of the source (what a full re-download means);
* ``psql``: the same day's files, already on disk, loaded with ``\\copy ... FROM PROGRAM
  'zstd -dc ...'`` after deleting the day's rows (no download, no checks, no ledger).

Targets: the one-day top-off at least 20x faster than the full restore, within 1.5x of
the bare psql load, and the DuckDB target no slower than the PostgreSQL one.

    ./run bench sync --memory [--days 15] [--per-day 50000] [--limits default,80%] [--reuse]

Peak memory of building a DuckDB replica as the dataset doubles: a source of --days days,
then one of twice as many, each published as a full export and loaded into a new DuckDB
file under each --limits (``default``: topoff's 1GB; ``80%``: DuckDB's own default, what
topoff used before; or a size). Target: the peak stays under the limit when the dataset
doubles.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import threading
from datetime import timedelta
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
from topoff.demo.cluster import ThrowawayCluster


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def psql_day_script(published: Path, label: str) -> str:
    """DELETE the day's rows and \\copy its files, for the three cursor tables."""
    pub = sorted((published / "incremental" / label).iterdir())[-1]
    manifest = json.loads((pub / "manifest.json").read_text())
    lines = ["BEGIN;"]
    for table, cursor in CURSOR.items():
        entry = manifest["tables"][f"public.{table}"]
        lo, hi = manifest["window"]["start"][:10], manifest["window"]["end"][:10]
        lines.append(f"DELETE FROM {table} WHERE \"{cursor}\" >= '{lo}' AND \"{cursor}\" < '{hi}';")
        cols = ", ".join(f'"{c["name"]}"' for c in entry["columns"])
        for f in entry["files"]:
            lines.append(f"\\copy {table} ({cols}) FROM PROGRAM 'zstd -dc {pub / f['path']}' "
                         "WITH (FORMAT csv, HEADER true)")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def _ram_80() -> str:
    """DuckDB's default memory limit: 80% of the machine's RAM."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    kib = next(int(ln.split()[1]) for ln in meminfo if ln.startswith("MemTotal"))
    return f"{kib * 8 // 10 // 1024}MB"


def memory(days: int, per_day: int, limits: list[str], reuse: bool) -> None:
    """Peak RSS of a DuckDB build at ``days`` and ``2 * days`` days of messages, under each
    memory limit ("default" is topoff's, "80%" DuckDB's own default)."""
    runs: list[Run] = []
    for n in (days, 2 * days):
        out = WORK / "sync-memory" / f"{n}x{per_day}"
        published = out / "published"
        if not (reuse and (published / "index.json").exists()):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            (out / "bench.toml").write_text(CONFIG)
            source = start_source(n, per_day, yesterday())
            assert source.standby is not None
            try:
                cfg = (f"--config {out / 'bench.toml'} --source "
                       f"{source.standby.url('datanommer')} --quiet")
                run(topoff(f"export full {cfg} --to {published}"))
            finally:
                source.close()
        size = dir_mb(published)
        for limit in limits:
            duck = out / "replica.duckdb"
            for f in (duck, out / "replica.duckdb.wal"):
                f.unlink(missing_ok=True)
            value = {"default": None, "80%": _ram_80()}.get(limit, limit)
            option = f" --memory-limit {value}" if value else ""
            s, mem = run(topoff(f"sync {published} {duck} --quiet{option}"))
            label = {"default": "1GB (default)", "80%": f"{value} (80% of RAM)"}.get(limit,
                                                                                   limit)
            runs.append(Run(f"topoff sync -> duckdb, limit {label}",
                            f"build replica ({n} days, {n * per_day // 1000}k messages)", s,
                            mem, size))
            print(f"# {runs[-1].task}, limit {label}: {s:.1f}s, peak {mem:.0f} MB", flush=True)
    print(f"\n{machine()}; {per_day:,} messages a day; output MB: the full export's size\n")
    print_table("peak memory of a DuckDB build as the dataset doubles", runs, {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory", action="store_true",
                    help="only the peak memory of DuckDB builds, at --days and twice that")
    ap.add_argument("--days", type=int, default=None, help="[default: 30; 15 with --memory]")
    ap.add_argument("--limits", default="default,80%",
                    help="--memory: the limits to build under [default: default,80%%]")
    ap.add_argument("--reuse", action="store_true",
                    help="--memory: keep the datasets of an earlier run in bench/work")
    ap.add_argument("--per-day", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--new-day", type=int, default=None,
                    help="messages in the day added last [default: --per-day]")
    args = ap.parse_args()
    if args.memory:
        memory(args.days or 15, args.per_day, args.limits.split(","), args.reuse)
        return
    args.days = args.days or 30
    new_rows = args.new_day or args.per_day
    new_day = yesterday()
    source = start_source(args.days - 1, args.per_day, new_day - timedelta(days=1))
    assert source.standby is not None
    replicas = ThrowawayCluster(standby=False,
                                primary_conf={"max_wal_size": "4GB", "shared_buffers": "256MB",
                                              "checkpoint_timeout": "30min"}).start()
    out = WORK / "sync"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "bench.toml").write_text(CONFIG)
    src = source.standby.url("datanommer")
    cfg = f"--config {out / 'bench.toml'} --source {src} --quiet"
    published = out / "published"
    server, url = serve(published)
    pg = replicas.primary
    pg.execute("CREATE DATABASE replica")
    duck, duck_run = out / "replica.duckdb", out / "run.duckdb"
    cache = out / "cache"
    runs: list[Run] = []
    try:
        s, mem = run(topoff(f"export full {cfg} --to {published}"))
        print(f"# full export: {s:.1f}s, {dir_mb(published):.0f} MB", flush=True)
        # The nightly export of the day before: replicas are built from the full export and
        # these partitions, so that day N is the only thing left to top off.
        run(topoff(f"export incremental {cfg} --to {published} --date "
                   f"{new_day - timedelta(days=1)}"))
        for target, label in ((pg.url("replica"), "postgresql"), (duck, "duckdb")):
            s, mem = run(topoff(f"sync {url} {target} --quiet --cache-dir {cache}"))
            runs.append(Run(f"topoff sync -> {label}", f"build replica ({args.days - 1} days)",
                            s, mem))

        with source.primary.connect("datanommer") as conn:
            sample.add_messages(conn, new_day, new_rows)
        source.wait_replay(timeout=600)
        run(topoff(f"export incremental {cfg} --to {published} --date {new_day}"))
        day_mb = dir_mb(published / "incremental" / new_day.isoformat())
        dump = out / "dump.fc"
        s, _ = run(f"pg_dump -Fc -d {src} -f {dump}")
        print(f"# pg_dump -Fc: {s:.1f}s, {dump.stat().st_size / 1e6:.0f} MB", flush=True)
        script = out / "day.sql"
        script.write_text(psql_day_script(published, new_day.isoformat()))

        def clone() -> None:  # the day-29 replica again, and nothing downloaded yet
            pg.execute("DROP DATABASE IF EXISTS run")
            pg.execute("CREATE DATABASE run TEMPLATE replica")
            shutil.copy2(duck, duck_run)
            shutil.rmtree(cache, ignore_errors=True)

        def empty() -> None:
            pg.execute("DROP DATABASE IF EXISTS restored")
            pg.execute("CREATE DATABASE restored")

        task = f"add day {args.days} ({new_rows // 1000}k messages)"
        runs += median_runs([
            ("topoff sync -> postgresql", task,
             topoff(f"sync {url} {pg.url('run')} --quiet --cache-dir {cache}"), clone),
            ("topoff sync -> duckdb", task,
             topoff(f"sync {url} {duck_run} --quiet --cache-dir {cache}"), clone),
            ("psql \\copy (files on disk)", task,
             f"psql -X -q -v ON_ERROR_STOP=1 -d {pg.url('run')} -f {script}", clone),
            ("pg_restore -j 2 (full)", task,
             f"pg_restore -j 2 -d {pg.url('restored')} {dump}", empty),
        ], args.repeat)
        for r in runs[-4:-1]:
            r.out_mb = day_mb
        runs[-1].out_mb = dump.stat().st_size / 1e6
        clone()
        run(topoff(f"sync {url} {pg.url('run')} --quiet --cache-dir {cache}"))
        run(topoff(f"sync {url} {duck_run} --quiet --cache-dir {cache}"))
        s, mem = run(topoff(f"verify {pg.url('run')} --against {src} --quiet"))
        runs.append(Run("topoff verify (postgresql)", "check", s, mem))
        s, mem = run(topoff(f"verify {duck_run} --against {src} --quiet"))
        runs.append(Run("topoff verify (duckdb)", "check", s, mem))
    finally:
        server.shutdown()
        source.close()
        replicas.close()
    print(f"\n{machine()}; {args.days} days x {args.per_day:,} messages; one-day rows: median "
          f"of {args.repeat} runs, each from a copy of the day-{args.days - 1} replica\n")
    print_table("topping off one day vs a full restore and a bare psql load", runs,
                {task: "psql \\copy (files on disk)"})
    restore = next(r for r in runs if r.tool.startswith("pg_restore"))
    for r in runs:
        if r.task == task and r is not restore:
            print(f"{r.tool}: {restore.seconds / r.seconds:.1f}x faster than the full restore")


if __name__ == "__main__":
    main()
