"""money moves as text, which PostgreSQL writes and reads in the session's lc_monetary:
topoff's sessions (the source's and a PostgreSQL replica's) set lc_monetary = 'C', so a
source and a replica whose databases default to other monetary locales agree on every
amount. The servers here run with a German locale built for them (LOCPATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from support.dataset import decompress
from support.pg import Database, make_config
from topoff.demo.cluster import ThrowawayCluster
from topoff.export.full import export_full
from topoff.sources.postgres import connect
from topoff.stores import open_store
from topoff.sync import sync

GERMAN = "de_DE.UTF-8"
CONFIG = """
dataset = "money"

[tables.prices]
"""
AMOUNTS = ["1000.00", "-1234567.89", "0.05"]


@pytest.fixture(scope="module")
def german_cluster() -> Iterator[ThrowawayCluster]:
    """A cluster whose servers know the locale de_DE.UTF-8 (built into its own directory,
    found through LOCPATH: the machine's locales are left as they are)."""
    if not Path("/usr/share/i18n/locales/de_DE").exists() or not shutil.which("localedef"):
        pytest.skip("no locale sources to build de_DE.UTF-8 from (Debian's locales package)")
    cluster = ThrowawayCluster()
    try:
        locales = cluster.base / "locales"  # where the server's user can read it
        locales.mkdir(mode=0o755)
        subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(locales / GERMAN)],
                       check=True, capture_output=True)
        saved = os.environ.get("LOCPATH")
        os.environ["LOCPATH"] = str(locales)  # the servers started here inherit it
        try:
            cluster.start()
        finally:
            if saved is None:
                del os.environ["LOCPATH"]
            else:
                os.environ["LOCPATH"] = saved
        yield cluster
    finally:
        cluster.close()


def _database(cluster: ThrowawayCluster, lc_monetary: str | None) -> str:
    name = f"m{uuid.uuid4().hex[:10]}"
    cluster.create_database(name)
    if lc_monetary:
        cluster.primary.execute(sql.SQL("ALTER DATABASE {} SET lc_monetary = {}").format(
            sql.Identifier(name), sql.Literal(lc_monetary)).as_string())
    return name


def test_the_session_reads_and_writes_money_in_the_c_locale(
        german_cluster: ThrowawayCluster) -> None:
    name = _database(german_cluster, GERMAN)
    url = german_cluster.primary.url(name)
    with german_cluster.primary.connect(name) as plain:
        assert plain.execute("SELECT 1000::money::text").fetchone() == ("1.000,00 €",)
    with connect(url) as conn:
        assert conn.execute("SELECT 1000::money::text, '$1,000.00'::money = 1000::money"
                            ).fetchone() == ("$1,000.00", True)


@pytest.mark.parametrize("german", ["source", "replica"])
def test_amounts_survive_other_monetary_locales(german_cluster: ThrowawayCluster,
                                                tmp_path: Path, german: str) -> None:
    source = Database(_database(german_cluster, GERMAN if german == "source" else None),
                      german_cluster)
    source.execute("CREATE TABLE prices (id integer PRIMARY KEY, amount money)")
    source.execute("INSERT INTO prices SELECT i, a::numeric::money FROM unnest(%s::text[]) "
                   "WITH ORDINALITY AS t(a, i)", [AMOUNTS])
    store_dir = tmp_path / "published"
    with open_store(str(store_dir)) as store:
        export_full(make_config(source, CONFIG), store)
    data = next(store_dir.rglob("*.csv.zst"))
    text = decompress(data.read_bytes()).decode()
    assert '"$1,000.00"' in text and '"-$1,234,567.89"' in text and "$0.05" in text
    replica = german_cluster.primary.url(
        _database(german_cluster, GERMAN if german == "replica" else None))
    sync(str(store_dir), replica)
    with connect(replica) as conn:
        got = conn.execute("SELECT amount::numeric::text FROM public.prices ORDER BY id"
                           ).fetchall()
    assert [g[0] for g in got] == AMOUNTS


def test_a_backup_restores_money_into_another_monetary_locale(
        german_cluster: ThrowawayCluster, tmp_path: Path) -> None:
    """pg_dump writes money in its session's lc_monetary, pg_restore reads it in its own:
    both run with lc_monetary C, so a German database's amounts restore into a C one."""
    from support.backup import make_age_key
    from support.cli import run_cli

    key = make_age_key(tmp_path / "key.txt")
    source = _database(german_cluster, GERMAN)
    german_cluster.primary.execute(
        "CREATE TABLE prices (id int PRIMARY KEY, amount money); "
        "INSERT INTO prices VALUES " + ", ".join(
            f"({i}, {a}::numeric)" for i, a in enumerate(AMOUNTS)), source)
    target = _database(german_cluster, "C")
    store = str(tmp_path / "store")
    made = run_cli("backup", "--source", german_cluster.primary.url(source), "--allow-primary",
                   "--to", store, "--name", "m", "--recipient", key.public)
    assert made.exit_code == 0, made.stderr
    restored = run_cli("restore", store, "--name", "m", "--identity", str(key.identity),
                       "--target", german_cluster.primary.url(target))
    assert restored.exit_code == 0, restored.stderr
    rows = german_cluster.primary.execute(
        "SELECT amount::numeric::text FROM prices ORDER BY id", target)
    assert [r[0] for r in rows] == AMOUNTS
