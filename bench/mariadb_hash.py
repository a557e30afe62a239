"""What a MariaDB server spends on topoff's content hashes and on a day's re-check.

    ./run bench mariadb_hash [--days 3] [--per-day 50000] [--repeat 7]

Starts one throwaway MariaDB (bench/mariadb.py's server, no replica) and fills it with the
datanommer-shaped messages of bench/mariadb.py (``--days`` x ``--per-day``). Then, as the
same user over TCP, interleaved and ``--repeat`` times (medians):

* the server's CPU per 100,000 messages (all the days but the last) of ``SELECT COUNT(*)``
  and of ``SELECT COUNT(*), <hash>`` for each content hash of rowhash.py (``my3``, ``my2``,
  ``my1``);
* one day's re-check of the three cursor tables as the export does it: ``cs1`` (the rows
  read again in (cursor, key) order and hashed by the client) for tables with a key, and
  the server's ``my3`` and ``my2`` (what a table without a key gets): client and server
  CPU seconds.

The server's CPU is read from /proc/<pid>/stat of mariadbd before and after each
statement; the client's is this process's CPU time.
"""

from __future__ import annotations

import argparse
import os
import time
import tomllib
from datetime import date, timedelta
from pathlib import Path

from common import WORK
from mariadb import DAY, DB, PASSWORD, SCHEMA, USER, BenchServer, config
from support.mariadb import MariaPair  # bench/mariadb.py put tests/ on the path
from topoff.config import parse_config
from topoff.dataset.layout import Window
from topoff.sources.base import open_source, rows_digest
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.rowhash import ALGORITHMS, count_hash_sql


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--per-day", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    pair = MariaPair()  # its base directory and cleanup; only the primary is started
    server = pair.primary = BenchServer("primary", pair.base, server_id=1)
    first = date(2026, 1, 1)
    try:
        server.init()
        server.start()
        server.sql(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
                   f"GRANT SELECT, REPLICATION CLIENT ON *.* TO '{USER}'@'127.0.0.1';"
                   f"CREATE DATABASE {DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        server.sql(f"GRANT REPLICA MONITOR ON *.* TO '{USER}'@'127.0.0.1'", check=False)
        server.sql(SCHEMA, DB)
        step = 86_400_000_000 // (args.per_day + 1)
        for i in range(args.days):
            day = first + timedelta(days=i)
            server.sql(DAY.format(base=i * 10_000_000, tag=f"m{day}", n=args.per_day,
                                  step=step, day=day.isoformat()), DB)
        server.sql("ANALYZE TABLE messages, users_messages, packages_messages; "
                   "SET GLOBAL read_only = ON", DB)
        pid = int((pair.base / "primary.pid").read_text())
        url = server.url(DB, user=USER, password=PASSWORD)
        _hashes(url, pid, first, first + timedelta(days=max(1, args.days - 1)), args.repeat)
        _recheck(url, pid, first, args.repeat)
    finally:
        pair.close()


def _hashes(url: str, pid: int, lo: date, hi: date, repeat: int) -> None:
    with connect(url) as conn:
        columns = read_table(conn, DB, "messages").columns
        where = f"FROM messages WHERE `timestamp` >= '{lo}' AND `timestamp` < '{hi}'"
        items = {"COUNT(*)": "COUNT(*)", **{a: count_hash_sql(columns, a) for a in ALGORITHMS}}
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) {where}")
        (rows,) = cur.fetchone()
        spent: dict[str, list[float]] = {k: [] for k in items}
        for _ in range(repeat):
            for name, item in items.items():
                before = server_cpu(pid)
                cur.execute(f"SELECT {item} {where}")
                cur.fetchall()
                spent[name].append((server_cpu(pid) - before) * 100_000 / rows)
        cur.close()
    print(f"\nServer CPU s per 100,000 messages ({rows:,} rows read; median of {repeat})\n")
    print("| select | server CPU s |\n|---|---:|")
    for name, values in spent.items():
        print(f"| {name} | {median(values):.3f} |")


def _recheck(url: str, pid: int, day: date, repeat: int) -> None:
    cfg = parse_config(tomllib.loads(config(DB, 1)))
    spent: dict[str, list[tuple[float, float]]] = {"cs1": [], "my3": [], "my2": []}
    with open_source(url, allow_primary=False) as source:
        source.open()
        tables = [t for t in source.tables(cfg) if t.config.cursor]
        reader = source.reader()
        window = Window.day(day)
        for _ in range(repeat):
            for how, values in spent.items():
                client, server = time.process_time(), server_cpu(pid)
                for t in tables:
                    if how == "cs1":
                        rows_digest(reader.rows(t, window, ordered=True))
                    else:
                        reader.count_hash(t, window, how)
                values.append((time.process_time() - client, server_cpu(pid) - server))
    names = ", ".join(t.qualified for t in tables)
    print(f"\nOne day's re-check of {names} (median of {repeat})\n")
    print("| re-check | client CPU s | server CPU s |\n|---|---:|---:|")
    for how, values in spent.items():
        print(f"| {how} | {median([v[0] for v in values]):.2f} | "
              f"{median([v[1] for v in values]):.2f} |")


if __name__ == "__main__":
    main()
