"""Helpers for the backup tests: an age key pair made with the real age-keygen, and an
empty database to restore into."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.pg import Database
from topoff.demo.cluster import ThrowawayCluster


@dataclass
class AgeKey:
    identity: Path
    public: str
    secret: str


def make_age_key(path: Path) -> AgeKey:
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(path)], check=True,
                            capture_output=True, text=True).stdout.strip()
    secret = next(ln for ln in path.read_text().splitlines() if ln.startswith("AGE-SECRET"))
    return AgeKey(path, public, secret)


@pytest.fixture
def age_key(tmp_path: Path) -> AgeKey:
    return make_age_key(tmp_path / "key.txt")


@pytest.fixture
def target(cluster: ThrowawayCluster, db: Database) -> Iterator[str]:
    """An empty database of the session's cluster to restore into, dropped afterwards."""
    name = db.name + "_restored"
    cluster.primary.execute(f'CREATE DATABASE "{name}"')
    yield cluster.primary.url(name)
    cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backup_args(db: Database, key: AgeKey, store: Path, name: str, *extra: str) -> list[str]:
    return ["backup", "--source", db.standby_url, "--to", str(store), "--name", name,
            "--recipient", key.public, *extra]


NOW = datetime.now(UTC)  # catalog entries made by hand are dated from here


def entry(store: Path, name: str, hours_ago: float, size: int | None = 1000,
          drill_ok: bool | None = None, failed: bool = False,
          now: datetime | None = None) -> None:
    """A catalog entry made by hand, started ``hours_ago`` before ``now`` (NOW, the
    suite's start, unless given: a test about minutes passes the time of its own)."""
    d = store / "catalog" / name
    d.mkdir(parents=True)
    start = (now or NOW) - timedelta(hours=hours_ago)
    (d / "started.json").write_text(json.dumps({"started": start.isoformat(), "host": "x"}))
    end = (start + timedelta(minutes=5)).isoformat()
    if failed:
        (d / "failed.json").write_text(json.dumps({"ended": end, "error": "boom"}))
    elif size is not None:
        (d / "finished.json").write_text(json.dumps(
            {"ended": end, "size": size, "sha256": "a" * 64, "seconds": 300.5}))
    if drill_ok is not None:
        (d / "drill-1.json").write_text(json.dumps(
            {"ok": drill_ok, "time": (start + timedelta(minutes=30)).isoformat()}))
