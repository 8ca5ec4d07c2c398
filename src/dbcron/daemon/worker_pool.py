"""Worker processes: each run attempt executes in a child process the daemon can kill.

A thread cannot be stopped, so a stuck query or a sleeping function would
hold a worker forever; a process can. Workers are started once (spawn, safe
beside the daemon's threads) and reused; one that overruns its timeout is
killed, its connections die with it, and a fresh worker replaces it.

Workers die with their daemon, whether or not systemd's KillMode=mixed is
there to do it: a daemon killed with -9 must not leave attempts running that
its successor retries. Three guards: the kernel's parent-death signal (Linux),
a thread that checks the parent is still the daemon, and a deadline past the
attempt's timeout after which the worker ends itself (a paused daemon cannot
enforce the timeout).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from dbcron.jobs.types import JobRequest, JobResult

_KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a worker that overran
_PARENT_CHECK = 0.2  # seconds between a worker's checks that its daemon lives
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_ORPHANED = 70  # a worker's exit status when its daemon is gone


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when the thread that started it ends (the
    daemon dies); False where there is no such call."""
    if not sys.platform.startswith("linux"):
        return False
    # The process's own symbols include libc's: find_library would run ldconfig per worker.
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)


class _Watch:
    """A worker's one watch thread, checking every _PARENT_CHECK.

    It ends the worker when its daemon is gone (the check beside the signal: a
    parent that died before prctl, or a system without it), or once the attempt
    is well past its timeout (`until`), should the daemon not be there (paused,
    stopped) to kill it. One thread for both: a timer thread per attempt cost a
    thread start in every run, ~0.8 ms of a burst's critical path.
    """

    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.until: float | None = None  # time.monotonic() deadline of the attempt running

    def run(self) -> None:
        while True:
            until = self.until
            if os.getppid() != self.parent or (until is not None and time.monotonic() > until):
                os._exit(_ORPHANED)
            time.sleep(_PARENT_CHECK)


def _worker_main(conn: Connection, log_level: str, log_format: str, parent: int) -> None:
    # The daemon owns signals: a Ctrl-C in a terminal reaches the whole process
    # group, and the daemon decides whether running work drains or stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    die_with_parent()
    if os.getppid() != parent:  # the daemon died before the signal was asked for
        os._exit(_ORPHANED)
    watch = _Watch(parent)
    threading.Thread(target=watch.run, name="dbcron-worker-watch", daemon=True).start()
    from dbcron.jobs import execute, fence
    from dbcron.logs import configure_logging

    # Requests carry the validated Task: unpickling it needs the model (and pydantic).
    # Imported now, while the worker waits, so a burst of due slots does not find every
    # worker paying ~130 ms of imports at once.
    from dbcron.model import Task  # noqa: F401

    configure_logging(os.environ, log_level, log_format)

    def ask(what: str) -> str | None:
        conn.send(_Gate(what))
        answer: str | None = conn.recv()  # EOFError: the daemon is gone, and so are we
        return answer

    fence.install(ask)

    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        watch.until = time.monotonic() + request.timeout + 3 * _KILL_GRACE
        result = execute(request)
        watch.until = None
        conn.send(result)


@dataclass(frozen=True)
class _Gate:
    """A worker's question before a side effect (see jobs/fence.py)."""

    what: str


@dataclass
class _Worker:
    process: Any
    conn: Connection


class TimedOut(Exception):
    """The attempt ran past its timeout; its worker was killed."""


class Stopped(Exception):
    """The pool was shut down while the attempt ran (a cold stop)."""


class WorkerPool:
    def __init__(self, size: int, log_level: str = "INFO", log_format: str = "text") -> None:
        self._log = (log_level, log_format)
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._busy: set[int] = set()
        self._all: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(size):
            self._idle.put(self._start())

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, *self._log, os.getpid()),
            name="dbcron-worker",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        assert process.pid is not None  # started
        with self._lock:
            self._all[process.pid] = worker
        return worker

    def run(self, request: JobRequest, timeout: float,
            gatekeeper: Callable[[str], str | None] | None = None) -> JobResult:
        """Run one attempt in a worker; TimedOut when it overruns, Stopped on a cold stop.

        `gatekeeper` answers the worker's questions before a side effect: None to go
        on, or why not.
        """
        while True:
            try:
                worker = self._idle.get(timeout=0.5)
                break
            except queue.Empty:
                if self._closed:
                    raise Stopped() from None
        with self._lock:
            self._busy.add(worker.process.pid)
        deadline = time.monotonic() + timeout
        try:
            worker.conn.send(request)
            while worker.conn.poll(max(0.0, deadline - time.monotonic())):
                message = worker.conn.recv()
                if isinstance(message, _Gate):
                    worker.conn.send(gatekeeper(message.what) if gatekeeper else None)
                    continue
                result: JobResult = message
                self._release(worker)
                return result
            self._replace(worker)
            raise TimedOut()
        except (EOFError, OSError, BrokenPipeError):
            # The worker died under the job (killed by a cold stop, or crashed).
            self._replace(worker)
            if self._closed:
                raise Stopped() from None
            return JobResult("failed", error="the worker process died while running the task")

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker.process.pid)
        self._idle.put(worker)

    def _replace(self, worker: _Worker) -> None:
        _kill(worker)
        with self._lock:
            self._busy.discard(worker.process.pid)
            self._all.pop(worker.process.pid, None)
        if not self._closed:
            self._idle.put(self._start())

    def busy(self) -> int:
        with self._lock:
            return len(self._busy)

    def close(self, kill_busy: bool) -> None:
        """Stop idle workers; with kill_busy, running attempts die too (cold stop)."""
        self._closed = True
        with self._lock:
            workers = list(self._all.values())
            busy = set(self._busy)
        for worker in workers:
            if worker.process.pid in busy:
                if kill_busy:
                    _kill(worker)
                continue
            with contextlib.suppress(OSError):  # it died already: join and kill below
                worker.conn.send(None)
            worker.process.join(1)
            if worker.process.is_alive():
                _kill(worker)


def _kill(worker: _Worker) -> None:
    process = worker.process
    if process.is_alive():
        os.kill(process.pid, signal.SIGTERM)
        process.join(_KILL_GRACE)
    if process.is_alive():
        process.kill()
        process.join(5)
    worker.conn.close()
