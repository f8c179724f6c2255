"""The configuration a restored cluster starts with: the harness's, never the backup's.

A base backup carries its cluster's configuration files, and whoever can write to the backup bucket can put
anything in them: ``restore_command`` or ``archive_command`` (run by the server as a shell command),
``shared_preload_libraries``, ``include`` directives, ``ssl_passphrase_command``. ``pg_verifybackup`` does not
even cover ``postgresql.auto.conf`` or the signal files. So after unpacking, :func:`take_over_config` removes
the files that steer recovery or the postmaster and replaces the three configuration files with the
harness's own, and :func:`restored_settings` gives the server its settings on the command line, which
overrides any configuration file. Recovery then is plain crash recovery from ``backup_label`` with the WAL
that came with the backup, exactly what a drill of a self-contained base backup needs.

What this does not cover: the restored *catalog* is the backup's too. A role or database setting, an event
trigger or a C function in it runs with the server's rights whenever the harness connects or queries;
:data:`SESSION_OPTIONS` closes the paths that run on connecting, and the server runs as the unprivileged
service user, never as the harness's user.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from harness.errors import CheckFailed
from harness.services.postgres import SESSION_OPTIONS

__all__ = ["REMOVED", "SESSION_OPTIONS", "WRITTEN", "restored_settings", "take_over_config"]

REMOVED = ("postgresql.auto.conf", "recovery.signal", "standby.signal", "postmaster.pid", "postmaster.opts",
           "current_logfiles")  # fmt: skip
"""Files of the backup that would steer the server (its settings, recovery mode, a stale postmaster)."""

WRITTEN = {
    "postgresql.conf": "# Written by codeblack-drills: a restored cluster never runs on the backup's configuration.\n"
    "# Its settings are on the server's command line.\n",
    "pg_hba.conf": "# Written by codeblack-drills: no one, until the throwaway server writes who it admits.\n",
    "pg_ident.conf": "# Written by codeblack-drills: no user name maps.\n",
}
"""The configuration files the harness writes in place of the backup's."""

_SETTINGS = {
    "restore_command": "",
    "recovery_end_command": "",
    "archive_cleanup_command": "",
    "archive_mode": "off",
    "archive_command": "",
    "primary_conninfo": "",
    "shared_preload_libraries": "",
    "local_preload_libraries": "",
    "session_preload_libraries": "",
    "dynamic_library_path": "$libdir",
    "ssl": "off",
    "ssl_passphrase_command": "",
    "jit": "off",
    "logging_collector": "off",
    "external_pid_file": "",
    "autovacuum": "off",
}
#: Settings added by a PostgreSQL major version (an older server refuses an unknown one).
_SINCE = {"archive_library": ("", 15), "event_triggers": ("off", 17)}


def restored_settings(major: int) -> dict[str, str]:
    """The command-line settings of a server on a restored data directory, for PostgreSQL ``major``."""
    since = {name: value for name, (value, version) in _SINCE.items() if major >= version}
    return {**_SETTINGS, **since}


def _remove(data: Path, name: str) -> bool:
    """Remove one entry of the data directory, whatever it is (a directory too); whether there was one.

    Only :func:`harness.restore.tarball.unpack` wrote ``data``, so it holds no links to follow.
    """
    path = data / name
    try:
        is_dir = stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return False
    if is_dir:
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def take_over_config(data: Path, *, what: str) -> list[str]:
    """Make ``data`` (an unpacked base backup) start on the harness's configuration; return what was removed.

    Raises:
        CheckFailed: the backup has tablespaces (a non-empty ``tablespace_map``), which the drill does not restore.
    """
    mapped = data / "tablespace_map"
    if mapped.is_symlink() or (mapped.exists() and (not mapped.is_file() or mapped.stat().st_size)):
        raise CheckFailed(f"{what}: tablespace_map lists tablespaces; tablespaces are not supported "
                          "(the drill restores only the main data directory)")  # fmt: skip
    removed = [name for name in REMOVED if _remove(data, name)]
    for name, text in WRITTEN.items():
        _remove(data, name)
        fd = os.open(data / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
    return removed
