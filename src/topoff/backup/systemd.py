"""systemd units for topoff's periodic jobs: a .service (oneshot) and its .timer.

Each service runs one topoff command under ``flock`` (a second run while one holds the
lock exits 75 at once instead of piling up), logs to the journal through stdout/stderr,
reads secrets from an EnvironmentFile rather than the unit, and runs with a private /tmp
and a read-only system. Each timer fires on a calendar spec with a random delay (so many
hosts do not hit one standby or bucket at the same second) and catches up on a missed
run after a reboot (Persistent=true).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from topoff.errors import ConfigError

KINDS = ("backup", "export", "sync", "replicate", "drill")
#: an ExecStart argument written without quotes
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
#: a user name systemd's User= takes (its valid_user_group_name()), or a UID
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,30}|0|[1-9][0-9]{0,9}")
#: UIDs systemd refuses (uid_is_valid): 16-bit and 32-bit -1, and none beyond 32 bits
_BAD_UIDS = (0xFFFF, 0xFFFFFFFF)


@dataclass(frozen=True)
class UnitSettings:
    config: str = "/etc/topoff/topoff.toml"
    store: str = "s3://backups/datanommer"
    target: str = "/var/lib/topoff/replica.duckdb"
    topoff: str = "/usr/local/bin/topoff"
    user: str = "topoff"
    on_calendar: str | None = None


_DEFAULTS = {
    # kind: (description, calendar, random delay, timeout)
    "backup": ("encrypted backup of the source", "*-*-* 03:00:00", "30min", "12h"),
    "export": ("daily incremental export of yesterday", "*-*-* 00:30:00", "15min", "6h"),
    "sync": ("top off the replica from the published dataset", "*-*-* 06:00:00", "30min", "6h"),
    "replicate": ("refresh the replicated tables from their sources", "*:0/15", "2min", "1h"),
    "drill": ("restore drill of the newest backup", "Sun *-*-* 05:00:00", "1h", "12h"),
}


def _command(kind: str, s: UnitSettings) -> list[str]:
    cfg = ["--config", s.config]
    if kind == "backup":
        return ["backup", *cfg, "--to", s.store]
    if kind == "export":
        return ["export", "incremental", *cfg, "--to", s.store]
    if kind == "sync":
        return ["sync", *cfg, s.store, s.target]
    if kind == "replicate":  # the config's [replicate] section names sources and target
        return ["replicate", *cfg, "--once"]
    return ["backups", "drill", *cfg, s.store]


def _word(arg: str) -> str:
    """One argument of ExecStart as systemd reads it (systemd.syntax(7)): bare when plain,
    else in double quotes with its backslashes and double quotes escaped (systemd reads
    C escapes in a word: a path's ``\\n`` would become a line break; and a quote may only
    open a word, so the shell's ``'it'"'"'s'`` is not systemd's)."""
    if arg and _PLAIN.fullmatch(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def units(kind: str, s: UnitSettings) -> tuple[str, str]:
    """(service text, timer text) for one kind of job."""
    if kind not in KINDS:
        raise ConfigError(f"unknown job {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
    for value in (s.config, s.store, s.target, s.topoff, s.user, s.on_calendar or ""):
        if "\n" in value or "\r" in value:
            raise ConfigError("a unit setting holds a line break", hint="remove it")
    if not _USER.fullmatch(s.user) or (s.user.isdigit() and (int(s.user) in _BAD_UIDS
                                                             or int(s.user) > 0xFFFFFFFF)):
        raise ConfigError(f"--user {s.user!r} is no user name systemd takes",
                          hint="a system user's name (letters, digits, _ and -) or a UID from 0 to "
                          "4294967294, not 65535")
    what, calendar, delay, timeout = _DEFAULTS[kind]
    lock = f"/run/lock/topoff-{kind}.lock"
    argv = ["/usr/bin/flock", "--nonblock", "--conflict-exit-code", "75", lock, s.topoff,
            *_command(kind, s)]
    # systemd expands % specifiers and $VARIABLES in ExecStart: escape them
    exec_start = " ".join(_word(a) for a in argv).replace("%", "%%").replace("$", "$$")
    service = f"""[Unit]
Description=topoff: {what}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User={s.user}
# secrets (TOPOFF_SOURCE_URL with its password, AWS_* keys) live here, not in the unit
EnvironmentFile=-/etc/topoff/topoff.env
ExecStart={exec_start}
# 75: another run still holds the lock (the schedule is tighter than a run)
TimeoutStartSec={timeout}
StandardOutput=journal
StandardError=journal
Nice=10
IOSchedulingClass=idle
PrivateTmp=true
NoNewPrivileges=true
ProtectSystem=full
ProtectHome=read-only
"""
    timer = f"""[Unit]
Description=topoff: {what} (schedule)

[Timer]
OnCalendar={s.on_calendar or calendar}
RandomizedDelaySec={delay}
Persistent=true

[Install]
WantedBy=timers.target
"""
    return service, timer


def render(kind: str, s: UnitSettings) -> str:
    service, timer = units(kind, s)
    name = f"topoff-{kind}"
    return (f"# /etc/systemd/system/{name}.service\n{service}\n"
            f"# /etc/systemd/system/{name}.timer\n{timer}")
