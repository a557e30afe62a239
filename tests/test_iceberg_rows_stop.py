"""A data file the Iceberg build stops reading midway (a value its column cannot hold, a
consumer that stops early) while pyarrow's CSV reader still reads ahead in a thread of its
own: the error is the value's (never a false "does not match its sha256"), and the streams
under the reader are not closed while it is inside them (the process does not crash).

Each scenario runs many times in a child process, with 1 MiB blocks (more of them read
ahead): a crash there is a signal, not a failed assertion."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import zstandard

ROUNDS = 25
#: children that each close a few readers early and exit
CHILDREN = 6


def _data_file(tmp_path: Path, first: str, rows: int) -> tuple[Path, str]:
    """A ``.csv.zst`` of (id, d date, pad text): ``first`` as the first row's date, then
    ``rows`` ordinary rows (about 40 MB of CSV: pyarrow reads several blocks ahead)."""
    pad = "x" * 120
    body = "id,d,pad\n" + f"1,{first},{pad}\n" + "".join(
        f"{n},2026-01-0{n % 9 + 1},{pad}\n" for n in range(2, rows + 2))
    raw = body.encode()
    path = tmp_path / "public.t.00001.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=1).compress(raw))
    blob = path.read_bytes()
    entry = (f'{{"path": "data/{path.name}", "bytes": {len(blob)}, "sha256": '
             f'"{hashlib.sha256(blob).hexdigest()}", "rows": {rows + 1}, '
             f'"uncompressed_bytes": {len(raw)}}}')
    return path, entry


SCRIPT = """
import json, sys
from pathlib import Path
from topoff.dataset.columns import Column
from topoff.dataset.manifest import DataFile
from topoff.errors import IntegrityError, TargetError
from topoff.sync.iceberg_apply import checked
from topoff.targets.iceberg import rows
from topoff.targets.iceberg.rows import batches
from topoff.targets.iceberg.table import schema_of

path, entry, mode = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
rounds, switch = int(sys.argv[4]), float(sys.argv[5])
if switch:  # the main thread keeps the GIL that long: a loaded machine, where the threads
    sys.setswitchinterval(switch)  # reading ahead wait for it past the interpreter's exit
f = DataFile.from_json(entry, "file")
columns = [Column("id", "integer"), Column("d", "date"), Column("pad", "text")]
schema = schema_of(columns)
rows.BLOCK = 1 << 20  # more blocks read ahead: the race more often
for _ in range(rounds):
    it = batches(path, "p/" + f.path, columns, schema, checked("p/" + f.path, f))
    if mode == "refused":
        try:
            for _ in it:
                pass
        except TargetError as e:
            assert "does not fit its Iceberg column" in e.message, e.message
        except IntegrityError as e:
            raise SystemExit("refused as damaged: " + e.message)
        else:
            raise SystemExit("no error")
    elif mode == "damaged":
        rows.RELEASE_WAIT = 3600  # a stream never let go of would hang the child
        try:
            for _ in it:
                pass
        except IntegrityError:
            pass
        else:
            raise SystemExit("no error")
    else:
        next(it)
        it.close()
print("ok")
"""


def _run(path: Path, entry: str, mode: str, rounds: int = ROUNDS, switch: float = 0,
         timeout: int = 300) -> None:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), str(path), entry,
                          mode, str(rounds), str(switch)], capture_output=True, text=True,
                         timeout=timeout)  # (a hang at exit is a failure too)
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr)


def test_a_value_refused_in_the_first_block_is_reported_as_such(tmp_path):
    path, entry = _data_file(tmp_path, "0044-03-15 BC", 300_000)
    _run(path, entry, "refused")


def test_a_reader_closed_after_its_first_batch_stops_cleanly(tmp_path):
    path, entry = _data_file(tmp_path, "2026-01-01", 300_000)
    _run(path, entry, "close")


@pytest.mark.slow
def test_readers_closed_early_leave_no_read_ahead_behind_at_exit(tmp_path):
    """Each close waits until pyarrow's read-ahead has let go of the stream: no thread of
    pyarrow's is left to call into Python (a read, or dropping the stream) once the
    interpreter exits, where it was ended in the middle of pyarrow's C++: exit 134,
    "terminate called without an active exception", or an exit that hung. A race: each
    child exits a few times in a hundred at the wrong moment (the main thread keeps the GIL
    a second at a time, as on a loaded machine), so several run."""
    path, entry = _data_file(tmp_path, "2026-01-01", 300_000)
    for _ in range(CHILDREN):
        _run(path, entry, "close", rounds=3, switch=1.0, timeout=120)


def test_a_damaged_file_is_reported_without_waiting_for_its_stream(tmp_path):
    """The error of a damaged file meets pyarrow's read-ahead inside the stream's own read;
    the exception's traceback held the stream, which pyarrow had let go of, until the close's
    wait for its release ran out (60 s, twice: a damaged file took two minutes to report)."""
    path, entry = _data_file(tmp_path, "2026-01-01", 50_000)
    blob = bytearray(path.read_bytes())
    middle = len(blob) // 2
    blob[middle:middle + 64] = bytes(64)  # past the first block: met by the read-ahead
    path.write_bytes(bytes(blob))
    _run(path, entry, "damaged", rounds=2, timeout=60)
