"""Files handed to the system user a database server runs as (postgres, mysql).

A server refuses to run as root, so when topoff runs as root (a container, a CI job) the
directories it prepares for a throwaway server belong to that server's user; otherwise
they are left as they are (topoff and the server are the same user).
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def give_to(path: Path, user: str) -> None:
    """``chown path`` to ``user`` when topoff runs as root; nothing otherwise."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
