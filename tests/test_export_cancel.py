"""A failing unit of a parallel PostgreSQL export stops the others, even one whose query
reaches the server after the first cancel (which then found nothing to cancel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.export_hooks import late_start
from support.pg import Database, make_config
from topoff.errors import SourceError
from topoff.export.full import export_full
from topoff.stores import open_store

CONFIG = """
dataset = "cancel"
[tables.bad]
cursor = "ts"
filter = "(SELECT 1 / (id - 1) FROM pg_sleep(0.5 + 0 * id)) >= 0"
[tables.slow]
cursor = "ts"
filter = "(SELECT true FROM pg_sleep(0.01 + 0 * id))"
"""


def test_a_read_that_starts_after_the_failure_is_stopped_too(db: Database,
                                                             tmp_path: Path) -> None:
    db.execute("CREATE TABLE bad (id int PRIMARY KEY, ts timestamptz DEFAULT now());"
               "INSERT INTO bad VALUES (1);"
               "CREATE TABLE slow (id int PRIMARY KEY, ts timestamptz DEFAULT now());"
               "INSERT INTO slow SELECT generate_series(1, 3000)")
    config = make_config(db, CONFIG, jobs=2, retry_attempts=1)
    hook, done = late_start("public.slow")
    with pytest.raises(SourceError) as e:
        export_full(config, open_store(str(tmp_path / "pub")), hook=hook)
    assert "division by zero" in e.value.message
    assert "public.slow" not in done
    running = db.standby_query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                               "'%pg_sleep(0.01 +%' AND pid <> pg_backend_pid()")
    assert running == [(0,)]
