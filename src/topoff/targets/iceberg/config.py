"""``iceberg:PATH/catalog.toml``: the catalog and warehouse an Iceberg replica lives in.

    type = "sql"                        # or "rest"
    uri = "sqlite:///catalog.db"        # sql: SQLAlchemy URL (sqlite, relative: to this
                                        # file's directory; or postgresql);
                                        # rest: the catalog's http(s) URL
    warehouse = "warehouse"             # a local directory (relative: to this file's
                                        # directory) or s3://bucket/prefix
    namespace = "topoff"                # where the tables are made
    [s3]                                # only for an s3:// warehouse (all optional)
    endpoint = "http://127.0.0.1:9000"
    region = "us-east-1"
    access_key_id = "..."               # else the usual AWS environment / profile
    secret_access_key = "..."

The file is configuration: an unknown key, a wrong type or a missing value is refused
(exit 2) with one line naming the key, never its value (a URL may hold a password).
"""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topoff.config_values import config_text, no_nul
from topoff.errors import ConfigError, TargetError
from topoff.redact import redact

PREFIX = "iceberg:"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KEYS = {"type", "uri", "warehouse", "namespace", "s3"}
_S3_KEYS = {"endpoint", "region", "access_key_id", "secret_access_key"}


def is_iceberg(location: str) -> bool:
    return location.lower().startswith(PREFIX)


@dataclass(frozen=True)
class CatalogSettings:
    path: Path
    type: str
    uri: str
    warehouse: str
    namespace: str
    s3: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        """How the replica is named in messages (the file, no secret)."""
        return f"{PREFIX}{self.path}"

    def properties(self) -> dict[str, str]:
        """pyiceberg's catalog properties."""
        props = {"uri": self.uri, "warehouse": self.warehouse}
        if self.type == "rest":
            props["type"] = "rest"
        names = {"endpoint": "s3.endpoint", "region": "s3.region",
                 "access_key_id": "s3.access-key-id",
                 "secret_access_key": "s3.secret-access-key"}
        props.update({names[k]: v for k, v in self.s3.items()})
        return props


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{path}: {what}",
                       hint="see docs/iceberg.md for the catalog file (type, uri, warehouse, "
                            "namespace, [s3])")


def _sqlite_next_to(path: Path, uri: str) -> str:
    """A relative ``sqlite:///name.db`` names a file beside the catalog file (as the
    warehouse does), not one in whatever directory topoff happens to run from."""
    rest = uri[len("sqlite:///"):] if uri.lower().startswith("sqlite:///") else None
    if rest is None or rest.startswith("/") or rest in ("", ":memory:") \
            or rest.startswith("file:"):
        return uri
    return "sqlite:///" + str((path.parent / Path(rest).expanduser()).resolve())


def read_settings(location: str) -> CatalogSettings:
    """The settings of ``iceberg:PATH``, validated."""
    path = Path(location[len(PREFIX):]).expanduser()
    if not str(path) or str(path) == ".":
        raise ConfigError("iceberg: needs the path of a catalog file (iceberg:catalog.toml)",
                          hint="see docs/iceberg.md")
    try:
        data: dict[str, Any] = tomllib.loads(config_text(path, "see docs/iceberg.md",
                                                         "catalog file"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such catalog file",
                          hint="write one as docs/iceberg.md shows") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(path, f"cannot be read ({type(e).__name__})") from None
    except tomllib.TOMLDecodeError as e:
        raise _fail(path, f"is not valid TOML ({str(e).split('(')[0].strip()})") from None
    no_nul(data, str(path))
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _fail(path, f"unknown key {unknown[0]!r}")

    def text(key: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if value is None:
            raise _fail(path, f"{key!r} is missing")
        if not isinstance(value, str) or not value or len(value) > 4096 or "\0" in value:
            raise _fail(path, f"{key!r} must be a non-empty string")
        return value

    kind = text("type", "sql")
    if kind not in ("sql", "rest"):
        raise _fail(path, "'type' must be \"sql\" or \"rest\"")
    uri = text("uri")
    scheme = uri.split(":", 1)[0].lower()
    allowed = ("sqlite", "postgresql", "postgresql+psycopg") if kind == "sql" \
        else ("http", "https")
    if scheme not in allowed:
        raise _fail(path, f"'uri' of a {kind} catalog must start with "
                          + " or ".join(f"{a}:" for a in allowed))
    if scheme == "sqlite":
        uri = _sqlite_next_to(path, uri)
    warehouse = text("warehouse")
    if not warehouse.lower().startswith("s3://"):
        if "://" in warehouse:
            raise _fail(path, "'warehouse' must be a local directory or s3://bucket/prefix")
        wh = Path(warehouse).expanduser()
        warehouse = str((path.parent / wh).resolve() if not wh.is_absolute() else wh)
    namespace = text("namespace", "topoff")
    if not NAME.match(namespace):
        raise _fail(path, "'namespace' must be letters, digits and _ (not starting with a "
                          "digit)")
    s3 = data.get("s3", {})
    if not isinstance(s3, dict):
        raise _fail(path, "[s3] must be a table")
    bad = sorted(set(s3) - _S3_KEYS)
    if bad:
        raise _fail(path, f"unknown key 's3.{bad[0]}'")
    for k, v in s3.items():
        if not isinstance(v, str) or not v:
            raise _fail(path, f"'s3.{k}' must be a non-empty string")
    return CatalogSettings(path, kind, uri, warehouse, namespace, dict(s3))


def open_catalog(settings: CatalogSettings, create: bool = True) -> Any:
    """The pyiceberg catalog (imported here: only an Iceberg target pays for it).
    ``create`` false (status, verify, dry runs): nothing is written, neither a SQLite
    catalog's file and tables nor the namespace; None when a SQLite catalog's file is not
    there (no replica)."""
    try:
        import pyiceberg  # noqa: F401
    except ImportError:
        raise ConfigError("Iceberg replicas need pyiceberg, which is not installed",
                          hint="pip install 'topoff[iceberg]'") from None
    from topoff.targets.iceberg import threadsafe

    threadsafe.apply()  # before any commit reads manifests in threads

    if not create and (path := _sqlite_path(settings)) is not None and not path.exists():
        return None
    for attempt in (1, 2):
        try:
            return _open(settings, create)
        except Exception as e:  # the driver's message may hold the URL: name the file only
            if attempt == 1 and settings.type == "sql":
                # a new catalog's tables another process creates at the same moment
                time.sleep(0.2)
                continue
            raise TargetError(f"cannot open the Iceberg catalog of {settings.url} "
                              f"({type(e).__name__})",
                              hint="check 'uri' and 'warehouse' in the catalog file") from None
    raise AssertionError("unreachable")


def _sqlite_path(settings: CatalogSettings) -> Path | None:
    """The file of a SQL catalog in SQLite (``sqlite:///PATH``), else None."""
    prefix = "sqlite:///"
    if settings.type != "sql" or not settings.uri.startswith(prefix):
        return None
    rest = settings.uri[len(prefix):].split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def _open(settings: CatalogSettings, create: bool = True) -> Any:
    if settings.type == "sql":
        from pyiceberg.catalog.sql import SqlCatalog

        catalog: Any = SqlCatalog("topoff", **settings.properties(),
                                  init_catalog_tables=str(create).lower())
    else:
        from pyiceberg.catalog.rest import RestCatalog

        catalog = RestCatalog("topoff", **settings.properties())
    if create:
        ensure_namespace(catalog, settings.namespace)
    elif settings.type == "sql" and not _has_catalog_tables(catalog):
        return None  # a database no catalog was ever written to
    return catalog


def _has_catalog_tables(catalog: Any) -> bool:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        catalog.list_namespaces()
    except (OperationalError, ProgrammingError) as e:
        text = str(e).lower()
        if "no such table" in text or "does not exist" in text:
            return False
        raise
    return True


def ensure_namespace(catalog: Any, name: str) -> None:
    """Make the namespace if it is missing. Another process making it at the same moment
    is no error (a SQL catalog then fails the insert with its own IntegrityError)."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    try:
        catalog.create_namespace(name)
    except NamespaceAlreadyExistsError:
        pass
    except Exception:
        if not catalog.namespace_exists(name):
            raise


#: what a SQL catalog's database says when its disk is full (SQLite, PostgreSQL)
_FULL = ("database or disk is full", "no space left", "disk full", "could not extend file")


def catalog_failure(exc: BaseException, url: str | None) -> TargetError | None:
    """The TargetError of a SQL catalog whose database refused a write for want of disk
    space (sqlalchemy's OperationalError), or None for any other failure."""
    if type(exc).__module__.split(".")[0] != "sqlalchemy" or \
            type(exc).__name__ != "OperationalError":
        return None
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    if not any(s in first.lower() for s in _FULL):
        return None
    of = f" of {url}" if url else ""
    return TargetError(f"the Iceberg catalog{of} cannot be written: its disk is full "
                       f"({redact(first)}); nothing of the current commit was applied",
                       hint="free some space on the disk of the catalog's database, then run "
                       "the same command again (it resumes)")
