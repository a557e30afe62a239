"""Benchmark: topping off a replica by one day, against a full restore and a bare psql load.

    ./run bench sync [--days 30] [--per-day 50000]

A datanommer-shaped source (primary + streaming standby) holds days 1..N-1; topoff
publishes a full export, served over HTTP on loopback, and two replicas are built from it
on a separate PostgreSQL server (plus a DuckDB file). Then day N is written on the primary
and published as one incremental partition, and three ways to get it are timed:

* ``topoff sync http://... postgresql://...`` and ``... replica.duckdb``: download, check
  sha256, apply the day in one transaction with its ledger row;
* ``pg_restore -j 2`` of a ``pg_dump -Fc`` of the source (what a full re-download means);
* ``psql``: the same day's files, already on disk, loaded with ``\\copy ... FROM PROGRAM
  'zstd -dc ...'`` after deleting the day's rows (no download, no checks, no ledger).

Targets: the one-day top-off at least 20x faster than the full restore, within 1.5x of
the bare psql load, and the DuckDB target no slower than the PostgreSQL one.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=50000)
    args = ap.parse_args()
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
    for db in ("replica", "replica_psql", "restored"):
        replicas.primary.execute(f"CREATE DATABASE {db}")
    pg_replica, psql_replica = replicas.primary.url("replica"), replicas.primary.url("replica_psql")
    duck = out / "replica.duckdb"
    cache = f"--cache-dir {out / 'cache'}"
    runs: list[Run] = []
    try:
        s, mem = run(topoff(f"export full {cfg} --to {published}"))
        print(f"# full export: {s:.1f}s, {dir_mb(published):.0f} MB", flush=True)
        for target, label in ((pg_replica, "postgresql"), (psql_replica, "postgresql"),
                              (duck, "duckdb")):
            s, mem = run(topoff(f"sync {url} {target} --quiet {cache}"))
            runs.append(Run(f"topoff sync -> {label}", f"build replica ({args.days - 1} days)",
                            s, mem))

        with source.primary.connect("datanommer") as conn:
            sample.add_messages(conn, new_day, args.per_day)
        source.wait_replay(timeout=600)
        run(topoff(f"export incremental {cfg} --to {published} --date {new_day}"))
        day_mb = dir_mb(published / "incremental" / new_day.isoformat())
        task = f"add day {args.days}"
        s, mem = run(topoff(f"sync {url} {pg_replica} --quiet {cache}"))
        runs.append(Run("topoff sync -> postgresql", task, s, mem, day_mb))
        s, mem = run(topoff(f"sync {url} {duck} --quiet {cache}"))
        runs.append(Run("topoff sync -> duckdb", task, s, mem, day_mb))
        script = out / "day.sql"
        script.write_text(psql_day_script(published, new_day.isoformat()))
        s, mem = run(f"psql -X -q -v ON_ERROR_STOP=1 -d {psql_replica} -f {script}")
        runs.append(Run("psql \\copy (files on disk)", task, s, mem, day_mb))

        dump = out / "dump.fc"
        s, _ = run(f"pg_dump -Fc -d {src} -f {dump}")
        print(f"# pg_dump -Fc: {s:.1f}s, {dump.stat().st_size / 1e6:.0f} MB", flush=True)
        s, mem = run(f"pg_restore -j 2 -d {replicas.primary.url('restored')} {dump}")
        runs.append(Run("pg_restore -j 2 (full)", task, s, mem, dump.stat().st_size / 1e6))
        s, mem = run(topoff(f"verify {pg_replica} --against {src} --quiet"))
        runs.append(Run("topoff verify (postgresql)", "check", s, mem))
        s, mem = run(topoff(f"verify {duck} --against {src} --quiet"))
        runs.append(Run("topoff verify (duckdb)", "check", s, mem))
    finally:
        server.shutdown()
        source.close()
        replicas.close()
    print(f"\n{machine()}; {args.days} days x {args.per_day:,} messages\n")
    print_table("topping off one day vs a full restore and a bare psql load", runs,
                {task: "psql \\copy (files on disk)"})
    restore = next(r for r in runs if r.tool.startswith("pg_restore"))
    for r in runs:
        if r.task == task and r is not restore:
            print(f"{r.tool}: {restore.seconds / r.seconds:.0f}x faster than the full restore")


if __name__ == "__main__":
    main()
