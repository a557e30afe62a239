"""age recipients (public keys, for backups) and identities (secret keys, for restores).

Secret keys never reach a message: errors name the file and the line number only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyrage

from topoff.errors import ConfigError


def parse_recipients(values: Sequence[str]) -> list[pyrage.x25519.Recipient]:
    if not values:
        raise ConfigError("no age recipient to encrypt the backup for",
                          hint="pass --recipient age1... or set [backup] recipients in the "
                          "config (make a key pair with age-keygen)")
    out = []
    for v in values:
        v = v.strip()
        if v.startswith("AGE-SECRET-KEY-"):
            raise ConfigError("a secret key was given as a recipient",
                              hint="give the public key (age1..., printed by age-keygen -y "
                              "FILE); keep the secret key for restores only")
        try:
            out.append(pyrage.x25519.Recipient.from_str(v))
        except Exception:
            raise ConfigError(f"invalid age recipient {v[:12]!r}...",
                              hint="an age public key starts with age1 (age-keygen prints "
                              "it)") from None
    return out


def load_identities(path: str | None) -> list[pyrage.x25519.Identity]:
    if not path:
        raise ConfigError("no age identity to decrypt the backup with",
                          hint="pass --identity FILE or set [backup] identity in the config")
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the identity file {path}: {e.strerror}",
                          hint="check the path and its permissions") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(pyrage.x25519.Identity.from_str(line))
        except Exception:
            raise ConfigError(f"line {number} of the identity file {path} is not an age "
                              f"secret key",
                              hint="use a file written by age-keygen") from None
    if not out:
        raise ConfigError(f"the identity file {path} holds no age secret key",
                          hint="use a file written by age-keygen")
    return out
