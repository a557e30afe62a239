"""``iceberg compact`` and ``iceberg expire --older-than 0s`` while ``topoff replicate``
refreshes the same Iceberg table: a refresh whose files were replaced and deleted while it
read them is "locked" (another writer), nothing of it committed; the next run applies it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from test_replicate_iceberg import iceberg_table, same, setup  # noqa: F401
from topoff.replicate.engine import run_once
from topoff.targets.iceberg import replica_write
from topoff.targets.iceberg.compact import compact
from topoff.targets.iceberg.maintenance import expire


def test_a_refresh_reading_files_a_compaction_replaced_and_an_expiry_deleted(
        setup, monkeypatch):  # noqa: F811
    db, target, cfg = setup
    run_once(cfg, ["upd"])
    for n in range(3):  # small files to compact
        db.execute(f"UPDATE upd SET changed = '2026-04-01'::timestamptz + interval '{n} s', "
                   f"state = 's{n}' WHERE id % 50 = {n}")
        run_once(cfg, ["upd"])
    db.execute("UPDATE upd SET changed = '2026-05-01', state = 'late' WHERE id % 40 = 3")
    real = replica_write.delete_keys
    done: list[str] = []

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not done:  # the refresh planned on the table as it was; then another writer
            done.extend(c.table for c in compact(target, ["app.public.upd"]))
            expire(target, timedelta(0))
        return real(*args, **kwargs)

    monkeypatch.setattr(replica_write, "delete_keys", meanwhile)
    [run] = run_once(cfg, ["upd"])
    assert done == ["app.public.upd"]
    assert run.status == "locked", (run.status, run.error)
    monkeypatch.undo()
    [run] = run_once(cfg, ["upd"])
    assert run.status == "ok" and run.rows == 125, (run.status, run.rows, run.error)
    same(target, db, "upd")
