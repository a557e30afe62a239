"""A migration on the source's primary while topoff reads the source: a MariaDB table whose
definition changed after the export's snapshot began (error 1412) or that is gone (1146),
a PostgreSQL table changed on the standby between the export's snapshot and its locks, is
reported as such, with what to do, and nothing is published."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.dataset import topoff_log
from support.mariadb import MariaDatabase
from support.pg import Database, make_config
from support.slow import first_kept
from topoff.config import Config, TableConfig
from topoff.dataset.layout import Window
from topoff.dataset.manifest import Column
from topoff.errors import ConfigError, SourceError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.sources.mariadb import snapshot as snap
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.source import MariaSource
from topoff.sources.mariadb.verify import MariaVerifier
from topoff.sources.pg_source import PostgresSource
from topoff.stores import open_store
from topoff.targets.base import TableDef, TableRef

DAY = (datetime.now(UTC) - timedelta(days=3)).date()


def _config(url: str, jobs: int = 1) -> Config:
    schema = url.rsplit("/", 1)[1]
    return Config(dataset="shop", source_url=url, tables=tuple(
        TableConfig(schema=schema, name=n, method="append", cursor="at") for n in ("ea", "eb")
    )).with_export(jobs=jobs, retry_backoff=0.05)


def _fill(maria: MariaDatabase) -> None:
    d = DAY.isoformat()
    for n in ("ea", "eb"):
        maria.execute(f"CREATE TABLE {n} (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, "
                      f"body TEXT, KEY (at)); INSERT INTO {n} VALUES "
                      f"(1, '{d} 01:00:00', 'x'), (2, '{d} 02:00:00', 'y')")


def migrate_after_snapshot(monkeypatch: pytest.MonkeyPatch, maria: MariaDatabase,
                           statements: list[str]) -> list[str]:
    """Each export attempt: the next of ``statements`` runs on the primary, and the replica
    applies it, once the export's snapshot began and before it reads the catalog (the
    moment a migration can land unseen: from the catalog on, the export's metadata locks
    hold the replica's DDL back until it ends)."""
    done: list[str] = []
    tables = MariaSource.tables

    def migrated(self: MariaSource, config: Config) -> list:
        if len(done) < len(statements):
            maria.execute(statements[len(done)])
            done.append(statements[len(done)])
        return tables(self, config)

    monkeypatch.setattr(MariaSource, "tables", migrated)
    return done


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.mark.parametrize("statement", first_kept(["ALTER TABLE eb MODIFY body VARCHAR(300)",
                                                  "TRUNCATE TABLE eb"]))
@pytest.mark.parametrize("kind", ["full", "incremental"])
def test_a_mariadb_table_changed_after_the_snapshot_is_named_with_a_hint(
        maria: MariaDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        statement: str, kind: str) -> None:
    _fill(maria)
    # at both attempts (the second in a new snapshot): each statement rebuilds the table
    again = "ALTER TABLE eb MODIFY body TEXT" if "ALTER" in statement else statement
    done = migrate_after_snapshot(monkeypatch, maria, [statement, again])
    store = open_store(str(tmp_path / "pub"))
    config = _config(maria.replica_url).with_export(retry_attempts=2)
    with pytest.raises(SourceError) as failed:
        if kind == "full":
            export_full(config, store)
        else:
            export_incremental(config, store, Window.day(DAY))
    assert len(done) == 2 and failed.value.exit_code == 3
    assert f"{maria.name}.eb" in failed.value.message
    assert "definition changed on the source after the snapshot" in failed.value.message
    assert failed.value.hint is not None and "run it again" in failed.value.hint
    assert "privilege" not in failed.value.hint
    assert _files(tmp_path / "pub") == []


def test_a_mariadb_table_changed_once_is_read_again_in_a_new_snapshot(
        maria: MariaDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The export that met a rebuilt table starts again, in a snapshot that reads the table
    as the migration left it (it stopped with exit 3, to be run again by hand)."""
    _fill(maria)
    done = migrate_after_snapshot(monkeypatch, maria,
                                  ["ALTER TABLE eb MODIFY body VARCHAR(300)"])
    store = open_store(str(tmp_path / "pub"))
    with topoff_log(), caplog.at_level(logging.WARNING, logger="topoff"):
        result = export_full(_config(maria.replica_url), store)
    assert done and result.manifests[0].tables[f"{maria.name}.eb"].rows == 2
    [column] = [c for c in result.manifests[0].tables[f"{maria.name}.eb"].columns
                if c.name == "body"]
    assert column.type == "character varying(300)"
    warned = [r.getMessage() for r in caplog.records if "new snapshot" in r.getMessage()]
    assert len(warned) == 1 and "definition changed" in warned[0], warned


PG_CHANGES = {"ALTER TABLE eb ALTER body TYPE varchar(300)": "rewritten",
              "TRUNCATE eb": "truncated",
              "ALTER TABLE eb DROP COLUMN body": "a column dropped",
              "ALTER TABLE eb RENAME TO eb_old": "does not exist",
              "DROP TABLE eb": "cache lookup failed",
              "ALTER TABLE eb RENAME body TO text": "a column renamed"}


def _pg_tables(db: Database) -> None:
    d = DAY.isoformat()
    for n in ("ea", "eb"):
        db.execute(f"CREATE TABLE {n} (id int PRIMARY KEY, at timestamptz NOT NULL, "
                   f"body text); INSERT INTO {n} VALUES (1, '{d} 01:00+00', 'x'), "
                   f"(2, '{d} 02:00+00', 'y')")


@pytest.mark.parametrize("statement", first_kept(PG_CHANGES, keep=2))
def test_a_postgresql_table_changed_before_the_export_locked_it_is_read_again(
        db: Database, tmp_path: Path, statement: str, caplog: pytest.LogCaptureFixture
        ) -> None:
    """Replayed between the snapshot and the locks, a rewrite or TRUNCATE would have the
    table read empty in the snapshot (it was published with 0 rows); a column or table
    gone failed the export with exit 70. The export starts again in a new snapshot, which
    reads the table as the migration left it (a table renamed or dropped is then not
    found: the config names it)."""
    _pg_tables(db)
    done: list[int] = []

    def hook(event: str, **kw: object) -> None:
        if event == "snapshot" and not done:  # the standby replays it, nothing holds it
            done.append(1)
            db.execute(statement)

    config = make_config(db, '[tables.ea]\ncursor = "at"\n[tables.eb]\ncursor = "at"\n',
                         jobs=1)
    store = open_store(str(tmp_path / "pub"))
    gone = PG_CHANGES[statement] in ("does not exist", "cache lookup failed")
    with topoff_log(), caplog.at_level(logging.WARNING, logger="topoff"):
        if gone:
            with pytest.raises(ConfigError) as refused:
                export_full(config, store, hook=hook)
        else:
            result = export_full(config, store, hook=hook)
    if gone:
        assert "public.eb does not exist" in refused.value.message
        assert _files(tmp_path / "pub") == []
    else:
        [manifest] = result.manifests
        assert manifest.tables["public.eb"].rows == (0 if "TRUNCATE" in statement else 2)
    warned = [r.getMessage() for r in caplog.records if "new snapshot" in r.getMessage()]
    assert len(warned) == 1 and "changed on the source after" in warned[0], warned
    assert PG_CHANGES[statement] in warned[0]


def test_a_postgresql_table_changed_at_every_attempt_is_named_with_a_hint(
        db: Database, tmp_path: Path) -> None:
    _pg_tables(db)
    done: list[int] = []

    def hook(event: str, **kw: object) -> None:
        if event == "snapshot":
            done.append(1)
            db.execute("TRUNCATE eb")

    config = make_config(db, '[tables.ea]\ncursor = "at"\n[tables.eb]\ncursor = "at"\n',
                         jobs=1, retry_attempts=3)
    store = open_store(str(tmp_path / "pub"))
    with pytest.raises(SourceError) as failed:
        export_full(config, store, hook=hook)
    assert len(done) == 3 and failed.value.exit_code == 3
    assert "changed on the source after" in failed.value.message
    assert "truncated" in failed.value.message
    assert failed.value.hint is not None and "run it again" in failed.value.hint
    assert _files(tmp_path / "pub") == []


@pytest.mark.parametrize("statement", first_kept(["ALTER TABLE t MODIFY id BIGINT",
                                                  "TRUNCATE TABLE t"]))
def test_verify_of_a_mariadb_table_changed_under_its_snapshot(
        maria: MariaDatabase, statement: str) -> None:
    """verify hashes each table in one snapshot of the source: a table rebuilt since it
    began cannot be read in it."""
    maria.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); "
                  "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    table = TableDef(f"{maria.name}.t", TableRef(maria.name, "t"), "full",
                     [Column("id", "integer", False), Column("v", "text", True)], ["id"],
                     None, None, "", (maria.name, "t"))
    with connect(maria.replica_url) as conn:
        snap.begin(conn)
        maria.execute(statement)
        verifier = MariaVerifier(conn)
        with pytest.raises(SourceError) as failed:
            assert verifier.mismatch(table) is None
            verifier.hash(table, False, None, None, "exact")
    assert failed.value.exit_code == 3
    assert f"{maria.name}.t" in failed.value.message
    assert "definition changed on the source" in failed.value.message
    assert failed.value.hint is not None and "run it again" in failed.value.hint


PART_CHANGES = ["TRUNCATE eb_2",  # one partition of a partitioned table
                "TRUNCATE ec_kid",  # an inheritance child
                "ALTER TABLE ec_kid ALTER own TYPE bigint",  # a child's rewrite, alone
                "TRUNCATE ed_2_1",  # a partition of a partition
                "ALTER TABLE eb DETACH PARTITION eb_2",  # no longer read with its table
                "ALTER TABLE ec_kid NO INHERIT ec"]


@pytest.mark.parametrize("statement", first_kept(PART_CHANGES, keep=2))
@pytest.mark.parametrize("job", ["full", "incremental"])
def test_a_partition_changed_before_the_export_locked_it_is_named(
        db: Database, tmp_path: Path, statement: str, job: str) -> None:
    """The export reads a partitioned table or an inheritance parent, which holds its
    partitions' and children's rows: one of them truncated or rewritten between the
    snapshot and the locks was read with no row (its table published without them)."""
    d = DAY.isoformat()
    rows = f"(1, '{d} 01:00+00', 'x'), (2, '{d} 02:00+00', 'y')"
    db.execute(
        "CREATE TABLE ea (id int PRIMARY KEY, at timestamptz NOT NULL, body text); "
        f"INSERT INTO ea VALUES {rows}; "
        "CREATE TABLE eb (id int, at timestamptz NOT NULL, body text) PARTITION BY LIST (id); "
        "CREATE TABLE eb_1 PARTITION OF eb FOR VALUES IN (1); "
        "CREATE TABLE eb_2 PARTITION OF eb FOR VALUES IN (2); "
        f"INSERT INTO eb VALUES {rows}; "
        "CREATE TABLE ec (id int, at timestamptz NOT NULL, body text); "
        "CREATE TABLE ec_kid (own int) INHERITS (ec); "
        f"INSERT INTO ec VALUES (1, '{d} 01:00+00', 'x'); "
        f"INSERT INTO ec_kid VALUES (2, '{d} 02:00+00', 'y', 7); "
        "CREATE TABLE ed (id int, at timestamptz NOT NULL, body text) PARTITION BY LIST (id); "
        "CREATE TABLE ed_1 PARTITION OF ed FOR VALUES IN (1); "
        "CREATE TABLE ed_2 PARTITION OF ed FOR VALUES IN (2) PARTITION BY LIST (body); "
        "CREATE TABLE ed_2_1 PARTITION OF ed_2 DEFAULT; "
        f"INSERT INTO ed VALUES {rows}")
    done: list[int] = []

    def hook(event: str, **kw: object) -> None:
        if event == "snapshot" and not done:  # the standby replays it, nothing holds it
            done.append(1)
            db.execute(statement)

    config = make_config(db, "".join(f'[tables.{n}]\ncursor = "at"\n'
                                     for n in ("ea", "eb", "ec", "ed")), jobs=1,
                         retry_attempts=1)  # named, not read again (test above)
    store = open_store(str(tmp_path / "pub"))
    with pytest.raises(SourceError) as failed:
        if job == "full":
            export_full(config, store, hook=hook)
        else:
            export_incremental(config, store, Window.day(DAY), hook=hook)
    assert done and failed.value.exit_code == 3
    leaf = (statement.split()[-1] if statement.startswith("TRUNCATE")
            else "eb_2" if "DETACH" in statement else "ec_kid")
    assert f"public.{leaf[:2]} (its partition or child public.{leaf})" in failed.value.message
    assert "changed on the source after" in failed.value.message
    assert failed.value.hint is not None and "run it again" in failed.value.hint
    assert _files(tmp_path / "pub") == []


@pytest.mark.parametrize("statement", first_kept(["ALTER TABLE t RENAME v TO w",
                                                  "TRUNCATE t", "ALTER TABLE t DROP v",
                                                  "ALTER TABLE t ALTER v TYPE varchar(30)"]))
def test_verify_of_a_postgresql_table_changed_under_its_snapshot(
        db: Database, statement: str) -> None:
    """verify hashes each table in one snapshot of the standby: a column renamed since it
    began failed the hash (undefined column); a table truncated or rewritten was hashed
    with no row, its replica's rows reported as differences."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text); "
               "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    table = TableDef("public.t", TableRef("public", "t"), "full",
                     [Column("id", "integer", False), Column("v", "text", True)], ["id"],
                     None, None, "", ("public", "t"))
    with PostgresSource(db.standby_url, False, "topoff verify") as source:
        source.open()
        db.execute(statement)  # replayed: verify holds no lock yet
        verifier = source.verifier()
        with pytest.raises(SourceError) as failed:
            assert verifier.mismatch(table) is None
            verifier.hash(table, False, None, None, "exact")
    assert failed.value.exit_code == 3
    assert "public.t" in failed.value.message
    assert "changed on the source after the verify's snapshot" in failed.value.message
    assert failed.value.hint is not None and "run it again" in failed.value.hint
