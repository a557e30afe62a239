"""age recipients (public keys, for backups) and identities (secret keys, for restores),
as the user passes them: parsed by :mod:`topoff.stores.age` (the one parser), a bad key
being a configuration error (exit 2).

Secret keys never reach a message: errors name the file and the line number only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from topoff.errors import ConfigError
from topoff.stores import age


def parse_recipients(values: Sequence[str]) -> list[Any]:
    if not values:
        raise ConfigError("no age recipient to encrypt the backup for",
                          hint="pass --recipient age1... or set [backup] recipients in the "
                          "config (make a key pair with age-keygen)")
    return age.parse_recipients(values, ConfigError)


def load_identities(path: str | None) -> list[Any]:
    if not path:
        raise ConfigError("no age identity to decrypt the backup with",
                          hint="pass --identity FILE or set [backup] identity in the config")
    return age.load_identities(path, ConfigError)
