"""Checks for fields read from index.json and manifest.json, which are untrusted input.

A dataset may come from a server the consumer does not control. Every field that reaches
a file name, SQL, memory or disk is checked here, when the JSON is parsed, against a
closed grammar; anything else raises :class:`Invalid` (a ValueError), which the readers
turn into one IntegrityError naming the field. See docs/dataset-format.md, "Validation".
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Any, TypeVar

from topoff.dataset import layout

T = TypeVar("T")

#: largest index.json / manifest.json a reader accepts (bytes)
MAX_INDEX_BYTES = 64 << 20
MAX_MANIFEST_BYTES = 64 << 20
#: PostgreSQL truncates names at 63 bytes
MAX_NAME_BYTES = 63
MAX_INT = (1 << 63) - 1

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PART = r"[A-Za-z0-9_%\-]+"
_LABEL = r"(?:\d{4}-\d{2}-\d{2}|\d{4}-\d{2}-\d{2}T\d{6}Z--\d{4}-\d{2}-\d{2}T\d{6}Z)"
_DATA_FILE = re.compile(rf"^data/{_PART}\.{_PART}(?:\.{_LABEL})?\.\d{{5,9}}\.csv\.zst$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ZONE = re.compile(r"^[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*$")
SCHEMA_FILES = {"pre_data": layout.PRE_DATA, "post_data": layout.POST_DATA}


class Invalid(ValueError):
    """A field outside what the dataset format allows."""


def typed(value: Any, kind: type[T], what: str) -> T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Invalid(f"{what} must be {kind.__name__}, not {type(value).__name__}")
    return value


def optional(value: Any, kind: type[T], what: str) -> T | None:
    return None if value is None else typed(value, kind, what)


def count(value: Any, what: str, minimum: int = 0) -> int:
    n = typed(value, int, what)
    if not minimum <= n <= MAX_INT:
        raise Invalid(f"{what} is out of range: {n}")
    return n


def text(value: Any, what: str, max_len: int = 1000) -> str:
    s = typed(value, str, what)
    if len(s) > max_len or "\x00" in s:
        raise Invalid(f"{what} is too long or holds a NUL character")
    return s


def one_of(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise Invalid(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def sha256(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise Invalid(f"{what} is not a sha256 (64 lowercase hex digits): {value!r:.80}")
    return value


def name(value: Any, what: str, printed: bool = True) -> str:
    """A schema, table or column name (``printed``: it appears in messages and logs, so
    no control characters either) or an enum label: 1-63 bytes, no NUL."""
    s = typed(value, str, what)
    if not s or len(s.encode()) > MAX_NAME_BYTES or "\x00" in s or (
            printed and _CONTROL.search(s)):
        raise Invalid(f"{what} is not a PostgreSQL name topoff accepts (1 to 63 bytes, no "
                      f"control characters): {s!r:.80}")
    return s


def dataset_name(value: Any, what: str = "dataset") -> str:
    s = text(value, what, 200)
    if not s or _CONTROL.search(s):
        raise Invalid(f"{what} is empty or holds control characters")
    return s


def publication_id(value: Any, what: str, kind: str | None = None) -> str:
    s = typed(value, str, what)
    try:
        found, _, _ = layout.parse_id(s)
    except ValueError:
        raise Invalid(f"{what} is not a publication id: {s!r:.80}") from None
    if kind is not None and found != kind:
        raise Invalid(f"{what} {s!r} is not a {kind} publication")
    return s


def label(value: Any, what: str) -> str:
    s = typed(value, str, what)
    try:
        layout.Window.from_label(s)
    except ValueError:
        raise Invalid(f"{what} is not a window label: {s!r:.80}") from None
    return s


def data_file_path(value: Any, what: str) -> str:
    s = typed(value, str, what)
    if not _DATA_FILE.match(s):
        raise Invalid(f"{what} is not a data file name of the dataset format: {s!r:.80}")
    return s


def schema_file_path(key: Any, value: Any, what: str) -> str:
    if key not in SCHEMA_FILES or value != SCHEMA_FILES[key]:
        raise Invalid(f"{what}: schema file {key!r:.40} must be named {SCHEMA_FILES.get(key)}")
    return str(value)


def time_zone(value: Any, what: str) -> str:
    s = text(value, what, 100)
    if not _ZONE.match(s) or ".." in s:
        raise Invalid(f"{what} is not a time zone name: {s!r:.80}")
    try:
        zoneinfo.ZoneInfo(s)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"{what} is not a known time zone: {s!r:.80}") from None
    return s


def obj(value: Any, what: str) -> dict[str, Any]:
    return typed(value, dict, what)


def items(value: Any, what: str) -> list[Any]:
    return typed(value, list, what)
