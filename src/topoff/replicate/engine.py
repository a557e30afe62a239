"""``topoff replicate`` as a library: refresh the configured tables into the target.

:func:`run_once` refreshes every table (or those named), each in its own target
transaction (apply.py); a failing table is reported and the others go on. On a
PostgreSQL target, ``jobs`` tables run at once, each with its own connection; a DuckDB
file has one writer, so its tables run one after the other. A table another run is
refreshing at that moment is skipped with status "locked".

Table names: ``source.schema.name``, ``source.name``, or ``name`` when only one configured
table has it (else a ConfigError listing the candidates).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from topoff.errors import INTERNAL_ERROR, ConfigError, Interrupted, LockedError, TopoffError
from topoff.replicate.apply import Request, Result, landing, refresh
from topoff.replicate.check import upper_bound_notes
from topoff.replicate.config import ReplicateConfig, ReplicateSource, ReplicateTable
from topoff.replicate.store import StateStore
from topoff.targets import Target
from topoff.targets import open_target as _open
from topoff.targets.base import TableRef
from topoff.targets.errors import classify
from topoff.targets.iceberg import is_iceberg
from topoff.workers import Workers

log = logging.getLogger("topoff")


class _Bug(TopoffError):
    exit_code = INTERNAL_ERROR


@dataclass(frozen=True)
class TableRun:
    source: str
    table: str
    target: TableRef
    method: str
    status: str  # "ok" | "unchanged" | "paused" | "locked" | "failed"
    rows: int
    seconds: float
    lag_seconds: float | None
    error: str | None
    #: the exit code of the failure (errors.py), 0 unless failed
    exit_code: int = 0
    #: the lag is an upper bound: this role cannot see the standby's WAL receiver
    lag_bound_role: str | None = None


def open_target(url: str) -> Target:
    """The target a URL names, as ``topoff sync`` reads it (postgresql://, a libpq string,
    or a DuckDB file)."""
    return _open(url)


Pair = tuple[ReplicateSource, ReplicateTable]


def _pairs(config: ReplicateConfig) -> list[Pair]:
    pairs = [(s, t) for s in config.sources for t in s.tables]
    seen: dict[TableRef, str] = {}
    for s, t in pairs:
        ref = landing(s, t)
        name = f"{s.name}.{t.qualified}"
        if ref in seen:
            raise ConfigError(f"{seen[ref]} and {name} both land in {ref}",
                              hint="set another target_schema for one of the sources (a "
                              "table lands under its source name)")
        seen[ref] = name
    return pairs


def resolve(config: ReplicateConfig, name: str) -> Pair:
    """The configured table ``name`` means (source.schema.name, source.name or name)."""
    pairs = _pairs(config)
    found = [(s, t) for s, t in pairs if name in (
        f"{s.name}.{t.qualified}", f"{s.name}.{t.name}", t.name, t.qualified)]
    exact = [(s, t) for s, t in found if name == f"{s.name}.{t.qualified}"]
    if exact:
        return exact[0]
    if len(found) == 1:
        return found[0]
    every = ", ".join(f"{s.name}.{t.qualified}" for s, t in (found or pairs))
    if not found:
        raise ConfigError(f"no configured table is called {name!r}",
                          hint=f"configured tables: {every}")
    raise ConfigError(f"{name!r} names several configured tables",
                      hint=f"write it as source.schema.name: {every}")


Refresh = Callable[[ReplicateSource, ReplicateTable, Request], Result]


def _run_one(engine: Target | Refresh, s: ReplicateSource, t: ReplicateTable,
             request: Request) -> TableRun:
    start = time.monotonic()
    ref = landing(s, t)
    try:
        try:
            r = engine(s, t, request) if callable(engine) else refresh(engine, s, t, request)
        except (TopoffError, KeyboardInterrupt):
            raise
        except Exception as e:
            found = classify(e, f"{s.name}.{t.qualified}", replicating=True)
            if found is None:
                log.debug("%s", traceback.format_exc())
                text = str(e).strip()
                raise _Bug(f"internal error: {text.splitlines()[0] if text else type(e).__name__}",
                           hint="this is a bug in topoff; set TOPOFF_DEBUG=1 or -v for the "
                           "traceback and report it") from e
            raise found from e
    except TopoffError as e:
        if isinstance(e, Interrupted):  # Ctrl-C inside an engine's statement: stop the run
            raise
        code = e.exit_code
        seconds = time.monotonic() - start
        log.error("%s.%s: failed after %.1fs: %s", s.name, t.qualified, seconds, e.message)
        return TableRun(s.name, t.qualified, ref, t.method, "failed", 0, seconds, None,
                        e.message if not e.hint else f"{e.message} (hint: {e.hint})", code)
    seconds = time.monotonic() - start
    _log(s, t, ref, r, seconds)
    return TableRun(s.name, t.qualified, ref, t.method, r.status, r.rows, seconds,
                    r.lag_seconds, None, lag_bound_role=r.lag_bound_role)


def _log(s: ReplicateSource, t: ReplicateTable, ref: TableRef, r: Result,
         seconds: float) -> None:
    name = f"{s.name}.{t.qualified}"
    extra = {"event": "replicate", "table": name, "rows": r.rows, "seconds": round(seconds, 3)}
    for note in r.notes:
        log.info("%s: %s", name, note, extra=extra)
    if r.status == "locked":
        log.warning("%s: skipped, another run is refreshing it", name, extra=extra)
    elif r.status == "paused":
        log.info("%s: paused", name, extra=extra)
    else:
        lag = f"{r.lag_seconds:.1f}s" if r.lag_seconds is not None else "-"
        what = "unchanged" if r.status == "unchanged" else f"{r.rows:,} rows"
        log.info("%s -> %s: %s, lag %s, %.1fs", name, ref, what, lag, seconds, extra=extra)


def _locked_runs(pairs: Sequence[Pair], e: TopoffError) -> list[TableRun]:
    log.warning("%s", e.message)
    return [TableRun(s.name, t.qualified, landing(s, t), t.method, "locked", 0, 0.0, None,
                     e.message) for s, t in pairs]


def _ensure_schemas(engine: Target, pairs: Sequence[Pair]) -> None:
    """The landing schemas, made before tables are built in parallel (two CREATE SCHEMA
    IF NOT EXISTS at once collide)."""
    for schema in sorted({landing(s, t).schema for s, t in pairs}):
        with engine.transaction():
            engine.lock_wait("replicate-schemas")
            engine.execute(f"CREATE SCHEMA IF NOT EXISTS {engine.ident(schema)}")


def _for_tables(config: ReplicateConfig, pairs: Sequence[Pair], request: Request,
                jobs: int) -> list[TableRun]:
    if is_iceberg(config.target):  # each table its own commits
        return _iceberg_tables(config, pairs, request, jobs)
    try:
        engine = open_target(config.target)
    except LockedError as e:  # a DuckDB file another process has open
        return _locked_runs(pairs, e)
    try:
        StateStore(engine).ensure()
        _ensure_schemas(engine, pairs)
        if jobs <= 1 or not engine.capabilities.parallel_tables or len(pairs) <= 1:
            return [_run_one(engine, s, t, request) for s, t in pairs]
    finally:
        engine.close()

    def work(pair: Pair) -> TableRun:
        with open_target(config.target) as own:
            return _run_one(own, pair[0], pair[1], request)

    with Workers(jobs, "topoff-replicate") as pool:  # interrupted with the command
        return pool.map(work, pairs)


def _iceberg_tables(config: ReplicateConfig, pairs: Sequence[Pair], request: Request,
                    jobs: int) -> list[TableRun]:
    """The tables refreshed into an Iceberg catalog; with ``jobs`` > 1 several at once, each
    thread with a catalog of its own (the namespaces made first: two creations collide)."""
    from topoff.replicate.iceberg_apply import IcebergReplica
    from topoff.targets.iceberg.capabilities import ICEBERG

    replica = IcebergReplica(config.target)
    if jobs <= 1 or not ICEBERG.parallel_tables or len(pairs) <= 1:
        return [_run_one(replica.refresh, s, t, request) for s, t in pairs]
    replica.make_namespaces({landing(s, t).schema for s, t in pairs})
    own = threading.local()
    stop = threading.Event()  # set on SIGTERM/Ctrl-C: the threads stop, committing nothing

    def work(pair: Pair) -> TableRun:
        if not hasattr(own, "replica"):
            own.replica = IcebergReplica(config.target)
            own.replica.stop = stop
        return _run_one(own.replica.refresh, pair[0], pair[1], request)

    with Workers(jobs, "topoff-replicate") as pool:  # interrupted with the command
        try:
            return pool.map(work, pairs)
        except BaseException:
            stop.set()  # a refresh checks it at each block and before its commit
            raise


def run_once(config: ReplicateConfig, tables: Sequence[str] | None = None,
             jobs: int = 1) -> list[TableRun]:
    """Refresh every configured table (or ``tables``) once; one TableRun per table."""
    pairs = [resolve(config, n) for n in tables] if tables else _pairs(config)
    pairs = list(dict.fromkeys(pairs))
    runs = _for_tables(config, pairs, Request(), jobs)
    for note in upper_bound_notes((f"{r.source}.{r.table}", r.lag_bound_role) for r in runs):
        log.warning("%s", note)  # once a run, not once a table
    return runs


def _single(config: ReplicateConfig, table: str, request: Request) -> TableRun:
    return _for_tables(config, [resolve(config, table)], request, 1)[0]


def repull(config: ReplicateConfig, table: str, lo: str | None = None,
           hi: str | None = None) -> TableRun:
    """Read the table again from the source (every row, or the cursor range lo..hi,
    inclusive) and merge it in; a paused table is repulled too."""
    if lo is not None or hi is not None:
        _, t = resolve(config, table)
        if t.method == "snapshot":
            raise ConfigError(f"{t.qualified} is a snapshot table: it has no cursor range",
                              hint="repull it whole (without --from and --to)")
    return _single(config, table, Request("repull", lo, hi))


def resync(config: ReplicateConfig, table: str) -> TableRun:
    """Drop the table in the target and its state, and build it again, in one transaction
    (other tables are not touched)."""
    return _single(config, table, Request("resync"))


def set_paused(config: ReplicateConfig, table: str, paused: bool) -> None:
    """Pause (runs skip it) or resume a table."""
    s, t = resolve(config, table)
    if is_iceberg(config.target):
        from topoff.replicate.iceberg_apply import IcebergReplica

        IcebergReplica(config.target).set_paused(s, t, paused)
        log.info("%s.%s: %s", s.name, t.qualified, "paused" if paused else "resumed")
        return
    with open_target(config.target) as engine:
        store = StateStore(engine)
        store.ensure()
        with engine.transaction():
            store.set_paused(s.name, t.qualified, landing(s, t), t.method, paused)
    log.info("%s.%s: %s", s.name, t.qualified, "paused" if paused else "resumed")
