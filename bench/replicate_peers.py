"""The replicate benchmark's plumbing: its source tables, mimeo and pgcopydb set up as their
docs say, the topoff configs, and the server CPU each command costs.

Every tool gets its own copy of each source table (schema ``m`` for mimeo, ``t`` for
topoff, same rows), so that "add a million rows, refresh" means the same for both without
one tool's refresh taking the other's rows; ``c.big`` is shared (pgcopydb and topoff only
read it).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from common import run_usage
from common import server_cpu as common_server_cpu
from replicate_report import Timed
from topoff.config_writer import toml_value
from topoff.demo.cluster import Server, ThrowawayCluster

#: every generated row is 1 ms after the previous one of its table, from BASE: far enough in
#: the past that mimeo's 10-minute boundary holds nothing back
BASE = "2026-01-01 00:00:00+00"
TOOLS = {"mimeo": "m", "topoff": "t"}
DEST_SCHEMA = {"mimeo": "via_mimeo", "topoff": "via_topoff"}
DDL = {
    "ins": "id bigint PRIMARY KEY, ts timestamptz NOT NULL, site int, kind text, payload text",
    "upd": "id bigint PRIMARY KEY, ts timestamptz NOT NULL, n int, kind text, payload text",
    "snap": "id bigint PRIMARY KEY, ts timestamptz NOT NULL, n int, kind text, payload text",
    "big": "id bigint PRIMARY KEY, ts timestamptz NOT NULL, site int, kind text, payload text",
}
# ~110 bytes a row: a key, a time, an int, a short text and 64 characters of payload
ROW = ("{i}, timestamptz '" + BASE + "' + ({clock} + {i} - {lo}) * interval '1 ms', "
       "{i} % 100, 'kind' || ({i} % 7), md5({i}::text) || md5(({i} + 1)::text)")


class Source:
    """The source tables on the primary (streamed to the standby), with a clock per table
    copy so that new and updated rows always carry a newer cursor than any before."""

    def __init__(self, cluster: ThrowawayCluster, db: str = "src") -> None:
        self.cluster, self.db = cluster, db
        self.clock: dict[str, int] = {}
        self.top: dict[str, int] = {}

    def create(self, schemas: list[str], tables: list[str]) -> None:
        with self.cluster.primary.connect(self.db) as conn:
            for s in schemas:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
                for t in tables:
                    conn.execute(f"CREATE TABLE {s}.{t} ({DDL[t]})")
                    # the cursor index both tools page by (topoff's docs ask for (cursor, key))
                    conn.execute(f"CREATE INDEX ON {s}.{t} (ts, id)")
                    self.clock[f"{s}.{t}"], self.top[f"{s}.{t}"] = 0, 0

    def insert(self, table: str, n: int) -> None:
        """``n`` new rows after the table's newest, with newer cursors."""
        lo, clock = self.top[table] + 1, self.clock[table]
        row = ROW.format(i="i", lo=lo, clock=clock)
        with self.cluster.primary.connect(self.db) as conn:
            conn.execute(f"INSERT INTO {table} SELECT {row} FROM generate_series({lo}, "
                         f"{lo + n - 1}) i")
            conn.execute(f"VACUUM ANALYZE {table}")
        self.top[table] += n
        self.clock[table] += n
        self.cluster.wait_replay(timeout=600)

    def update(self, table: str, lo: int, n: int, cursor: bool = True) -> None:
        """Rows ``lo .. lo+n-1`` change ``n`` (and get a newer cursor unless not ``cursor``)."""
        ts = (f", ts = timestamptz '{BASE}' + ({self.clock[table]} + id - {lo}) * "
              "interval '1 ms'") if cursor else ""
        with self.cluster.primary.connect(self.db) as conn:
            conn.execute(f"UPDATE {table} SET n = n + 1{ts} WHERE id BETWEEN {lo} AND "
                         f"{lo + n - 1}")
            conn.execute(f"VACUUM ANALYZE {table}")
        if cursor:
            self.clock[table] += n
        self.cluster.wait_replay(timeout=600)


# --- mimeo ----------------------------------------------------------------------------

def mimeo_database(dest: Server, db: str, standby: Server, primary: Server,
                   src_db: str = "src") -> None:
    """A new destination database with dblink and mimeo, as mimeo's howto sets them up:
    data source 1 is the standby, 2 the primary (snapshot's change check reads statistics
    counters, which a standby does not keep)."""
    dest.execute(f"DROP DATABASE IF EXISTS {db}")
    dest.execute(f"CREATE DATABASE {db}")
    with dest.connect(db) as conn:
        conn.execute("CREATE EXTENSION dblink")
        conn.execute("CREATE SCHEMA mimeo")
        conn.execute("CREATE EXTENSION mimeo SCHEMA mimeo")
        conn.execute(f"CREATE SCHEMA {DEST_SCHEMA['mimeo']}")
        for server in (standby, primary):
            conn.execute("INSERT INTO mimeo.dblink_mapping_mimeo (data_source, username, pwd) "
                         "VALUES (%s, 'postgres', NULL)",
                         (f"host=127.0.0.1 port={server.port} dbname={src_db}",))


def mimeo_sql(dest: Server, db: str, statement: str) -> str:
    """The shell command a user runs: psql calling one of mimeo's functions."""
    return (f"PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 "
            f"-d {shlex.quote(dest.url(db))} -c {shlex.quote(statement)} >/dev/null")


def wait_stats(primary: Server, table: str, before: int, db: str = "src") -> int:
    """mimeo's snapshot sees a change only once the statistics counters show it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (n,) = primary.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM "
                               "pg_stat_user_tables WHERE relid = %s::regclass", db,
                               [table])[0]
        if n != before:
            return int(n)
        time.sleep(0.1)
    raise SystemExit(f"the statistics of {table} did not change")


def stat_total(primary: Server, table: str, db: str = "src") -> int:
    (n,) = primary.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                           "WHERE relid = %s::regclass", db, [table])[0]
    return int(n)


# --- pgcopydb -------------------------------------------------------------------------

def pgcopydb_clone(source: str, target: str, work: Path, table: str, jobs: int) -> str:
    """``pgcopydb clone`` of one table (filters: include-only-table): the table, its data in
    ``jobs`` COPY jobs (split by key ranges when larger than 100MB), then its indexes."""
    work.mkdir(parents=True, exist_ok=True)
    schema, name = table.split(".")
    filters = work / "filters.ini"
    filters.write_text(f"[include-only-table]\n{schema}.{name}\n")
    return (f"pgcopydb clone --source {shlex.quote(source)} --target {shlex.quote(target)} "
            f"--dir {work / 'run'} --filters {filters} --table-jobs {jobs} "
            f"--index-jobs {jobs} --split-tables-larger-than 100MB --no-owner --no-acl "
            f"--skip-extensions --restart >{work / 'pgcopydb.log'} 2>&1")


# --- topoff ---------------------------------------------------------------------------

def topoff_config(path: Path, target: str, source_url: str, schema: str,
                  tables: dict[str, dict[str, object]], allow_primary: bool = False) -> Path:
    """A ``[replicate]`` config (docs/replicate.md) with one source and ``tables``; the
    target schema is set where this topoff supports it."""
    lines = ["[replicate]", f"target = {toml_value(target)}", "", "[replicate.sources.bench]",
             f"url = {toml_value(source_url)}", f"schema = {toml_value(schema)}"]
    if _supports_target_schema():
        lines.append(f"target_schema = {toml_value(DEST_SCHEMA['topoff'])}")
    if allow_primary:
        lines.append("allow_primary = true")
    for name, opts in tables.items():
        lines += ["", f"[replicate.sources.bench.tables.{name}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in opts.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _supports_target_schema() -> bool:
    try:
        from topoff.replicate import config
    except ImportError:
        return False
    return "target_schema" in getattr(config, "_SOURCE_KEYS", ())


def topoff_replicate_ready(env: dict[str, str] | None = None) -> bool:
    """Whether the topoff on the path has the ``replicate`` command yet."""
    from common import topoff
    res = subprocess.run(["bash", "-c", topoff("replicate --help")], capture_output=True,
                         env={**os.environ, **(env or {})})
    return res.returncode == 0 and b"--once" in res.stdout


# --- the servers' CPU -----------------------------------------------------------------

def server_cpu(servers: list[Server]) -> float:
    """CPU seconds used so far by these PostgreSQL servers (common.server_cpu). mimeo's
    work all happens there, in the destination's backend and the source's dblink backend."""
    return common_server_cpu([s.datadir for s in servers])


# --- the floor: the rows piped by psql, no tool -------------------------------------------

def floor_refresh(source: str, dest: str, src_table: str, dest_table: str,
                  columns: str) -> str:
    """What any inserter refresh costs at least: the rows after the destination's newest
    cursor, ``COPY ... TO STDOUT (FORMAT binary)`` on the source piped by psql into ``COPY
    ... FROM STDIN`` of the destination table (same indexes), with no check of any kind."""
    newest = f"SELECT coalesce(max(ts), '-infinity') FROM {dest_table}"
    top = f"psql -X -At -d {shlex.quote(dest)} -c {shlex.quote(newest)}"
    out = (f"\\copy (SELECT {columns} FROM {src_table} WHERE ts > '$top') TO STDOUT WITH "
           "(FORMAT binary)")
    into = f"\\copy {dest_table} ({columns}) FROM STDIN WITH (FORMAT binary)"
    return (f"top=$({top}) && psql -X -q -d {shlex.quote(source)} -c \"{out}\" | "
            f"psql -X -q -d {shlex.quote(dest)} -c {shlex.quote(into)} >/dev/null")


# --- measuring ----------------------------------------------------------------------------

#: (tool, task, shell command or None when unavailable, untimed preparation or None)
Contender = tuple[str, str, str | None, Callable[[], None] | None]


def measure(contenders: list[Contender], repeat: int, servers: list[Server]) -> list[Timed]:
    """Each command ``repeat`` times, interleaved; medians of time and CPU (the client's,
    and ``servers``' PostgreSQL processes'), largest peak RSS. A preparation runs untimed
    before each attempt."""
    live = [c for c in contenders if c[2] is not None]
    samples: dict[int, list[tuple[float, float, float, float]]] = {
        i: [] for i in range(len(live))}
    for _ in range(repeat):
        for i, (_tool, _task, cmd, prepare) in enumerate(live):
            if prepare is not None:
                prepare()
            before = server_cpu(servers)
            assert cmd is not None
            seconds, peak, cpu = run_usage(cmd)
            time.sleep(0.3)  # the command's backends exit after it does
            samples[i].append((seconds, cpu, server_cpu(servers) - before, peak))
    out = []
    for i, (tool, task, _cmd, _prepare) in enumerate(live):
        s = samples[i]

        def med(k: int, s: list[tuple[float, float, float, float]] = s) -> float:
            return sorted(x[k] for x in s)[len(s) // 2]
        out.append(Timed(tool, task, med(0), med(1), med(2), max(x[3] for x in s)))
        print(f"# {task} | {tool}: {med(0):.2f}s", flush=True)
    return out
