"""One refresh of one table into an Iceberg replica (``target = "iceberg:catalog.toml"``):
the counterpart of apply.py for a target that is not SQL.

The same configuration, source sessions (source.py), description (describe.py) and
state (state.py) as the SQL path; the source's read plan comes from iceberg_pull.py, and
the rows, the new columns and the table's state land in ONE Iceberg commit
(targets/iceberg/replica_write.py). Each source's tables live in their own namespace
(its ``target_schema``, by default the source's name), under the table's name.

* The first run makes the table (an empty one, properties only), then loads it in one
  commit; a run killed in between leaves the empty table, which the next run loads.
* A second run on the same table at the same moment: the commit that lands second is
  refused by the catalog (it asserts the snapshot its state was read from); that run
  reports the table "locked" and wrote nothing.
* A column added on the source becomes a new Iceberg column (earlier rows: NULL); a
  column dropped on the source is kept (later rows: NULL), or dropped with ``drop_columns``
  (not a key or cursor column); a type change that changes the
  Iceberg type is refused (TargetError, nothing changed; ``--resync`` rebuilds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from topoff.dataset.manifest import Column
from topoff.errors import ConfigError, IntegrityError, Interrupted, TargetError
from topoff.replicate.apply import Result, landing, replaced
from topoff.replicate.config import ReplicateSource, ReplicateTable
from topoff.replicate.iceberg_pull import Pull, pull
from topoff.replicate.pg_source import PostgresSession
from topoff.replicate.shape import same_key, table_def
from topoff.replicate.source import Request, measured, open_session
from topoff.replicate.state import TableState
from topoff.safety import retry_on_recovery_conflict
from topoff.targets.base import TableDef
from topoff.targets.iceberg.config import NAME, ensure_namespace
from topoff.targets.iceberg.replica import Held, P, check_name, create, held
from topoff.targets.iceberg.replica_write import Change, Hook, commit
from topoff.targets.iceberg.table import array_key, partition_clash
from topoff.targets.iceberg.txn import transaction
from topoff.targets.iceberg.types import iceberg_type

log = logging.getLogger("topoff")


def follow(stored: TableDef, current: TableDef, drop: bool = False
           ) -> tuple[TableDef, list[Column], list[str], list[str]]:
    """The definition to store, the columns to add, the columns to drop (``drop``: those
    dropped on the source; else none, they are kept) and what changed in words; a type
    change the Iceberg column cannot take, or a key that changed, is a TargetError (nothing
    changed)."""
    same_key(stored, current)
    old = {c.name: c for c in stored.columns}
    now = {c.name for c in current.columns}
    added: list[Column] = []
    notes: list[str] = []
    columns: list[Column] = []
    for c in current.columns:
        before = old.get(c.name)
        if before is None:
            added.append(c)
            notes.append(f"added column {c.name}")
        elif before.type != c.type:
            if iceberg_type(before) != iceberg_type(c):
                raise TargetError(
                    f"{current.source}: column {c.name} changed type from {before.type} to "
                    f"{c.type}, which its Iceberg column ({iceberg_type(before)}) cannot "
                    "hold; nothing was changed",
                    hint=f"rebuild the table: topoff replicate --resync {current.source}")
            notes.append(f"column {c.name} is now {c.type}")
        columns.append(c)
    dropped: list[str] = []
    for c in stored.columns:
        if c.name in now:
            continue
        if drop and c.name not in stored.primary_key and c.name != stored.cursor:
            dropped.append(c.name)
            notes.append(f"dropped column {c.name}")
            continue
        columns.append(Column(c.name, c.type, True, c.enum))
        if c.nullable is False:
            notes.append(f"kept column {c.name}, dropped on the source")
    result = TableDef(current.source, current.target, current.method, columns,
                      list(stored.primary_key), current.cursor, current.cursor_type,
                      current.cursor_timezone, current.source_parts)
    return result, added, dropped, notes


def state_of(h: Held) -> TableState | None:
    """The table's stored state (None before its first load); IntegrityError if damaged."""
    if not h.state:
        return None
    try:
        return TableState.from_json(h.state)
    except IntegrityError as e:
        raise IntegrityError(f"Iceberg table {h.definition.target}: {e.message}",
                             hint=f"rebuild it: topoff replicate --resync {h.source}."
                             f"{h.table}") from None


class IcebergReplica:
    """The Iceberg catalog of a replicate config's target."""

    def __init__(self, location: str) -> None:
        from topoff.targets.iceberg.config import open_catalog, read_settings

        self.settings = read_settings(location)
        self.catalog = open_catalog(self.settings)
        self.url = self.settings.url
        #: called inside each commit before it is made (tests: a failure there)
        self.hook: Hook | None = None
        #: set when the run is interrupted (``--jobs``: the main thread's SIGTERM/Ctrl-C):
        #: a refresh stops at its next block of rows and never commits
        self.stop: threading.Event | None = None

    def _stopped(self) -> None:
        if self.stop is not None and self.stop.is_set():
            from topoff.targets.errors import INTERRUPTED_HINT

            raise Interrupted("interrupted", hint=INTERRUPTED_HINT)

    def _watched(self, blocks: Iterator[bytes]) -> Iterator[bytes]:
        for block in blocks:
            self._stopped()
            yield block

    def _namespace(self, name: str) -> None:
        ensure_namespace(self.catalog, name)

    def make_namespaces(self, names: set[str]) -> None:
        """The namespaces tables land in, made before tables are built in parallel (a
        name a catalog does not take is left to each table's refresh to refuse)."""
        for name in sorted(n for n in names if NAME.match(n)):
            self._namespace(name)

    def load(self, source: ReplicateSource, t: ReplicateTable) -> tuple[Any, Held | None]:
        """The table and its properties (None, None when it does not exist yet)."""
        from pyiceberg.exceptions import NoSuchTableError

        where = landing(source, t)
        ref = check_name(where.schema, where.name)
        try:
            table = self.catalog.load_table((ref.schema, ref.name))
        except NoSuchTableError:
            return None, None
        h = held(table, ref)
        if h is None or (h.source, h.table) != (source.name, t.qualified):
            raise TargetError(f"table {ref} already exists in {self.url} and is not "
                              f"replicated from {source.name}.{t.qualified}",
                              hint="drop it, or set another target_schema for the source")
        return table, h

    def refresh(self, source: ReplicateSource, t: ReplicateTable, request: Request,
                attempts: int = 5, backoff: float = 2.0) -> Result:
        """One refresh (repull, resync) of ``t``; its rows and state in one commit."""
        from pyiceberg.exceptions import (
            CommitFailedException,
            TableAlreadyExistsError,
            ValidationException,
        )

        table, h = self.load(source, t)
        if h is not None and h.paused and request.kind == "refresh":
            return Result("paused", 0, None)
        if request.kind == "resync" and table is not None:
            self.catalog.purge_table(table.name())
            log.info("%s.%s: dropped its Iceberg table to build it again", source.name,
                     t.qualified)
        try:
            return retry_on_recovery_conflict(
                lambda attempt: self._once(source, t, request), attempts, backoff,
                f"refreshing {source.name}.{t.qualified}")
        except (CommitFailedException, ValidationException, TableAlreadyExistsError):
            # another run committed to the table (or made it) while this one read: nothing
            # of this run's commit landed; the next run picks the table up
            return Result("locked", 0, None)
        except FileNotFoundError as e:  # replaced by another writer, then expired; or lost
            if self._files_present(source, t):
                return Result("locked", 0, None)
            raise self._failed(source, t, e) from None
        except OSError as e:  # the warehouse: a full disk, a refused permission, S3
            raise self._failed(source, t, e) from None

    def _failed(self, source: ReplicateSource, t: ReplicateTable, e: OSError) -> TargetError:
        return TargetError(f"writing {source.name}.{t.qualified} into {self.url} failed "
                           f"({e.strerror or type(e).__name__}); nothing of it was "
                           "committed", hint="fix the warehouse, then run again")

    def _files_present(self, source: ReplicateSource, t: ReplicateTable) -> bool:
        """Whether every file the table's current snapshot reads is there: a file this
        refresh found missing was one another writer replaced meanwhile (a compaction)
        and an expiry at a short age deleted."""
        from topoff.targets.iceberg.reachable import current_files_present

        try:
            table, _ = self.load(source, t)
            return table is not None and current_files_present(table)
        except (OSError, TargetError):
            return False

    def _once(self, source: ReplicateSource, t: ReplicateTable, request: Request) -> Result:
        table, h = self.load(source, t)
        where = landing(source, t)
        src = open_session(source)
        p: Pull | None = None
        try:
            info = src.describe(t)
            if t.method != "snapshot" and (why := array_key(info.columns, info.key)):
                raise TargetError(f"{source.name}.{t.qualified} {why}", hint=(
                    'set key = [...] to columns that are no array, use method = "snapshot", '
                    "or a DuckDB or PostgreSQL target"))
            current = table_def(info, where)
            notes: list[str] = []
            added: list[Column] = []
            paused = h is not None and h.paused
            if table is not None and h is not None and replaced(state_of(h) or TableState(),
                                                                info, src):
                self.catalog.purge_table(table.name())  # as a --resync: built again
                table = h = None
            if table is None or h is None:
                self._namespace(where.schema)
                h = Held(source.name, t.qualified, t.method, current, "", paused, 0, None)
                table = create(self.catalog, h)
            tdef, added, dropped, notes = follow(h.definition, current, t.drop_columns)
            if added and (why := partition_clash(table.metadata, added)):
                raise TargetError(f"{source.name}.{t.qualified} {why}; nothing was changed",
                                  hint=f"rebuild the table: topoff replicate --resync "
                                  f"{source.name}.{t.qualified}")
            h = replace(h, definition=tdef)
            stored = state_of(h)
            first = stored is None
            state = stored or TableState()
            if isinstance(src, PostgresSession):
                p = pull(src.conn, info, state, request, first, bool(notes))
            else:
                from topoff.replicate.iceberg_pull_maria import MariaSession, pull_maria

                assert isinstance(src, MariaSession)
                p = pull_maria(src, info, state, request, first, bool(notes))
            summary = {"topoff.replicate.source": f"{source.name}.{t.qualified}"}
            if p.cursor is not None:
                summary["topoff.replicate.cursor"] = p.cursor
            change = Change(p.replace, self._watched(p.blocks), list(info.columns), p.lo,
                            p.hi, added, summary, dropped, p.lo_inclusive)
            base = h
            done: list[TableState] = []

            def finish(rows: int) -> Held:
                if p.expect is not None and p.counter[0] != p.expect:
                    raise TargetError(f"{t.qualified}: read {p.counter[0]} rows, its count "
                                      f"was {p.expect} in the same snapshot",
                                      hint="this is a bug in topoff; report it")
                self._stopped()  # the last moment before the commit
                new = measured(src, p.finish(rows), state, f"{source.name}.{t.qualified}")
                done.append(replace(new, identity=info.identity, relation=info.members)
                            if t.method != "snapshot" else new)
                return replace(base, state=done[-1].to_json(),
                               rows_total=base.rows_total + rows, updated_at=datetime.now(UTC))

            rows = commit(table, h, change, finish, self.hook)
            src.finish()
        finally:
            close = getattr(p.blocks, "close", None) if p is not None else None
            if close is not None:  # a reader thread still copying: stopped before the close
                close()
            src.close()
        return Result(p.status, rows, done[-1].lag_seconds(datetime.now(UTC)), tuple(notes),
                      done[-1].receiver_hidden_from)

    def set_paused(self, source: ReplicateSource, t: ReplicateTable, paused: bool) -> None:
        table, h = self.load(source, t)
        if table is None or h is None:
            raise ConfigError(f"{source.name}.{t.qualified} has no Iceberg table yet",
                              hint="run topoff replicate --once first")
        with transaction(table) as txn:  # that property only: a refresh's state stays
            txn.set_properties({P + "paused": "true" if paused else "false"})

    def stored(self, namespaces: set[str]) -> list[Held]:
        """Every replicated table in ``namespaces`` (and their properties)."""
        from pyiceberg.exceptions import NoSuchNamespaceError

        from topoff.targets.base import TableRef

        out = []
        for ns in sorted(namespaces):
            try:
                idents = self.catalog.list_tables(ns)
            except NoSuchNamespaceError:
                continue
            for ident in idents:
                h = held(self.catalog.load_table(ident), TableRef(ns, ident[-1]))
                if h is not None:
                    out.append(h)
        return out
