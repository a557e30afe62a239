"""Which Python driver reads MariaDB fastest? Streams one 1,000,000-row table with each.

    ./run bench mariadb_driver [--rows N] [--repeat N]

Candidates: every driver that installs from PyPI as a wheel (no compiler, no dev headers,
as on a fresh Debian): PyMySQL (``SSCursor``), mysql-connector-python (its C extension,
unbuffered, raw bytes and converted values), mariadb (unbuffered) and mysqlclient
(``SSCursor``) when they install; ``mariadb --batch --quick`` is the baseline. The drivers
go into their own virtualenv under bench/work/ (never topoff's). Each reader runs in a
process of its own over the server's socket; the table prints rows/s, client CPU seconds,
peak RSS and the server's CPU seconds, median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.mariadb import MariaServer  # noqa: E402

VENV = ROOT / "bench" / "work" / "mariadb-drivers"
# mysql-connector-python 26.x wheels link their C extension against OpenSSL 3.2, newer
# than Debian 12's 3.0: it falls back to pure Python there, so 9.x is the candidate.
PACKAGES = ["pymysql", "mysql-connector-python<26", "mariadb", "mysqlclient"]

TABLE = """
CREATE TABLE t (
  id BIGINT PRIMARY KEY, n INT, big BIGINT UNSIGNED, at DATETIME(6) NOT NULL,
  name VARCHAR(100) CHARACTER SET utf8mb4, amount DECIMAL(12,4), blob_ BLOB, maybe INT NULL
);
INSERT INTO t SELECT seq, seq % 1000, seq * 1000003,
  TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 1234 MICROSECOND,
  CONCAT('name ', seq, ' é😀'), seq / 7, UNHEX(MD5(seq)), IF(seq % 3 = 0, NULL, seq)
FROM seq_1_to_{rows};
"""

FETCH = """
n = 0
while True:
    rows = cur.fetchmany(5000)
    if not rows:
        break
    n += len(rows)
assert n == ROWS, n
"""

READERS = {
    "PyMySQL (SSCursor)": ("pymysql", """
import pymysql, pymysql.cursors
c = pymysql.connect(unix_socket=SOCK, user="root", database="bench", charset="utf8mb4",
                    cursorclass=pymysql.cursors.SSCursor)
cur = c.cursor(); cur.execute(QUERY)
"""),
    "mysql-connector (C ext, raw)": ("mysql.connector", """
import mysql.connector
assert mysql.connector.HAVE_CEXT
c = mysql.connector.connect(unix_socket=SOCK, user="root", database="bench", use_pure=False)
cur = c.cursor(raw=True, buffered=False); cur.execute(QUERY)
"""),
    "mysql-connector (C ext, values)": ("mysql.connector", """
import mysql.connector
c = mysql.connector.connect(unix_socket=SOCK, user="root", database="bench", use_pure=False)
cur = c.cursor(buffered=False); cur.execute(QUERY)
"""),
    "mariadb (unbuffered)": ("mariadb", """
import mariadb
c = mariadb.connect(unix_socket=SOCK, user="root", database="bench")
cur = c.cursor(buffered=False); cur.execute(QUERY)
"""),
    "mysqlclient (SSCursor)": ("MySQLdb", """
import MySQLdb, MySQLdb.cursors
c = MySQLdb.connect(unix_socket=SOCK, user="root", database="bench", charset="utf8mb4",
                    cursorclass=MySQLdb.cursors.SSCursor)
cur = c.cursor(); cur.execute(QUERY)
"""),
}


def ensure_venv() -> dict[str, str]:
    """Install each candidate from wheels only; return {package: version or failure}."""
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    found = {}
    for p in PACKAGES:
        res = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--only-binary",
                              ":all:", "--pre", p], capture_output=True, text=True)
        if res.returncode != 0:
            found[p] = "no wheel for this machine"
            continue
        name = p.split("<")[0]
        show = subprocess.run([str(VENV / "bin" / "pip"), "show", name], capture_output=True,
                              text=True).stdout
        found[p] = next((line.split()[1] for line in show.splitlines()
                         if line.startswith("Version:")), "?")
    return found


def importable(module: str) -> bool:
    return subprocess.run([str(VENV / "bin" / "python"), "-c", f"import {module}"],
                          capture_output=True).returncode == 0


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list[str], server_pid: int,
            env: dict[str, str] | None = None) -> tuple[float, float, float, float]:
    """(seconds, client CPU seconds, peak RSS MB, server CPU seconds) of one reader.

    The peak is the process's own VmHWM, polled: wait4's ru_maxrss would count the
    benchmark's own memory, copied into the child before it starts the reader."""
    before = server_cpu(server_pid)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, _hwm_kb(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.02)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"reader failed: {cmd[:3]}")
    return (seconds, usage.ru_utime + usage.ru_stime, peak_kb / 1024,
            server_cpu(server_pid) - before)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    versions = ensure_venv()
    (ROOT / "bench" / "work").mkdir(parents=True, exist_ok=True)
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="maria-bench-", dir=ROOT / "bench" / "work"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam("mysql")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    server = MariaServer("bench", base, server_id=1)
    server.init()
    server.start()
    try:
        server.sql("CREATE DATABASE bench")
        server.sql(TABLE.format(rows=args.rows), "bench")
        assert server.proc is not None
        query = "SELECT * FROM t"
        contenders: list[tuple[str, list[str]]] = []
        for label, (module, code) in READERS.items():
            if not importable(module):
                continue
            prog = (f"SOCK = {str(server.socket)!r}\nQUERY = {query!r}\nROWS = {args.rows}\n"
                    + code + FETCH)
            contenders.append((label, [str(VENV / "bin" / "python"), "-c", prog]))
        # topoff's own reader: the server builds each row's CSV line, raw C extension
        topoff_prog = (
            "import sys, mysql.connector\n"
            "from topoff.sources.mariadb.connect import connect\n"
            "from topoff.sources.mariadb.catalog import read_table\n"
            "from topoff.sources.mariadb.rows import write_csv\n"
            f"conn = connect('mariadb://root@localhost/bench?socket={server.socket}')\n"
            "table = read_table(conn, 'bench', 't')\n"
            f"assert write_csv(conn, table, sys.stdout.buffer) == {args.rows}\n")
        contenders.append(("topoff rows (C ext, raw, CSV lines built by the server)",
                           [sys.executable, "-c", topoff_prog]))
        contenders.append(("mariadb --batch --quick (baseline)", [
            "mariadb", "--no-defaults", f"--socket={server.socket}", "-uroot", "--batch",
            "--quick", "--skip-column-names", "-e", query, "bench"]))
        results: dict[str, list[tuple[float, float, float, float]]] = {
            label: [] for label, _ in contenders}
        for _ in range(args.repeat):
            for label, cmd in contenders:
                env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
                results[label].append(measure(cmd, server.proc.pid, env))
        print(f"versions: {versions}")
        print(f"{args.rows:,} rows of (bigint, int, bigint unsigned, datetime(6), "
              "varchar utf8mb4, decimal(12,4), blob, int null); median of "
              f"{args.repeat}\n")
        print("| reader | rows/s | seconds | client CPU s | peak RSS MB | server CPU s |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, runs in results.items():
            runs.sort()
            s, cpu, rss, srv = runs[len(runs) // 2]
            print(f"| {label} | {args.rows / s:,.0f} | {s:.2f} | {cpu:.2f} | {rss:.0f} | "
                  f"{srv:.2f} |")
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
