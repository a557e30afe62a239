"""MariaDB backups seen from outside: the dump child's argv and environment, an option file
that is gone afterwards, snapshots that disagree, and SIGTERM during a backup or a drill."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from support.backup import AgeKey
from support.cli import error_lines, run_cli
from support.maria_backup import (
    BACKUP_PASSWORD,
    BACKUP_USER,
    SRC,
    children,
    source_url,
    take_backup,
)
from support.mariadb import MariaDatabase
from topoff.backup.maria_client import option_text
from topoff.sources.mariadb.connect import MariaTarget


def test_password_never_on_argv(shop: MariaDatabase, age_key: AgeKey, tmp_path: Path) -> None:
    """The real mariadb-dump child, seen through a wrapper: its /proc/<pid>/cmdline and
    environment hold no password; the option file it reads is 0600 and gone afterwards."""
    shim = tmp_path / "bin"
    shim.mkdir()
    seen = tmp_path / "seen"
    real = shutil.which("mariadb-dump")
    assert real
    (shim / "mariadb-dump").write_text(
        "#!/bin/sh\n"
        f"tr '\\0' '\\n' < /proc/$$/cmdline > {seen}.argv\n"
        f"tr '\\0' '\\n' < /proc/$$/environ > {seen}.env\n"
        f"for a in \"$@\"; do case $a in --defaults-extra-file=*) "
        f"f=${{a#--defaults-extra-file=}}; stat -c %a \"$f\" > {seen}.mode; "
        f"echo \"$f\" > {seen}.file; stat -c %a \"$(dirname \"$f\")\" > {seen}.dirmode;; "
        f"esac; done\n"
        f"exec {real} \"$@\"\n")
    (shim / "mariadb-dump").chmod(0o755)
    url = shop.pair.replica.url(shop.name, user=BACKUP_USER,
                                password=quote(BACKUP_PASSWORD, safe=""))
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
           "PATH": f"{shim}:{os.environ['PATH']}"}
    env["MYSQL_PWD"] = BACKUP_PASSWORD  # given this way too: still not the child's
    proc = subprocess.run(
        [sys.executable, "-m", "topoff", "backup", "--source", url, "--to",
         str(tmp_path / "store"), "--name", "dump.x", "--recipient", age_key.public],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    argv = Path(f"{seen}.argv").read_text()
    assert "mariadb-dump" in argv and "--defaults-extra-file=" in argv
    assert BACKUP_PASSWORD not in argv and "secret" not in argv
    assert "secret" not in Path(f"{seen}.env").read_text()
    assert Path(f"{seen}.mode").read_text().strip() == "600"
    assert Path(f"{seen}.dirmode").read_text().strip() == "700"
    assert not Path(Path(f"{seen}.file").read_text().strip()).exists()
    assert "secret" not in proc.stdout + proc.stderr


def test_option_file_escapes_values() -> None:
    text = option_text(MariaTarget(user="u", host="h", port=1, password='a"b\\c\nd'))
    assert 'password="a\\"b\\\\c\\nd"' in text
    assert "protocol=TCP" in text


@pytest.fixture
def slow_restore(tmp_path: Path) -> Iterator[Path]:
    """A mariadb client that waits before reading: the drill's server is up meanwhile."""
    shim = tmp_path / "slowbin"
    shim.mkdir()
    real = shutil.which("mariadb")
    assert real
    (shim / "mariadb").write_text(f"#!/bin/sh\nsleep 30\nexec {real} \"$@\"\n")
    (shim / "mariadb").chmod(0o755)
    yield shim


def test_drill_interrupted_leaves_nothing_running(backed_up: Path, age_key: AgeKey,
                                                  slow_restore: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
           "PATH": f"{slow_restore}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "topoff", "backups", "drill", str(backed_up), "--identity",
         str(age_key.identity)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        server = None
        deadline = time.monotonic() + 120
        while server is None and time.monotonic() < deadline and proc.poll() is None:
            kids = children(proc.pid)
            server = next(((p, c) for p, c in kids if "mariadbd" in c), None)
            client = any("sleep" in c or "slowbin" in c for p, c in kids)
            if server is not None and not client:
                server = None
            time.sleep(0.1)
        assert server is not None, proc.stderr.read() if proc.poll() is not None else ""
        datadir = next(a.split("=", 1)[1] for a in server[1].split()
                       if a.startswith("--datadir="))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert proc.returncode == 130, proc.stderr.read()
        assert not Path(f"/proc/{server[0]}").exists() or \
            "zombie" in Path(f"/proc/{server[0]}/status").read_text()
        assert not Path(datadir).parent.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _committing_dump(tmp_path: Path, shop: MariaDatabase, every_time: bool) -> Path:
    """A mariadb-dump that first commits a row on the primary and waits for the replica to
    apply it: the dump's snapshot then sees a commit that topoff's did not."""
    shim = tmp_path / "commitbin"
    shim.mkdir()
    real, client = shutil.which("mariadb-dump"), shutil.which("mariadb")
    p, r = shop.pair.primary.socket, shop.pair.replica.socket
    marker = tmp_path / "committed"
    once = "" if every_time else f"[ -e {marker} ] || "
    count = f"{client} --no-defaults --socket={r} -uroot -N -e " \
        f"'SELECT COUNT(*) FROM `{shop.name}`.empty_one'"
    (shim / "mariadb-dump").write_text(
        "#!/bin/sh\n"
        f"{once}{{ n=$(( $({count}) + 1 )); "
        f"{client} --no-defaults --socket={p} -uroot -e "
        f"\"INSERT INTO \\`{shop.name}\\`.empty_one VALUES ($n)\"; "
        f"until [ \"$({count})\" = \"$n\" ]; do sleep 0.05; done; touch {marker}; }}\n"
        f"exec {real} \"$@\"\n")
    (shim / "mariadb-dump").chmod(0o755)
    return shim


def test_a_commit_between_the_snapshots_starts_both_again(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{_committing_dump(tmp_path, shop, False)}:{os.environ['PATH']}")
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.c", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert "starting both again" in result.stderr  # type: ignore[attr-defined]
    finished = json.loads((store / "catalog/dump.c/finished.json").read_text())
    # the row committed before the dump's first attempt is in the hashes and in the dump
    assert finished["tables"]["empty_one"]["rows"] == 1 and finished["same_snapshot"]
    monkeypatch.undo()
    drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stderr


def test_snapshots_that_never_agree_fail_the_backup(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{_committing_dump(tmp_path, shop, True)}:{os.environ['PATH']}")
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.n", env)
    assert result.exit_code == 3, result.stderr  # type: ignore[attr-defined]
    assert "differed 5 times" in error_lines(result)[0]  # type: ignore[arg-type]
    assert (store / "catalog/dump.n/failed.json").exists()
    assert not (store / "backups/dump.n.sql.zst.age").exists()


def test_backup_interrupted_records_failure_and_leaves_nothing(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path) -> None:
    shim = tmp_path / "slowdump"
    shim.mkdir()
    real = shutil.which("mariadb-dump")
    (shim / "mariadb-dump").write_text(f"#!/bin/sh\nsleep 30\nexec {real} \"$@\"\n")
    (shim / "mariadb-dump").chmod(0o755)
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
           "PATH": f"{shim}:{os.environ['PATH']}", "MYSQL_PWD": BACKUP_PASSWORD}
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "topoff", "backup", "--source", source_url(shop), "--to", str(store),
         "--name", "dump.i", "--recipient", age_key.public],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        dump = None
        deadline = time.monotonic() + 60
        while dump is None and time.monotonic() < deadline and proc.poll() is None:
            dump = next(((p, c) for p, c in children(proc.pid) if "slowdump" in c), None)
            time.sleep(0.05)
        assert dump is not None, proc.stderr.read() if proc.poll() is not None else ""
        defaults = next(a.split("=", 1)[1] for a in dump[1].split()
                        if a.startswith("--defaults-extra-file="))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert proc.returncode == 130, proc.stderr.read()
        assert not Path(f"/proc/{dump[0]}").exists()
        assert not Path(defaults).parent.exists()
        failed = json.loads((store / "catalog/dump.i/failed.json").read_text())
        assert failed["error"] == "interrupted"
        assert not (store / "backups/dump.i.sql.zst.age").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_killed_drills_server_directory_goes_at_the_next_drill() -> None:
    """A SIGKILLed drill cannot remove its throwaway server's directory (the server dies
    with it); the next throwaway server removes those whose topoff is gone."""
    from topoff.backup.mariadbd import throwaway_mariadb

    code = ("from topoff.backup.catalog import work_directory; "
            "print(work_directory('topoff-mariadbd-', None))")  # its process then ends
    left = Path(subprocess.run([sys.executable, "-c", code], check=True,
                               capture_output=True, text=True).stdout.strip())
    try:
        (left / "data").mkdir()
        with throwaway_mariadb() as server:
            assert server.proc is not None and not left.exists()
    finally:
        shutil.rmtree(left, ignore_errors=True)


def test_the_throwaway_server_is_started_without_python_in_its_child(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A preexec_fn runs Python between fork and exec, which can deadlock a program with
    threads: the throwaway server and its bootstrap are started with subprocess's own
    arguments instead. The server still runs as the mysql user when topoff is root (with
    no supplementary group), in a process group of its own."""
    from topoff.backup.mariadbd import throwaway_mariadb

    hooks: list[object] = []
    real = subprocess.Popen.__init__

    def recording(self: subprocess.Popen[bytes], *args: object, **kwargs: object) -> None:
        hooks.append(kwargs.get("preexec_fn"))
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess.Popen, "__init__", recording)
    with throwaway_mariadb() as server:
        assert server.proc is not None
        pid = server.proc.pid
        assert os.getpgid(pid) == pid
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines())
        assert status["Name"].strip() == "mariadbd"
        if os.geteuid() == 0:
            mysql = pwd.getpwnam("mysql")
            assert status["Uid"].split() == [str(mysql.pw_uid)] * 4
            assert status["Gid"].split() == [str(mysql.pw_gid)] * 4
            assert status["Groups"].split() == []
    assert len(hooks) >= 2 and hooks == [None] * len(hooks)


def test_a_killed_drills_server_dies_with_it() -> None:
    """SIGKILL leaves topoff no time to stop its throwaway server: the server has the
    parent-death signal, and goes with it."""
    code = ("import time\n"
            "from topoff.backup.mariadbd import throwaway_mariadb\n"
            "with throwaway_mariadb() as s:\n"
            "    print(s.proc.pid, s.base, flush=True)\n"
            "    time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=env)
    base = None
    try:
        assert proc.stdout is not None
        pid_text, base = proc.stdout.readline().split()
        pid = int(pid_text)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if base:
            shutil.rmtree(base, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
