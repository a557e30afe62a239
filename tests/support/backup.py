"""Helpers for the backup tests: an age key pair made with the real age-keygen."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.pg import Database


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


def backup_args(db: Database, key: AgeKey, store: Path, name: str, *extra: str) -> list[str]:
    return ["backup", "--source", db.standby_url, "--to", str(store), "--name", name,
            "--recipient", key.public, *extra]
