"""Benchmark: topoff replicate against mimeo 1.5 and pgcopydb, same tables, same run.

    ./run bench replicate [--rows 1000000] [--copy-rows 5000000] [--repeat 3]
                          [--only inserter,updater,snapshot,copy] [--jobs 2]
                          [--boundary 10m] [--lookback 1d]

A source primary with a streaming hot standby, and a separate destination PostgreSQL
server that both tools replicate into (each into its own database and schema). Every
command is what a user runs: ``topoff replicate --config FILE --once``, ``psql -c "SELECT
mimeo.refresh_inserter(...)"``, ``pgcopydb clone``. Tasks:

* inserter: the initial pull of ``--rows`` rows (topoff's first run against mimeo's
  ``inserter_maker``), then a refresh that brings ``--rows`` new rows
  (also piped by psql alone, ``\\copy`` to ``\\copy``, into a table with the same indexes and no
  check at all: what the servers' COPYs cost any tool, given no verdict);
* updater: a refresh that brings ``--rows`` new rows and ``--rows`` updated rows;
* snapshot: a refresh of a ``--rows``-row table after one row changed, and one with
  nothing changed (mimeo decides from statistics counters, topoff by its xmin rule);
* copy: the initial copy of a ``--copy-rows``-row table (topoff's first run with
  ``copy_jobs = --jobs``: that many readers in page ranges of one exported snapshot, into
  a hidden build table moved into place; ``--jobs 1``: one reader) against ``pgcopydb
  clone`` of that one table (``--table-jobs``/``--index-jobs`` the same, split by key
  ranges above 100MB); with ``--jobs`` above 1, also topoff's first build by one reader
  (a row of its own, "(one reader)", compared with pgcopydb but given no verdict).

Sources: topoff reads the standby. mimeo reads the standby through dblink for inserter
and updater, and the PRIMARY for snapshot, because its change check reads statistics
counters that a standby does not keep. pgcopydb reads the PRIMARY: it exports its snapshot
from a SERIALIZABLE DEFERRABLE transaction, which a hot standby refuses (its
``--not-consistent`` would give up the single snapshot). Each tool has its own copy of each
source table (schemas ``m`` and ``t``, same rows), so that one tool's refresh never takes
the other's new rows.

mimeo runs inside the destination server: its client (psql) does nothing, so the client
CPU and peak RSS columns are topoff's and pgcopydb's own costs, and the "server CPU" column
(CPU of both clusters' PostgreSQL processes during the command) is where mimeo's work
shows. Targets: topoff at least 3x faster than mimeo on each mimeo task, no slower than
pgcopydb, peak memory under 200 MB.

Rows are 1 ms apart (1,000 a second), all older than mimeo's 10-minute boundary (mimeo
leaves the newest 10 minutes for a later run). topoff reads no boundary again: it reads
the rows above its watermark, and checks the xmin of every row within its lookback (1 day
unless ``--lookback``: here every earlier row) for rows committed since its previous run;
that check is part of what a refresh costs. Its snapshot check reads the row count and
every row's xmin (no hashing).

Until ``topoff replicate`` is on the path, only the peers run (and say so); to try a topoff
from another checkout, put its ``src`` first: ``PYTHONPATH=/path/src ./run bench
replicate``.
"""

from __future__ import annotations

import argparse
import glob
import shutil
from collections.abc import Callable

from common import WORK, machine, run_usage, topoff
from replicate_peers import (
    DEST_SCHEMA,
    Contender,
    Source,
    floor_refresh,
    measure,
    mimeo_database,
    mimeo_sql,
    pgcopydb_clone,
    stat_total,
    topoff_config,
    topoff_replicate_ready,
    wait_stats,
)
from replicate_report import Timed, print_results, verdicts
from topoff.demo.cluster import Server, ThrowawayCluster

SCENARIOS = ("inserter", "updater", "snapshot", "copy")
CONF = {"max_wal_size": "4GB", "checkpoint_timeout": "30min", "shared_buffers": "256MB"}




class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.n = args, args.rows
        self.out = WORK / "replicate"
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        self.source = ThrowawayCluster(primary_conf=CONF, standby_conf={
            **CONF, "max_standby_streaming_delay": "-1"}).start()
        try:
            self.dest_cluster = ThrowawayCluster(standby=False, primary_conf=CONF).start()
        except BaseException:
            self.source.close()
            raise
        assert self.source.standby is not None
        self.primary, self.standby = self.source.primary, self.source.standby
        self.dest: Server = self.dest_cluster.primary
        self.source.create_database("src")
        self.src = Source(self.source)
        self.servers = [self.primary, self.standby, self.dest]
        self.topoff_ok = topoff_replicate_ready()
        self.results: list[Timed] = []
        self.wrong: list[str] = []  # destinations that do not equal their source
        #: topoff's windows behind the watermark: each refresh reads again every row within
        #: the boundary, and checks the xmin of every row within the lookback
        self.lookback = {k: v for k, v in (("boundary", args.boundary),
                                           ("lookback", args.lookback)) if v}
        self.db = {"mimeo": "bench_m", "topoff": "bench_t"}
        for tool in self.db:
            self.fresh_db(tool)

    def close(self) -> None:
        self.source.close()
        self.dest_cluster.close()

    # -- helpers ---------------------------------------------------------------------

    def fresh_db(self, tool: str) -> None:
        if tool == "mimeo":
            mimeo_database(self.dest, self.db["mimeo"], self.standby, self.primary)
        else:
            self.dest.execute(f"DROP DATABASE IF EXISTS {self.db[tool]}")
            self.dest.execute(f"CREATE DATABASE {self.db[tool]}")

    def mimeo(self, statement: str) -> str:
        return mimeo_sql(self.dest, self.db["mimeo"], statement)

    def topoff_cmd(self, name: str, tables: dict[str, dict[str, object]], schema: str = "t",
                   db: str | None = None, jobs: int | None = None) -> str | None:
        """``topoff replicate --config FILE --once`` for a config holding ``tables``."""
        cfg = topoff_config(self.out / f"{name}.toml", self.dest.url(db or self.db["topoff"]),
                            self.standby.url("src"), schema, tables)
        if not self.topoff_ok:
            return None
        jobs_opt = f" --jobs {jobs}" if jobs else ""
        return topoff(f"replicate --config {cfg} --once --quiet{jobs_opt}") + " >/dev/null"

    def measure(self, contenders: list[Contender]) -> None:
        """Each command ``--repeat`` times, interleaved (replicate_peers.measure)."""
        self.results += measure(contenders, self.args.repeat, self.servers)

    def check(self, what: str, src_table: str, tool: str, dest_table: str,
              db: str | None = None) -> None:
        """The destination holds what the source holds: count and a sum of row hashes."""
        if tool == "topoff" and not self.topoff_ok:
            return
        q = "SELECT count(*), sum(hashtext(r::text)::bigint) FROM {} r"
        want = self.primary.execute(q.format(src_table), "src")[0]
        try:
            got = self.dest.execute(q.format(dest_table), db or self.db[tool])[0]
        except Exception as e:  # reported; the bench goes on
            got = (f"unreadable: {str(e).splitlines()[0]}",)
        line = (f"check {what} ({tool}): source {want[0]:,} rows, destination "
                f"{got[0] if isinstance(got[0], str) else f'{got[0]:,} rows'}")
        if tuple(want) != tuple(got):
            line += ", NOT EQUAL to the source"
            self.wrong.append(line)
        print(f"# {line}", flush=True)

    def dest_table(self, tool: str, table: str, db: str | None = None) -> str:
        """Where ``tool`` put ``table``: its schema, or for a topoff without
        ``target_schema`` the one user schema that holds a table of that name."""
        found = self.dest.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = %s AND "
            "table_schema NOT IN ('pg_catalog', 'information_schema', 'topoff')",
            db or self.db[tool], [table])
        schemas = sorted(r[0] for r in found)
        schema = DEST_SCHEMA[tool] if DEST_SCHEMA[tool] in schemas or len(schemas) != 1 \
            else schemas[0]
        return f"{schema}.{table}"

    # -- scenarios -------------------------------------------------------------------

    def inserter(self) -> None:
        n = self.n
        for s in ("m", "t"):
            self.src.insert(f"{s}.ins", n)
        spec = {"ins": {"method": "inserter", "cursor": "ts", **self.lookback}}
        self.measure([
            ("mimeo inserter_maker", f"inserter: initial pull ({n:,} rows)",
             self.mimeo("SELECT mimeo.inserter_maker('m.ins', 'time', 'ts', 1, "
                        "p_dest_table := 'via_mimeo.ins')"), lambda: self.fresh_db("mimeo")),
            ("topoff replicate --once", f"inserter: initial pull ({n:,} rows)",
             self.topoff_cmd("ins", spec), lambda: self.fresh_db("topoff")),
        ])
        self.measure([
            ("mimeo refresh_inserter", f"inserter: {n:,} new rows",
             self.mimeo("SELECT mimeo.refresh_inserter('via_mimeo.ins')"),
             lambda: self.src.insert("m.ins", n)),
            ("topoff replicate --once", f"inserter: {n:,} new rows",
             self.topoff_cmd("ins", spec), lambda: self.src.insert("t.ins", n)),
        ])
        self.check("inserter", "m.ins", "mimeo", "via_mimeo.ins")
        if self.topoff_ok:
            self.check("inserter", "t.ins", "topoff", self.dest_table("topoff", "ins"))
            self.floor(n)

    def floor(self, n: int) -> None:
        """The inserter refresh as psql alone pipes it (replicate_peers.floor_refresh), into
        a table made like topoff's destination (its indexes): no verdict, the cost of the
        servers' COPYs that every tool pays."""
        db, cols = self.db["topoff"], "id, ts, site, kind, payload"
        self.dest.execute(f"CREATE SCHEMA floor; CREATE TABLE floor.ins (LIKE "
                          f"{self.dest_table('topoff', 'ins')} INCLUDING ALL)", db)
        cmd = floor_refresh(self.standby.url("src"), self.dest.url(db), "f.ins", "floor.ins",
                            cols)
        self.src.insert("f.ins", n)
        run_usage(cmd)  # the initial pull, untimed
        self.measure([("psql \\copy piped to psql \\copy (no checks)", f"inserter: {n:,} new rows",
                       cmd, lambda: self.src.insert("f.ins", n))])
        self.check("inserter by psql", "f.ins", "topoff", "floor.ins")

    def updater(self) -> None:
        n = self.n
        for s in ("m", "t"):
            self.src.insert(f"{s}.upd", n)
        spec = {"upd": {"method": "updater", "cursor": "ts", **self.lookback}}
        print("# updater: initial pulls (not timed)", flush=True)
        run_usage(self.mimeo("SELECT mimeo.updater_maker('m.upd', 'time', 'ts', 1, "
                             "p_dest_table := 'via_mimeo.upd')"))
        cmd = self.topoff_cmd("upd", spec)
        if cmd:
            run_usage(cmd)
        attempt = {"m": 0, "t": 0}

        def change(s: str) -> Callable[[], None]:
            def prepare() -> None:  # update the rows of one slice, then add as many
                self.src.update(f"{s}.upd", attempt[s] * n + 1, n)
                self.src.insert(f"{s}.upd", n)
                attempt[s] += 1
            return prepare

        task = f"updater: {n:,} new + {n:,} updated rows"
        self.measure([
            ("mimeo refresh_updater", task,
             self.mimeo("SELECT mimeo.refresh_updater('via_mimeo.upd')"), change("m")),
            ("topoff replicate --once", task, cmd, change("t")),
        ])
        self.check("updater", "m.upd", "mimeo", "via_mimeo.upd")
        if self.topoff_ok:
            self.check("updater", "t.upd", "topoff", self.dest_table("topoff", "upd"))

    def snapshot(self) -> None:
        n = self.n
        for s in ("m", "t"):
            self.src.insert(f"{s}.snap", n)
        spec = {"snap": {"method": "snapshot"}}
        print("# snapshot: first builds (not timed)", flush=True)
        # data source 2 = the primary: mimeo's change check needs its statistics counters
        run_usage(self.mimeo("SELECT mimeo.snapshot_maker('m.snap', 2, "
                             "p_dest_table := 'via_mimeo.snap')"))
        cmd = self.topoff_cmd("snap", spec)
        if cmd:
            run_usage(cmd)
        attempt = {"m": 0, "t": 0}

        def change(s: str) -> Callable[[], None]:
            def prepare() -> None:  # one row changes: the whole table is copied again
                before = stat_total(self.primary, f"{s}.snap")
                self.src.update(f"{s}.snap", attempt[s] + 1, 1, cursor=False)
                attempt[s] += 1
                wait_stats(self.primary, f"{s}.snap", before)
            return prepare

        refresh = self.mimeo("SELECT mimeo.refresh_snap('via_mimeo.snap')")
        self.measure([
            ("mimeo refresh_snap (primary)", f"snapshot: {n:,} rows, one changed", refresh,
             change("m")),
            ("topoff replicate --once", f"snapshot: {n:,} rows, one changed", cmd, change("t")),
        ])
        self.measure([
            ("mimeo refresh_snap (primary)", f"snapshot: {n:,} rows, unchanged", refresh, None),
            ("topoff replicate --once", f"snapshot: {n:,} rows, unchanged", cmd, None),
        ])
        self.check("snapshot", "m.snap", "mimeo", "via_mimeo.snap")
        if self.topoff_ok:
            self.check("snapshot", "t.snap", "topoff", self.dest_table("topoff", "snap"))

    def copy(self) -> None:
        n, jobs = self.args.copy_rows, self.args.jobs
        self.src.insert("c.big", n)
        # the parallel first build: jobs readers in page ranges of one exported snapshot
        spec = {"big": {"method": "inserter", "cursor": "ts", "copy_jobs": jobs}}

        def fresh(db: str) -> Callable[[], None]:
            def prepare() -> None:
                self.dest.execute(f"DROP DATABASE IF EXISTS {db}")
                self.dest.execute(f"CREATE DATABASE {db}")
                shutil.rmtree(self.out / "pgcopydb" / "run", ignore_errors=True)
            return prepare

        task = f"initial copy ({n:,} rows)"
        contenders: list[Contender] = [
            (f"pgcopydb clone (--table-jobs {jobs})", task,
             pgcopydb_clone(self.primary.url("src"), self.dest.url("copy_p"),
                            self.out / "pgcopydb", "c.big", jobs), fresh("copy_p")),
            (f"topoff replicate --once (copy_jobs = {jobs})", task,
             self.topoff_cmd("big", spec, schema="c", db="copy_t"), fresh("copy_t"))]
        if jobs > 1:  # what the readers bring: the same first build by one reader
            one = {"big": {**spec["big"], "copy_jobs": 1}}
            contenders.append(("(one reader) topoff replicate --once (copy_jobs = 1)", task,
                               self.topoff_cmd("big1", one, schema="c", db="copy_t1"),
                               fresh("copy_t1")))
        self.measure(contenders)
        self.check("copy", "c.big", "pgcopydb", "c.big", db="copy_p")
        if self.topoff_ok:
            self.check("copy", "c.big", "topoff", self.dest_table("topoff", "big", "copy_t"),
                       db="copy_t")
            if jobs > 1:
                self.check("copy", "c.big", "topoff", self.dest_table("topoff", "big",
                                                                     "copy_t1"), db="copy_t1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000,
                    help="rows per mimeo task [default: 1000000]")
    ap.add_argument("--copy-rows", type=int, default=None,
                    help="rows of the table copied against pgcopydb [default: 5000000, or "
                    "5x --rows when --rows is given]")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2, help="parallel jobs of the copy task")
    ap.add_argument("--boundary", default=None,
                    help="topoff's boundary for the inserter and updater tables (10m, 1s) "
                    "[default: topoff's, 10m]; each refresh reads its rows again")
    ap.add_argument("--lookback", default=None,
                    help="topoff's lookback for the inserter and updater tables (1d, 1s) "
                    "[default: topoff's, 1d]; each refresh checks the xmin of its rows")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"comma-separated scenarios [default: {','.join(SCENARIOS)}]")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        ap.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    if args.copy_rows is None:
        args.copy_rows = 5 * args.rows
    missing = [pkg for pkg, present in (
        ("postgresql-15-mimeo", glob.glob("/usr/share/postgresql/*/extension/mimeo.control")
         or only == ["copy"]),
        ("pgcopydb", shutil.which("pgcopydb") or "copy" not in only)) if not present]
    if missing:
        raise SystemExit(f"error: the peers are not installed: {', '.join(missing)}\n"
                         f"hint: apt-get install {' '.join(missing)} (./run bench replicate "
                         "installs them)")
    bench = Bench(args)
    try:
        if not bench.topoff_ok:
            print("# topoff replicate is not available in this topoff: only the peers run",
                  flush=True)
        tables = {"inserter": ["ins"], "updater": ["upd"], "snapshot": ["snap"]}
        bench.src.create(["m", "t"], [t for s in only for t in tables.get(s, [])])
        if "inserter" in only:
            bench.src.create(["f"], ["ins"])
        if "copy" in only:
            bench.src.create(["c"], ["big"])
        for name in only:
            getattr(bench, name)()
    finally:
        bench.close()
    print(f"\n{machine()}; median of {args.repeat} runs; mimeo reads the standby through "
          "dblink (snapshot: the primary), pgcopydb the primary, topoff the standby\n")
    print_results(bench.results, "topoff replicate vs mimeo 1.5 and pgcopydb")
    lines = verdicts(bench.results) + [f"WRONG: {w}" for w in bench.wrong]
    if lines:
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
