"""The daemon's lock files: one daemon per state directory (and per SQLite store).

The pidfile doubles as the lock: `services/local_daemon.py` reads it to find the
live daemon, which holds the lock for as long as it lives.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from dbcron.errors import DaemonError


def hold(path: Path, what: str) -> int:
    """Hold an exclusive lock on `path` for the daemon's life; it says who holds it.

    The file is 0600 and must belong to this user: flock needs only an open file,
    so another local user who could open it (a 0644 pidfile) or who made it
    (in a directory open to them) could hold the lock and keep the daemon from
    starting.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise DaemonError(f"cannot open the lock file {path}: {exc.strerror}") from None
    owner = os.fstat(fd).st_uid
    if owner != os.geteuid():
        os.close(fd)
        raise DaemonError(
            f"the lock file {path} belongs to uid {owner}, not to this user (uid "
            f"{os.geteuid()}): another user could hold it; remove it and start again"
        )
    os.fchmod(fd, 0o600)  # one made 0644 by an older version
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DaemonError(
            f"another scheduler-daemon (pid {holder}) is already running on {what}; "
            "stop it first (one daemon per SQLite store)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
