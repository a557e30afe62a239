"""topoff called as a library, the way a program embeds it: calls from two threads at once
leave the process's settings (warning filters, signal handlers) as they found them."""

from __future__ import annotations

import threading
import warnings

import pyiceberg.utils.config  # noqa: F401  (adds warning filters of its own when imported)

from support.pg import make_config
from support.replica import day, publish_day, publish_full
from test_iceberg_sync import catalog_file, iceberg_rows
from topoff.sync import SyncOptions, sync

SMALL_TOML = """
dataset = "small"

[tables.small]
method = "snapshot"
"""


def test_two_iceberg_syncs_in_two_threads_leave_the_warning_filters_as_they_were(db, tmp_path):
    """Each Iceberg commit quiets pyiceberg's "Delete operation did not match any records";
    two syncs in two threads, the first leaving that block while the second is inside it,
    left a filter ignoring every UserWarning of the process behind (the second put back
    what it found: the first one's filter)."""
    db.execute("CREATE TABLE small (id integer PRIMARY KEY, v text)")
    db.execute("INSERT INTO small SELECT g, 'v' || g FROM generate_series(1, 3) g")
    url = str(tmp_path / "published")
    config = make_config(db, SMALL_TOML)
    publish_full(config, url)
    db.execute("INSERT INTO small VALUES (4, 'v4')")
    publish_day(config, url, day(1))  # the table again: applied by a commit of its own
    targets = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        targets.append(catalog_file(tmp_path / name))
    first_inside, second_inside, first_done = (threading.Event() for _ in range(3))

    def first_hook(event: str, **info: object) -> None:
        if event == "table_applied":  # inside the commit's block
            first_inside.set()
            assert second_inside.wait(60)

    def second_hook(event: str, **info: object) -> None:
        if event == "table_applied":
            second_inside.set()
            assert first_done.wait(60)  # the first call has left its block, and returned

    failures: list[BaseException] = []

    def run(target: str, hook: object, done: threading.Event | None) -> None:
        try:
            sync(url, target, SyncOptions(hook=hook))  # type: ignore[arg-type]
        except BaseException as e:  # reported below, from the test's thread
            failures.append(e)
            first_inside.set()
            second_inside.set()
        finally:
            if done is not None:
                done.set()

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        threads = [threading.Thread(target=run, args=(targets[0], first_hook, first_done)),
                   threading.Thread(target=run, args=(targets[1], second_hook, None))]
        threads[0].start()
        assert first_inside.wait(60)  # the second call starts once the first is inside
        threads[1].start()
        for t in threads:
            t.join(120)
        assert not failures, failures
        assert list(warnings.filters) == before
    assert not [w for w in shown if "did not match any records" in str(w.message)]
    for target in targets:
        assert [r[0] for r in iceberg_rows(target, "public.small")] == [1, 2, 3, 4]
