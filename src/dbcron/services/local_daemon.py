"""Talking to a running daemon on this host: its pidfile and its signals.

The daemon holds an exclusive lock on its pidfile for as long as it lives, so a
pidfile that can be locked belongs to a dead daemon, whatever pid it names.
"""

from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path


def daemon_pid(pidfile: Path) -> int | None:
    """The pid of the live daemon that holds `pidfile`, or None."""
    try:
        fd = os.open(pidfile, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def reload_daemon(pidfile: Path) -> str:
    """Send SIGHUP to the daemon and say what happened, in words for the CLI."""
    pid = daemon_pid(pidfile)
    if pid is None:
        return "no daemon is running here; it loads the change when it starts"
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError:
        return (
            f"the daemon (pid {pid}) runs as another user; it picks up the change within "
            "its poll interval"
        )
    except ProcessLookupError:
        return "no daemon is running here; it loads the change when it starts"
    return f"told the daemon (pid {pid}) to reload"
