"""topoff backup: a pg_dump of the standby's snapshot, as one age-encrypted zstd tar."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli
from support.pg import Database
from topoff.backup import catalog
from topoff.stores.local import LocalStore


def test_backup_decrypts_with_the_age_cli(datanommer: Database, age_key: AgeKey,
                                          tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = run_cli(*backup_args(datanommer, age_key, store, "dump.one"))
    assert result.exit_code == 0, result.stderr
    assert "backup dump.one:" in result.stdout
    obj = store / "backups" / "dump.one.tar.zst.age"
    plain = subprocess.run(["age", "-d", "-i", str(age_key.identity), str(obj)],
                           check=True, capture_output=True).stdout
    tar_path = tmp_path / "dump.tar"
    tar_path.write_bytes(subprocess.run(["zstd", "-dc"], input=plain, check=True,
                                        capture_output=True).stdout)
    with tarfile.open(tar_path) as tar:
        names = tar.getnames()
    assert names[-1] == "toc.dat" and len(names) > 3
    finished = json.loads((store / "catalog" / "dump.one" / "finished.json").read_text())
    import hashlib
    assert finished["sha256"] == hashlib.sha256(obj.read_bytes()).hexdigest()
    assert finished["size"] == obj.stat().st_size
    # the dump and the drill's hashes (run after pg_dump, in its snapshot) are timed apart
    assert set(finished["phases"]) == {"pg_dump", "dump", "hash"}
    assert all(isinstance(v, float | int) and v >= 0 for v in finished["phases"].values())
    (rows,) = datanommer.standby_query("SELECT count(*) FROM messages")[0]
    assert finished["tables"]["public.messages"]["rows"] == rows
    entries = catalog.read_catalog(LocalStore(str(store)))
    assert [(e.name, e.status) for e in entries] == [("dump.one", "finished")]
    listed = run_cli("backups", "list", str(store))
    assert "dump.one" in listed.stdout and "finished" in listed.stdout
    js = json.loads(run_cli("backups", "list", str(store), "--json").stdout)
    assert js[0]["status"] == "finished" and js[0]["sha256"] == finished["sha256"]


def test_backup_refuses_a_primary(db: Database, age_key: AgeKey, tmp_path: Path) -> None:
    args = backup_args(db, age_key, tmp_path / "s", "dump.p")
    args[args.index("--source") + 1] = db.primary_url
    result = run_cli(*args)
    assert result.exit_code == 4
    assert "primary" in error_lines(result)[0]
    assert not (tmp_path / "s" / "backups").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "x..y", "", "a b", "é"])
def test_backup_name_is_validated(db: Database, age_key: AgeKey, tmp_path: Path,
                                  name: str) -> None:
    result = run_cli(*backup_args(db, age_key, tmp_path / "s", name))
    assert result.exit_code == 2, result.stderr
    assert "invalid backup name" in error_lines(result)[0]


def test_backup_without_recipient_or_with_secret_key(db: Database, age_key: AgeKey,
                                                     tmp_path: Path) -> None:
    args = backup_args(db, age_key, tmp_path / "s", "dump.x")
    i = args.index("--recipient")
    no_recipient = args[:i] + args[i + 2:]
    result = run_cli(*no_recipient)
    assert result.exit_code == 2 and "no age recipient" in error_lines(result)[0]
    args[i + 1] = age_key.secret
    result = run_cli(*args)
    assert result.exit_code == 2
    assert age_key.secret not in result.stderr + result.stdout
    assert "secret key" in error_lines(result)[0]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_backup_to_an_ssh_recipient(db: Database, age_key: AgeKey, tmp_path: Path) -> None:
    """Backups parse keys with the encrypting store's parser, so an ssh-ed25519 public key
    is a recipient too (age -d -i ~/.ssh/id_ed25519 decrypts), recorded as given."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops@example",
                    "-f", str(tmp_path / "id")], check=True)
    public = (tmp_path / "id.pub").read_text().strip()
    args = backup_args(db, age_key, tmp_path / "s", "dump.ssh")
    args[args.index("--recipient") + 1] = public
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    obj = tmp_path / "s" / "backups" / "dump.ssh.tar.zst.age"
    subprocess.run(["age", "-d", "-i", str(tmp_path / "id"), "-o", str(tmp_path / "t.zst"),
                    str(obj)], check=True)
    started = json.loads((tmp_path / "s" / "catalog" / "dump.ssh" / "started.json").read_text())
    assert started["recipients"] == [public]


def test_table_hashes_are_the_same_on_parallel_connections(datanommer: Database) -> None:
    """The backup hashes tables --jobs at a time, on connections importing its snapshot;
    the result is the one a single connection computes (what the drill compares)."""
    import psycopg

    from topoff.backup.tables import table_hashes

    opened: list[psycopg.Connection] = []

    def more() -> psycopg.Connection:
        opened.append(psycopg.connect(datanommer.standby_url, autocommit=True))
        return opened[-1]

    with psycopg.connect(datanommer.standby_url, autocommit=True) as conn:
        one = table_hashes(conn)
        many = table_hashes(conn, more, 3)
    for c in opened:
        c.close()
    assert many == one and list(many) == sorted(many) and len(opened) <= 2
    assert one["public.messages"]["rows"] > 0


def test_two_backups_of_one_name_at_once(datanommer: Database, age_key: AgeKey, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Both find the name free, then one writes started.json first: the other stops with
    the same config error as when the name was taken before it started, nothing written."""
    from topoff.backup import request

    store = tmp_path / "s"
    real = request.preflight

    def raced(*args: object) -> object:
        options = real(*args)  # type: ignore[arg-type]
        catalog.write_object(LocalStore(str(store)), "dump.x", "started.json", {"x": 1})
        return options

    monkeypatch.setattr("topoff.backup.pipeline.preflight", raced)
    result = run_cli(*backup_args(datanommer, age_key, store, "dump.x"))
    assert result.exit_code == 2, result.stderr
    error, hint = error_lines(result)
    assert error == f"error: a backup named dump.x already exists in {store}", error
    assert "choose another --name" in hint
    assert sorted(p.name for p in (store / "catalog" / "dump.x").iterdir()) == ["started.json"]
    assert not (store / "backups").exists() or not list((store / "backups").iterdir())
