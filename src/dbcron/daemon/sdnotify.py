"""A tiny sd_notify client: tell systemd we are ready, reloading, stopping, alive.

Written here rather than taken from a library because the protocol is a few
``KEY=value`` lines in one datagram to ``$NOTIFY_SOCKET`` and the daemon must not
grow a dependency (or a C extension) for it. Reference: sd_notify(3).

Without ``$NOTIFY_SOCKET`` (not under systemd, or ``Type=simple``) every call is a
no-op, so the daemon calls these methods unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger("dbcron.sdnotify")


def _socket_address(raw: str) -> str | None:
    """Map ``$NOTIFY_SOCKET`` to an ``AF_UNIX`` address, or None when unusable.

    systemd writes abstract-namespace sockets with a leading ``@``; the kernel
    wants a leading NUL byte instead.
    """
    if raw.startswith("@") and len(raw) > 1:
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None


class Notifier:
    """Sends sd_notify datagrams; does nothing when built without an address."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        # Sends come from the scheduling loop and from signal-driven reloads;
        # the lock keeps socket creation and the warn-once flag consistent.
        self._lock = threading.Lock()
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Notifier:
        """Build from ``$NOTIFY_SOCKET``; an unsupported form is logged and ignored."""
        raw = environ.get("NOTIFY_SOCKET", "")
        if not raw:
            return cls(None)
        address = _socket_address(raw)
        if address is None:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor an @abstract socket; ignored", raw)
        return cls(address)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when it was delivered.

        Failures are logged once and swallowed: losing a notification must never
        take the daemon down (systemd's watchdog will notice a real hang anyway).
        """
        if self.address is None or not fields:
            return False
        # A newline inside a value would start a bogus new field.
        payload = "\n".join(
            f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items()
        )
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    # A reader that stopped reading must not stall the daemon's loop:
                    # with its queue full a blocking send would wait forever.
                    self._sock.setblocking(False)
                self._sock.sendto(payload.encode("utf-8"), self.address)
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "sd_notify to %r failed: %s (further failures not logged)",
                        self.address,
                        exc,
                    )
                return False
        return True

    def ready(self) -> bool:
        return self.send(READY=1)

    def reloading(self, monotonic_usec: int) -> bool:
        """Announce a reload; call ``ready()`` when it is done.

        ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, as ``time.monotonic_ns() // 1000``)
        is what Type=notify-reload (systemd >= 253) requires to match the reload
        to the request; older systemd ignores it.
        """
        return self.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def status(self, text: str) -> bool:
        """One free-form line shown by ``systemctl status``."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or None when no watchdog is wanted.

    Half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3) recommends, so one
    late tick does not get the daemon killed. ``$WATCHDOG_PID``, when set, must
    name this process (``pid`` defaults to ours): the variables may have been
    inherited from a parent that systemd is watching instead.
    """
    watchdog_pid = environ.get("WATCHDOG_PID", "")
    if watchdog_pid:
        own = os.getpid() if pid is None else pid
        if not watchdog_pid.isdigit() or int(watchdog_pid) != own:
            return None
    raw = environ.get("WATCHDOG_USEC", "")
    if not raw.isdigit() or int(raw) == 0:
        return None
    return int(raw) / 2 / 1_000_000
