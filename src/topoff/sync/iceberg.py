"""The sync loop of an Iceberg replica: which tables are behind, and what to apply to each
(plan.py's order; the other targets' ledger lives in each table here, see table.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from topoff.dataset.index import Index, Publication
from topoff.dataset.manifest import Manifest, TableEntry
from topoff.errors import ConfigError, TargetError
from topoff.stores import Store
from topoff.sync.fetch import Fetcher, removed_meanwhile
from topoff.sync.iceberg_apply import (
    apply_table,
    check_columns,
    commit_groups,
    fetch_all,
    load_files,
    refuse_options,
)
from topoff.sync.iceberg_chain import chained
from topoff.sync.plan import plan_sync, rebase_hint, select_tables
from topoff.targets.iceberg.config import CatalogSettings, open_catalog
from topoff.targets.iceberg.table import (
    TableLedger,
    definition,
    new_table,
    partition_clash,
    replica_tables,
    row_count,
    state_of,
    table_name,
)
from topoff.targets.iceberg.txn import transaction

log = logging.getLogger("topoff")
ReadManifest = Callable[[Store, Publication], Manifest]


def sync_iceberg(store: Store, index: Index, settings: CatalogSettings, origin: str,
                 location: str, opts: Any, fetcher: Fetcher, read_manifest: ReadManifest,
                 result: Any) -> None:
    """Bring the Iceberg tables of ``index.dataset`` up to date; fills ``result``."""
    refuse_options(opts)
    catalog = open_catalog(settings)
    ns = settings.namespace
    have = replica_tables(catalog, ns, index.dataset)
    if have and opts.rebase:
        for table, _ in have.values():
            catalog.purge_table(table.name())
        log.info("rebase: dropped the replica's tables of %s", index.dataset)
        have = {}
    state = state_of(have, index.dataset)
    if state is not None and opts.tables is not None:
        base = index.get(state.base)
        chosen = select_tables(read_manifest(store, base), opts.tables) if base else opts.tables
        if state.tables is None or set(chosen) != set(state.tables):
            raise ConfigError(f"the replica was built with tables {state.tables or 'all'}; "
                              "--tables differs", hint=rebase_hint(origin, location)
                              + " --tables ...")
    plan = plan_sync(index, state, origin, location)
    partitions = [(p, read_manifest(store, p)) for p in sorted(plan.apply,
                                                               key=lambda p: p.sequence)]
    base_manifest = read_manifest(store, plan.base) if plan.base is not None else None
    _one_name_each(have, base_manifest, partitions, state, opts.tables, settings.url)

    def apply_one(pub: Publication, manifest: Manifest, q: str, txn: Any = None,
                  given: tuple[Iterator[Any], list[Path]] | None = None) -> None:
        """Publication ``pub`` into table ``q`` (in ``txn`` when given, where the caller
        sets the ledger's properties, else its own commit).
        Its downloaded files are dropped once read (a first build that merges many
        partitions does not keep them all until its commit). ``given``: its rows read by
        the caller's thread (publication_rows) and the list their paths go to."""
        entry = manifest.tables[q]
        table, ledger = have[q]
        added = check_columns(ledger, entry, pub)
        if added and (why := partition_clash(table.metadata, added)):
            raise TargetError(f"{pub.id} {q} {why}", hint=(
                "export a full dataset (a table made from it holding the column has its "
                "partitions named otherwise), then " + rebase_hint(origin, location)))
        source = (pub, manifest, entry) if not entry.unchanged_since else \
            _unapplied_source(store, index, table, ledger, entry, read_manifest, origin,
                              location)
        if source is None:
            _pass_over(table, ledger, pub, txn=txn)
            return
        src_pub, src_manifest, src = source
        paths = given[1] if given else fetch_all(fetcher, src_pub, src)
        rows = apply_table(table, ledger, src, paths, pub, src_manifest, added, opts.hook, txn,
                           given[0] if given else None)
        if rows != src.rows:
            raise TargetError(f"{src_pub.id} {q}: loaded {rows} rows, the manifest says "
                              f"{src.rows}", hint="republish the dataset")
        result.rows += rows
        log.info("applied %s to %s: %s rows", pub.id, q, f"{rows:,}")
        for p in paths:
            fetcher.release(p)

    if plan.base is not None:
        base = plan.base
        manifest = base_manifest
        assert manifest is not None
        wanted = state.tables if state is not None and state.tables is not None \
            else select_tables(manifest, opts.tables)
        partial = state.tables if state is not None else \
            (wanted if opts.tables is not None else None)
        names = {q: definition(manifest.tables[q], ns).target.name for q in wanted}
        for q in wanted:  # every table first: a resumed load knows the whole set
            if q in have:
                continue
            entry = manifest.tables[q]
            if catalog.table_exists((ns, names[q])):
                _refuse_existing(catalog, ns, names[q], index.dataset, settings.url)
            ledger = TableLedger(index.dataset, store.url, base.id, base.sequence, 0, None,
                                 "schema", definition(entry, ns),
                                 partial)
            have[q] = (new_table(catalog, ns, entry, ledger), ledger)
        log.info("loading %s (%d tables) into %s", base.id, len(wanted), settings.url)
        for q in wanted:
            table, ledger = have[q]
            entry = manifest.tables[q]
            if ledger.ready:
                continue
            groups = commit_groups(list(entry.files), ledger.files_done())
            # the partitions after the full export, in the commit of its last files: one
            # commit for the table; rows a partition's window replaces are not written
            later = [(p, m) for p, m in partitions if q in m.tables]
            for n, group in enumerate(groups, 1):
                merged = later if n == len(groups) else []
                replaced = [(m.tables[q], m) for _, m in merged
                            if not m.tables[q].unchanged_since]
                with transaction(table) as txn, contextlib.closing(chained(
                        ledger, q, merged, txn.table_metadata.schema(), fetcher)) as chain:
                    rows, paths = load_files(table, ledger, entry, group,
                                             lambda f: fetcher.locate(base.id, f), base,
                                             opts.hook, txn, replaced, chain.first(
                                                 entry, group, base, replaced))
                    for p, m in merged:
                        apply_one(p, m, q, txn, chain.next())
                    # the last ledger, once: each snapshot's summary names its publication
                    txn.set_properties(ledger.properties())
                for path in paths:
                    fetcher.release(path)
                result.rows += rows
                first, last = group[0][0], group[-1][0]
                log.info("loaded %s %s/%d (%s rows%s)", q, f"files {first}-{last}"
                         if last > first else f"file {last}", len(entry.files), f"{rows:,}",
                         f", with {len(merged)} partitions" if merged else "")
        result.base_loaded = base.id
        state = state_of(have, index.dataset)
        assert state is not None
    assert state is not None
    for pub, manifest in partitions:
        for q, entry in manifest.tables.items():
            if q not in have and state.tables is not None:
                continue  # a partial replica: a table the publication adds, not chosen
            if q in have and have[q][1].sequence >= pub.sequence:
                continue  # committed already (with the full export, or by a stopped run)
            if q not in have:
                ledger = TableLedger(index.dataset, store.url, state.base,
                                     state.base_sequence, 0, None, "ready",
                                     definition(entry, ns), None)
                have[q] = (new_table(catalog, ns, entry, ledger), ledger)
            apply_one(pub, manifest, q)
        if opts.hook:
            opts.hook("partition_applied", publication=pub.id)
        result.applied.append(pub.id)
    newest = max([p.sequence for p, _ in plan.skip] + [0])
    for table, ledger in have.values():
        if ledger.sequence < newest:
            _pass_over(table, ledger, None, newest)
    result.passed_over.extend(p.id for p, _ in plan.skip)
    result.last_sequence = min((lg.sequence for _, lg in have.values()), default=0)
    result.rows_held = sum(row_count(t) for t, _ in have.values())


def _one_name_each(have: dict[str, tuple[Any, TableLedger]], base: Manifest | None,
                   partitions: list[tuple[Publication, Manifest]], state: Any,
                   tables: list[str] | None, url: str) -> None:
    """Two tables of the dataset whose Iceberg names are one (``a.b`` and ``public.a__b``
    are both ``a__b``, in one namespace) are refused naming both, before anything is made:
    the tables held, those the full export brings and those partitions add."""
    names = {q: ledger.definition.target.name for q, (_, ledger) in have.items()}
    chosen = state.tables if state is not None else None
    if base is not None:  # as the full export's load below chooses them
        wanted = chosen if chosen is not None else select_tables(base, tables)
        names.update((q, table_name(base.tables[q])) for q in wanted if q not in names)
        if state is None and tables is not None:
            chosen = wanted
    for _, manifest in partitions:
        names.update((q, table_name(e)) for q, e in manifest.tables.items()
                     if q not in names and (chosen is None or q in chosen))
    seen: dict[str, str] = {}
    for q, name in names.items():
        other = seen.setdefault(name, q)
        if other != q:
            raise TargetError(f"tables {other} and {q} of the dataset would both be the "
                              f"Iceberg table {name} of {url}",
                              hint="leave one of them out with --tables, or use a DuckDB "
                              "or PostgreSQL replica")


def run(origin: str, location: str, opts: Any, result: Any,
        read_manifest: ReadManifest) -> None:
    """``topoff sync ORIGIN iceberg:FILE``: open the store and the catalog, sync, close."""
    from pyiceberg.exceptions import (
        CommitFailedException,
        TableAlreadyExistsError,
        ValidationException,
    )

    from topoff.dataset.index import read_index
    from topoff.errors import NotPublishedError
    from topoff.stores import open_store
    from topoff.targets.iceberg.config import catalog_failure, read_settings
    from topoff.targets.iceberg.memory import returning_pool

    settings = read_settings(location)
    returning_pool()
    with open_store(origin, opts.store_options) as store:
        index = read_index(store)
        if index is None:
            raise NotPublishedError(f"nothing is published at {store.url} (no index.json)",
                                    hint="check the location, or publish with "
                                         "`topoff export full`")
        result.dataset = index.dataset
        fetcher = Fetcher(store, opts.cache_dir, opts.download_progress)
        try:
            with removed_meanwhile(store, index, origin):
                sync_iceberg(store, index, settings, origin, location, opts, fetcher,
                             read_manifest, result)
        except (CommitFailedException, ValidationException,  # lost a race (its retry too)
                TableAlreadyExistsError):  # or made a table another sync made first
            raise _raced(settings.url) from None
        except FileNotFoundError as e:  # read by another writer's expire, or lost
            if _current_files_present(settings, index.dataset):
                raise _raced(settings.url) from None
            raise _failed(settings.url, e) from None
        except OSError as e:  # the warehouse: a full disk, a refused permission, S3
            raise _failed(settings.url, e) from None
        except Exception as e:  # the SQL catalog's database: a full disk
            found = catalog_failure(e, settings.url)
            if found is None:
                raise
            raise found from None
        finally:
            fetcher.close()
        result.downloaded_bytes = fetcher.downloaded_bytes


def _failed(url: str, e: OSError) -> TargetError:
    return TargetError(f"writing the Iceberg tables of {url} failed "
                       f"({e.strerror or type(e).__name__}); nothing of the current "
                       "commit was applied",
                       hint="fix the warehouse, then run the sync again (it resumes)")


def _current_files_present(settings: CatalogSettings, dataset: str) -> bool:
    """Whether the files this sync found missing were only those another writer replaced
    meanwhile (a compaction) and an expire at a short age deleted: every file the tables'
    current snapshots read is there."""
    from topoff.targets.iceberg.reachable import current_files_present

    try:
        catalog = open_catalog(settings, create=False)
        if catalog is None:
            return False
        tables = replica_tables(catalog, settings.namespace, dataset)
        # no table yet: the file this sync missed was its own (a warehouse it cannot make)
        return bool(tables) and all(current_files_present(t) for t, _ in tables.values())
    except OSError:  # the warehouse itself fails: said as such
        return False


def _raced(url: str) -> TargetError:
    return TargetError(f"another writer changed (or made) a table of {url} during this "
                       "sync; nothing of the refused commit was applied",
                       hint="run the sync again (it resumes)")


def _refuse_existing(catalog: Any, namespace: str, name: str, dataset: str, url: str) -> None:
    """A table this sync is about to make exists: made by another sync of ``dataset``
    since this one listed the namespace (a race), or not topoff's (refused)."""
    table = catalog.load_table((namespace, name))
    ledger = TableLedger.from_properties(dict(table.properties), namespace, name)
    if ledger is not None and ledger.dataset == dataset:
        raise _raced(url)
    raise TargetError(f"table {namespace}.{name} already exists in {url} and is not part "
                      "of this replica", hint="drop it, or use another namespace")


def _applied(table: Any, publication: str) -> bool:
    """Whether a commit of ``publication`` is in the table's snapshots (their summaries)."""
    for snap in table.metadata.snapshots:
        props = snap.summary.additional_properties if snap.summary else {}
        if props.get("topoff.publication") == publication:
            return True
    return False


def _unapplied_source(store: Store, index: Index, table: Any, ledger: TableLedger,
                      entry: TableEntry, read_manifest: ReadManifest, origin: str,
                      location: str) -> tuple[Publication, Manifest, TableEntry] | None:
    """Where to load a table a partition marks unchanged since ``ref`` when this table
    never got ``ref``'s rows (it passed over ``ref``); None when it holds them. Applying a
    publication twice leaves a table as once (a window, keys or the whole table are
    replaced), so a snapshot history shortened by expiry costs a reload, never a row."""
    ref = entry.unchanged_since
    assert ref is not None
    pub = index.get(ref)
    removed = next((r for r in index.removed if r["id"] == ref), None) if pub is None else None
    sequence = pub.sequence if pub else (removed["sequence"] if removed else None)
    if sequence is not None and sequence <= ledger.base_sequence:
        return None
    if _applied(table, ref):
        return None
    if pub is None:
        raise TargetError(f"{entry.qualified} is unchanged since {ref}, which this replica "
                          f"did not apply and {origin} no longer has",
                          hint=rebase_hint(origin, location))
    held = read_manifest(store, pub).tables.get(entry.qualified)
    if held is None:
        raise TargetError(f"{entry.qualified} is unchanged since {ref}, which does not hold it",
                          hint="the dataset is damaged; " + rebase_hint(origin, location))
    if held.unchanged_since:
        return _unapplied_source(store, index, table, ledger, held, read_manifest, origin,
                                 location)
    return pub, read_manifest(store, pub), held


def _pass_over(table: Any, ledger: TableLedger, pub: Publication | None,
               sequence: int | None = None, txn: Any = None) -> None:
    """Record a publication that leaves the table as it is (a properties-only commit, or
    in ``txn``, where the caller sets the ledger's properties)."""
    ledger.sequence = pub.sequence if pub else (sequence or ledger.sequence)
    if pub is not None:
        ledger.publication = pub.id
    if txn is not None:
        return
    with transaction(table) as own:
        own.set_properties(ledger.properties())
