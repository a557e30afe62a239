"""Benchmark: reconcile a 1,000,000-row replica with 100 scattered differences.

    ./run bench replicate_reconcile [--rows 1000000] [--changes 100] [--repeat 3]

A source table (``events``: bigint key, text, float8, timestamptz, jsonb) on a primary with
a streaming hot standby, and its replica in another database of the primary (a PostgreSQL
target), copied whole. Then on the source: a third of ``--changes`` rows deleted, a third
updated, a third inserted, scattered over the key range. Timed side by side, on the same
tables in the same run:

* ``topoff``: :func:`topoff.replicate.repair.reconcile_table` (one snapshot of the standby,
  key-range bisection, then the repair in one replica transaction): detect AND repair;
* ``reladiff`` (PyPI, in its own virtualenv under bench/work/): detect only (its default
  hash-diff between two databases), printing the differing rows;
* ``topoff (Iceberg replica)``: ``topoff replicate --reconcile`` of the same table
  replicated into an Iceberg table (SQL catalog on SQLite, local warehouse) before the
  changes: every row of both sides compared (replicate.iceberg_reconcile), then repaired
  in one commit.

Before each run the replicas are put back to their stale state (untimed; the Iceberg table
by rolling back to its stale snapshot). Target (issue 7, the PostgreSQL replica): topoff's
detect + repair faster than reladiff's detect alone; peak memory under 200 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import WORK, Run, machine, median_runs, print_table
from topoff.demo.cluster import ThrowawayCluster

RELADIFF_VENV = WORK / "reladiff-venv"
COLUMNS = ["name", "score", "at", "body"]


def reladiff_bin() -> Path:
    exe = RELADIFF_VENV / "bin" / "reladiff"
    if not exe.exists():
        print("# installing reladiff into bench/work/reladiff-venv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(RELADIFF_VENV)], check=True)
        subprocess.run([str(RELADIFF_VENV / "bin" / "pip"), "install", "-q",
                        "reladiff[postgresql]"], check=True)
    return exe


def build(cluster: ThrowawayCluster, rows: int, changes: int,
          before_changes: Callable[[], None] | None = None) -> list[int]:
    """The source and its replica (and ``before_changes``' one); returns the keys the
    changes touch."""
    cluster.create_database("src")
    cluster.create_database("replica")
    with cluster.primary.connect("src") as conn:
        conn.execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, name text NOT NULL, score float8, "
            "at timestamptz NOT NULL, body jsonb); "
            "INSERT INTO events SELECT g * 10, 'event ' || md5(g::text), g / 7.0, "
            "'2026-01-01'::timestamptz + g * interval '1 s', jsonb_build_object('g', g, "
            f"'tags', jsonb_build_array('a', 'b')) FROM generate_series(1, {rows}) g")
        conn.execute("VACUUM ANALYZE events")
    with cluster.primary.connect("src") as src, cluster.primary.connect("replica") as dst:
        dst.execute("CREATE SCHEMA replica; CREATE TABLE replica.events (id bigint, name text, "
                    "score float8, at timestamptz, body jsonb)")
        with src.cursor().copy("COPY events TO STDOUT") as out, \
                dst.cursor().copy("COPY replica.events FROM STDIN") as into:
            for block in out:
                into.write(block)
        dst.execute("ALTER TABLE replica.events ADD PRIMARY KEY (id)")
    if before_changes is not None:
        cluster.wait_replay(timeout=600)
        before_changes()
    rnd = random.Random(2026)
    picked = rnd.sample(range(1, rows + 1), changes)
    third = changes // 3
    deletes, updates, inserts = picked[:third], picked[third:2 * third], picked[2 * third:]
    with cluster.primary.connect("replica") as dst:  # the stale rows, to put back each run
        dst.execute("CREATE TABLE replica.stale AS SELECT * FROM replica.events WHERE id = "
                    "ANY(%s)", ([10 * i for i in deletes + updates],))
    with cluster.primary.connect("src") as conn:
        conn.execute("DELETE FROM events WHERE id = ANY(%s)", ([10 * i for i in deletes],))
        conn.execute("UPDATE events SET score = score + 1 WHERE id = ANY(%s)",
                     ([10 * i for i in updates],))
        conn.execute("INSERT INTO events SELECT 10 * g + 5, 'new', 0, now(), NULL "
                     "FROM unnest(%s::int[]) g", (inserts,))
    cluster.wait_replay(timeout=600)
    return [10 * i for i in deletes + updates] + [10 * i + 5 for i in inserts]


def make_stale(cluster: ThrowawayCluster, keys: list[int]) -> None:
    with cluster.primary.connect("replica") as dst:
        dst.execute("DELETE FROM replica.events WHERE id = ANY(%s)", (keys,))
        dst.execute("INSERT INTO replica.events SELECT * FROM replica.stale")
        dst.execute("ANALYZE replica.events")


def run_topoff(source: str, target: str) -> None:
    """The timed topoff process: reconcile and repair, print the report."""
    from topoff.replicate.config import ReplicateTable
    from topoff.replicate.describe import describe
    from topoff.replicate.read import open_snapshot
    from topoff.replicate.repair import reconcile_table
    from topoff.targets import open_target
    from topoff.targets.base import TableDef, TableRef

    t = ReplicateTable("src", "public", "events", "snapshot")
    conn = open_snapshot(source, False)
    info = describe(conn, t)
    conn.close()
    tdef = TableDef("public.events", TableRef("replica", "events"), "snapshot",
                    list(info.columns), list(info.key), None, None, "UTC",
                    ("public", "events"))
    with open_target(target) as engine:
        r = reconcile_table(source, False, t, engine, tdef)
    print(json.dumps({"compared": r.compared_rows, "ranges": r.ranges_hashed,
                      "inserted": r.inserted, "updated": r.updated, "deleted": r.deleted,
                      "seconds": round(r.seconds, 3)}), file=sys.stderr, flush=True)


def iceberg_replica(source: str) -> tuple[Path, int]:
    """``events`` replicated into an Iceberg table (before the changes): its config file
    and the table's snapshot id (the stale state each run starts from)."""
    from replicate_peers import topoff_config
    from topoff.replicate.config import load_replicate
    from topoff.replicate.engine import run_once
    from topoff.replicate.iceberg_apply import IcebergReplica

    lake = WORK / "reconcile-lake"
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir(parents=True)
    (lake / "catalog.toml").write_text('uri = "sqlite:///catalog.db"\nwarehouse = "wh"\n')
    path = topoff_config(lake / "replica.toml", f"iceberg:{lake / 'catalog.toml'}", source,
                         "public", {"events": {"method": "snapshot"}})
    config = load_replicate(path)
    [run] = run_once(config)
    assert run.status == "ok", run.error
    s, t = config.sources[0], config.sources[0].tables[0]
    table, _ = IcebergReplica(config.target).load(s, t)
    return path, table.metadata.current_snapshot_id


def iceberg_stale(path: Path, snapshot_id: int) -> None:
    from topoff.replicate.config import load_replicate
    from topoff.replicate.iceberg_apply import IcebergReplica

    config = load_replicate(path)
    s, t = config.sources[0], config.sources[0].tables[0]
    table, _ = IcebergReplica(config.target).load(s, t)
    if table.metadata.current_snapshot_id != snapshot_id:
        table.manage_snapshots().rollback_to_snapshot(snapshot_id).commit()


def run_iceberg(path: str) -> None:
    from topoff.replicate.config import load_replicate
    from topoff.replicate.operate import reconcile

    config = load_replicate(path)
    r = reconcile(config, "events")
    print(json.dumps({"compared": r.compared_rows, "inserted": r.inserted,
                      "updated": r.updated, "deleted": r.deleted,
                      "seconds": round(r.seconds, 3)}), file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--topoff-run", nargs=2, metavar=("SOURCE", "TARGET"), help=argparse.SUPPRESS)
    ap.add_argument("--no-iceberg", action="store_true", help="leave the Iceberg replica out")
    ap.add_argument("--iceberg-run", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("--iceberg-build", metavar="SOURCE", help=argparse.SUPPRESS)
    ap.add_argument("--iceberg-stale", nargs=2, metavar=("CONFIG", "SNAPSHOT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.topoff_run:
        run_topoff(*args.topoff_run)
        return
    if args.iceberg_run:
        run_iceberg(args.iceberg_run)
        return
    if args.iceberg_stale:
        iceberg_stale(Path(args.iceberg_stale[0]), int(args.iceberg_stale[1]))
        return
    if args.iceberg_build:  # in a process of its own: this one stays small, and the
        path, snap = iceberg_replica(args.iceberg_build)  # peak RSS of the tools it forks
        print(json.dumps([str(path), snap]))              # with it
        return
    reladiff = reladiff_bin()
    WORK.mkdir(parents=True, exist_ok=True)
    cluster = ThrowawayCluster(primary_conf={"max_wal_size": "4GB", "shared_buffers": "256MB"},
                               standby_conf={"shared_buffers": "256MB",
                                             "max_standby_streaming_delay": "-1"})
    cluster.start()
    try:
        started = time.monotonic()
        assert cluster.standby is not None
        ice: list[tuple[Path, int]] = []
        standby_src = cluster.standby.url("src")
        def iceberg() -> None:
            out = subprocess.run([sys.executable, __file__, "--iceberg-build", standby_src],
                                 check=True, capture_output=True, text=True).stdout
            path, snap = json.loads(out.strip().splitlines()[-1])
            ice.append((Path(path), int(snap)))
        keys = build(cluster, args.rows, args.changes, None if args.no_iceberg else iceberg)
        print(f"# built {args.rows:,} rows and their replica in "
              f"{time.monotonic() - started:.0f}s", flush=True)
        assert cluster.standby is not None
        source, target = cluster.standby.url("src"), cluster.primary.url("replica")
        here = Path(__file__).resolve()
        topoff_cmd = (f"{sys.executable} {here} --topoff-run '{source}' '{target}'")
        # reladiff: hash-diff between the two databases (detect only), rows printed
        rd_cmd = (f"{reladiff} '{source}' events '{target}' replica.events -k id "
                  + " ".join(f"-c {c}" for c in COLUMNS) + " > /dev/null")
        runs: list[Run] = median_runs([
            ("topoff reconcile (detect + repair)", "reconcile", topoff_cmd,
             lambda: make_stale(cluster, keys)),
            ("reladiff (detect only)", "reconcile", rd_cmd, lambda: make_stale(cluster, keys)),
            *[("topoff reconcile, Iceberg replica (detect + repair)", "reconcile",
               f"{sys.executable} {here} --iceberg-run {path}",
               lambda p=path, n=snap: subprocess.run(
                   [sys.executable, __file__, "--iceberg-stale", str(p), str(n)], check=True))
              for path, snap in ice],
        ], args.repeat)
        found = subprocess.run(f"{reladiff} '{source}' events '{target}' replica.events -k id "
                               + " ".join(f"-c {c}" for c in COLUMNS) + " --stats",
                               shell=True, capture_output=True, text=True).stdout
        make_stale(cluster, keys)
        print("# reladiff --stats on the stale replica: " + " / ".join(
            line.strip() for line in found.splitlines() if line.strip()))
        print(f"\n{machine()}; {args.rows:,} rows, {args.changes} differences "
              f"({args.changes // 3} deleted, {args.changes // 3} updated, "
              f"{args.changes - 2 * (args.changes // 3)} inserted)\n")
        print_table("reconcile by key ranges vs reladiff", runs,
                    {"reconcile": "reladiff (detect only)"})
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
