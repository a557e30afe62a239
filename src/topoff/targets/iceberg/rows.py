"""A data file (``.csv.zst``, COPY's CSV) as Arrow record batches of a table's Iceberg
types: decompressed and parsed as a stream, one bounded batch at a time.

Given the file's manifest entry, the file is checked in the same pass (checked.py): its
size and sha256 as the compressed bytes are read, its decompressed bytes against the
manifest's bound, its rows against the manifest's count. A file that fails a check raises
IntegrityError at the latest when its last batch has been read: a caller that commits only
after the whole stream has been read commits nothing of it."""

from __future__ import annotations

import io
import sys
import threading
import traceback
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import zstandard
from pyiceberg.schema import Schema

from topoff.dataset.manifest import Column
from topoff.errors import IntegrityError, TargetError
from topoff.targets.errors import MALFORMED_HINT
from topoff.targets.iceberg.checked import Checked
from topoff.targets.iceberg.types import (
    Unparsable,
    ValueError_,
    array_delimiter,
    array_element,
    arrow_type,
    convert,
    form_of,
)
from topoff.targets.textforms import Rule

#: bytes of CSV parsed at once (a batch holds about this much text)
BLOCK = 16 << 20


#: seconds a stopped stream waits for pyarrow's read-ahead to let go of it (its next read
#: returns nothing: it ends at once, unless the machine is starved)
RELEASE_WAIT = 60.0

#: what pyarrow's CSV reader cannot take: a row longer than two of its blocks
LONG_ROW = f"a row is longer than the {2 * BLOCK >> 20} MiB the Iceberg loader reads at once"


def too_long(e: Exception) -> bool:
    """Whether ``e`` (pyarrow's ArrowInvalid) is its CSV reader meeting a row longer than it
    takes (not a malformed file)."""
    return isinstance(e, pa.ArrowInvalid) and "straddling object" in str(e)


def gathered(parts: Iterator[pa.RecordBatch], limit: int) -> Iterator[pa.Table]:
    """Record batches joined into tables of about ``limit`` bytes (0: one a batch)."""
    held: list[pa.RecordBatch] = []
    size = 0
    for b in parts:
        held.append(b)
        size += b.nbytes
        if size >= limit:
            yield pa.Table.from_batches(held)
            held, size = [], 0
    if held:
        yield pa.Table.from_batches(held)


class _Handle(io.RawIOBase):
    """What pyarrow's reader holds: reads go to the :class:`Stoppable` under it, which
    learns when pyarrow lets go of it (its last reference dropped, by whichever thread)."""

    def __init__(self, owner: Stoppable) -> None:
        self.owner = owner

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self.owner.read(size)

    def readinto(self, buffer: Any) -> int:
        block = self.owner.read(len(buffer))
        buffer[:len(block)] = block
        return len(block)


class Stoppable:
    """The stream pyarrow's CSV reader reads from a thread of its own (it reads ahead of the
    batches asked for). :meth:`stop` ends the stream, waits for a read in progress, then
    until pyarrow has let go of the stream (its read-ahead ended): the streams under it can
    then be closed, or the rest of a damaged file hashed, with no read of pyarrow's inside
    them (zstandard decompresses without the GIL, and closing its reader under a read is a
    use after free), and no thread of pyarrow's is left to call into Python once the
    interpreter exits (a thread that takes the GIL then is ended in the middle of pyarrow's
    C++: "terminate called without an active exception", exit 134, or a hang)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner, self.lock, self.stopped = inner, threading.Lock(), False
        self.released = threading.Event()
        self.handed: weakref.ref[_Handle] | None = None

    def handle(self) -> _Handle:
        """The stream to give pyarrow's reader (once)."""
        h = _Handle(self)
        done = self.released
        self.handed = weakref.ref(h, lambda _: done.set())
        return h

    def read(self, size: int | None = -1) -> bytes:
        with self.lock:
            return b"" if self.stopped else self.inner.read(-1 if size is None else size)

    def stop(self) -> None:
        """Ends the stream; returns once pyarrow has let go of it (call it after dropping the
        reader). Called while an exception propagates (a damaged file, a refused value), the
        frames its traceback holds let go of their locals first: the stream's own reads, in
        which pyarrow's thread met the error, hold the stream as long as the exception
        lives (the wait would last until its cap, then the error be reported)."""
        with self.lock:
            self.stopped = True
        _release_frames(sys.exc_info()[1])
        if self.handed is not None:
            self.released.wait(RELEASE_WAIT)
            self.handed = None  # stopped once: a second stop() returns at once


def _release_frames(exc: BaseException | None) -> None:
    """The locals of the finished frames of ``exc``'s traceback, and of the exceptions it
    was raised from or during, dropped (the traceback itself, its lines, stays)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def parse_options(names: list[str]) -> pacsv.ParseOptions:
    """How COPY's CSV rows of the columns ``names`` are split. An empty line is a row
    whose one column is NULL (COPY writes NULL as nothing): Arrow would skip it. With
    several columns an empty line is not a row COPY writes; it is skipped (the file's
    row count then refuses it), never read as a row of NULLs."""
    return pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=len(names) > 1)


def arrow_schema(schema: Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, arrow_type(f.field_type), nullable=True)
                      for f in schema.fields])


def _column(batch: pa.RecordBatch, name: str, t: Any, delimiter: tuple[str, str],
            form: Rule | None) -> pa.Array:
    try:
        return convert(batch.column(name), t, delimiter[0], form, delimiter[1])
    except ValueError_ as e:
        raise type(e)(f"column {name} ({t}): {e}") from None


def batches(path: Path, name: str, columns: list[Column], schema: Schema,
            checked: Checked | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of ``path`` (whose header must be ``columns``) shaped as ``schema``: its
    columns in its order, those the file lacks as NULL. With ``checked`` (the checks of the
    file's manifest entry) the file is checked while it is read (see the module's
    docstring)."""
    target = arrow_schema(schema)
    names = [c.name for c in columns]
    types = {f.name: f.field_type for f in schema.fields}
    delimiters = {c.name: (array_delimiter(c), array_element(c)) for c in columns}
    forms = {c.name: form_of(c) for c in columns}
    with path.open("rb") as raw:
        try:
            with zstandard.ZstdDecompressor().stream_reader(
                    checked.compressed(raw) if checked else raw, read_across_frames=True) as text:
                stream = Stoppable(checked.decompressed(text) if checked else text)
                try:
                    yield from _parsed(stream, name, names, target, types,
                                       (delimiters, forms), checked)
                finally:
                    stream.stop()  # before the streams under it are closed or drained
            if checked:
                checked.finish()
        except Unparsable as e:  # a text no source writes: the file is not what it declares
            if checked:
                checked.damaged()
            raise IntegrityError(f"{name} is malformed, {e}", hint=MALFORMED_HINT) from None
        except ValueError_ as e:
            if checked:
                checked.damaged()  # a damaged file is reported as such, not by its values
            raise TargetError(f"{name}: a value does not fit its Iceberg column, {e}",
                              hint="nothing of this publication was committed; change the "
                                   "value on the source, leave the table out (--tables), or "
                                   "use a DuckDB or PostgreSQL replica, which keep it (see "
                                   "docs/iceberg.md, Types)") from None
        except (pa.ArrowInvalid, zstandard.ZstdError) as e:
            if checked:
                checked.damaged()
            if too_long(e):
                raise TargetError(f"{name}: {LONG_ROW}; nothing of this publication was "
                                  "committed", hint="use a DuckDB or PostgreSQL replica for "
                                  "this table, or leave it out (--tables)") from None
            raise IntegrityError(f"{name}: not the CSV its manifest describes "
                                 f"({str(e).splitlines()[0][:160]})",
                                 hint="the publication is damaged; ask the publisher to "
                                      "republish it") from None
        except IntegrityError:
            if checked:
                checked.damaged()
            raise


def _parsed(stream: Stoppable, name: str, names: list[str], target: pa.Schema,
            types: dict[str, Any],
            how: tuple[dict[str, tuple[str, str]], dict[str, Rule | None]],
            checked: Checked | None) -> Iterator[pa.RecordBatch]:
    delimiters, forms = how
    reader = None
    try:
        reader = _open(stream.handle(), names)
        if reader.schema.names != names:
            raise IntegrityError(f"{name}: its header is not the manifest's columns",
                                 hint="the publication is damaged; ask the publisher to "
                                      "republish it")
        for batch in reader:
            if checked:
                checked.add_rows(batch.num_rows)
            batch.validate(full=True)  # ArrowInvalid for a text that is not UTF-8
            arrays = []
            for field in target:
                if field.name in names:
                    arrays.append(_column(batch, field.name, types[field.name],
                                          delimiters[field.name], forms[field.name]))
                else:
                    arrays.append(pa.nulls(batch.num_rows, field.type))
            yield pa.RecordBatch.from_arrays(arrays, schema=target)
    finally:
        reader = None  # not kept by a traceback's frame while stop() waits for its release
        stream.stop()


def _open(source: _Handle, names: list[str]) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        source, read_options=pacsv.ReadOptions(block_size=BLOCK),
        parse_options=parse_options(names),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=False,
            check_utf8=False))  # checked by _parsed, a column at once (the reader checks
    # each value as it converts it, which costs more)
