"""The values of a config file: sizes, durations, numbers in a range, TOML types.

Every error is a :class:`ConfigError` with a hint (exit 2, docs/exit-codes.md), and names
types as TOML does (a string, an integer, a table), not as Python does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from topoff.dataset import checks
from topoff.errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
          "tb": 1000**4, "tib": 1024**4}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
#: TOML's names for the Python types tomllib gives
_TOML_TYPES = {"str": "a string", "int": "an integer", "float": "a number",
               "bool": "a boolean (true or false)", "list": "an array", "dict": "a table"}
_EXAMPLES = {"str": '"..."', "int": "3", "float": "1.5", "bool": "true", "list": '["..."]'}


#: a config file larger than this is refused: an endless one (/dev/zero) is read no further
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def config_text(path: str | Path, hint: str, what: str = "config file") -> str:
    """The text of a TOML file the user named; a ConfigError with ``hint`` when it is larger
    than MAX_CONFIG_BYTES or not UTF-8 text. OSError goes to the caller."""
    with open(path, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_CONFIG_BYTES >> 20} MiB",
                          hint=hint)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {e.start} of it)",
                          hint=hint) from None


def no_nul(data: Any, where: str = "the config") -> None:
    """No key or string of a TOML document holds a NUL character (TOML's \\u0000): no
    database name or value can hold one, and the drivers refuse it deep inside a run."""
    items = data.items() if isinstance(data, dict) else enumerate(data) \
        if isinstance(data, list) else ()
    for key, value in items:
        at = f"{where}.{key}" if where != "the config" else str(key)
        if (isinstance(key, str) and "\x00" in key) or (isinstance(value, str) and "\x00" in value):
            raise ConfigError(f"{at!r} holds a NUL character (\\u0000)",
                              hint="no name or value can hold one: remove it")
        no_nul(value, at)


def parse_size(value: str | int, what: str) -> int:
    """'256MiB', '1GB', 1048576 -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value))
    unit = (m.group(2) or "").lower() if m else None
    if not m or unit not in _UNITS:
        raise ConfigError(f"invalid size for {what}: {value!r}", hint="write it like 256MiB or 1GB")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_chunk_size(value: str | int, what: str) -> int:
    """A data file's CSV bytes: at least 1 KiB (0 made a file of every row)."""
    size = parse_size(value, what)
    if size < 1024:
        raise ConfigError(f"{what} must be at least 1KiB, not {value!r}",
                          hint="write it like 256MiB (the default) or 1GB")
    return size


def parse_duration(value: str | float, what: str) -> float:
    """'2s', '500ms', '1m', 3 -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ConfigError(f"invalid duration for {what}: {value!r}",
                          hint="write it like 2s or 500ms")
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * factor


def check_keys(section: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """``section`` is a TOML table whose keys are all in ``allowed``."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a table, not {section!r}",
                          hint=f"write it as a section, {where} (docs/configuration.md)")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {where}",
            hint=f"expected one of: {', '.join(sorted(allowed))}",
        )
    return section


def expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """``value`` is of TOML type ``kind`` (a boolean is not an integer)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(_TOML_TYPES.get(k.__name__, k.__name__) for k in kinds)
        example = _EXAMPLES.get(kinds[0].__name__)
        hint = (f"write it like {what.rsplit(' ', 1)[-1]} = {example}" if example
                else "see docs/configuration.md for its form")
        raise ConfigError(f"{what} must be {names}, not {value!r}", hint=hint)
    return value


def positive_int(value: Any, what: str, minimum: int = 1) -> int:
    expect(value, int, what)
    if value < minimum:
        raise ConfigError(f"{what} must be at least {minimum}, not {value}",
                          hint=f"use an integer of {minimum} or more")
    return int(value)


def in_range(value: Any, what: str, minimum: int, maximum: int) -> int:
    """An integer from ``minimum`` to ``maximum``, both included."""
    value = positive_int(value, what, minimum)
    if value > maximum:
        raise ConfigError(f"{what} must be {minimum}..{maximum}, not {value}",
                          hint=f"use an integer from {minimum} to {maximum}")
    return value


def at_most(value: int, maximum: int, what: str) -> int:
    if value > maximum:
        raise ConfigError(f"{what} must be at most {maximum}, not {value}",
                          hint=f"use an integer of {maximum} or less")
    return value


def optional_str(section: dict[str, Any], key: str, where: str) -> str | None:
    value = section.get(key)
    return None if value is None else expect(value, str, f"{where} {key}")


def dataset_name(value: Any) -> str:
    """The top-level ``dataset``: what index.json and every manifest accept back."""
    try:
        return checks.dataset_name(expect(value, str, "dataset"))
    except checks.Invalid:
        raise ConfigError(f"dataset must be 1 to 200 characters without control characters, "
                          f"not {value!r:.80}",
                          hint='write it like dataset = "datanommer"') from None


def database_dataset(database: str, hint: str) -> str:
    """A database's name as the dataset's, when nothing names the dataset (init, and an
    export without a config): refused with ``hint`` where no dataset may bear it."""
    try:
        return checks.dataset_name(database)
    except checks.Invalid:
        raise ConfigError(f"the database's name {database!r:.80} cannot name a dataset (1 to "
                          "200 characters without control characters)", hint=hint) from None
