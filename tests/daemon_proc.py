"""The daemon as a real subprocess for tests, with a watchdog on every wait."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent
DAEMON = [sys.executable, "-c", "from dbcron.daemon.main import main; main()"]
CLOCK_DAEMON = [sys.executable, str(TESTS / "clock_daemon.py")]


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting for its (new) parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class DaemonProcess:
    command = DAEMON

    def __init__(self, state_dir: Path, command: list[str] | None = None, **env: str) -> None:
        self.state_dir = state_dir
        self.command = command or self.command
        self.log_path = state_dir.parent / f"daemon-{time.monotonic_ns()}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DBCRON_", "NOTIFY_",
                                                                        "WATCHDOG_"))},
            "DBCRON_STATE_DIR": str(state_dir),
            "DBCRON_POLL_SECONDS": "1",
            "DBCRON_RETRY_BACKOFF_SECONDS": "1",
            "DBCRON_DRAIN_SECONDS": "3",
            "DBCRON_CALL_MODULES": "tests.jobs,jobs",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True) -> DaemonProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.state_dir.parent)
        if wait_ready:
            wait_for(lambda: "scheduler-daemon ready" in self.log() or self.exited(), 20,
                     "the daemon to be ready")
            assert not self.exited(), self.log()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"daemon did not exit in {timeout}s:\n{self.log()}") from None

    def stop(self) -> int:
        """SIGTERM and wait; kill it if it hangs (the watchdog of every test)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.wait()
        self._log.close()
        return code


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET, read as systemd does:
    continuously, each message stamped with when it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._open = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while self._open:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, OSError):
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def drain(self) -> list[str]:
        time.sleep(0.3)
        return [m for _, m in self.messages]

    def close(self) -> None:
        self._open = False
        self._reader.join(1)
        self.sock.close()
