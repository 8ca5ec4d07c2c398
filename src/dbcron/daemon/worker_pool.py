"""Worker processes: each run attempt executes in a child process the daemon can kill.

A thread cannot be stopped, so a stuck query or a sleeping function would
hold a worker forever; a process can. Workers are started once (spawn, safe
beside the daemon's threads) and reused; one that overruns its timeout is
killed, its connections die with it, and a fresh worker replaces it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from dbcron.jobs.types import JobRequest, JobResult

_KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a worker that overran


def _worker_main(conn: Connection, log_level: str, log_format: str) -> None:
    # The daemon owns signals: a Ctrl-C in a terminal reaches the whole process
    # group, and the daemon decides whether running work drains or stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from dbcron.jobs import execute
    from dbcron.logs import configure_logging

    # Requests carry the validated Task: unpickling it needs the model (and pydantic).
    # Imported now, while the worker waits, so a burst of due slots does not find every
    # worker paying ~130 ms of imports at once.
    from dbcron.model import Task  # noqa: F401

    configure_logging(os.environ, log_level, log_format)

    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        conn.send(execute(request))


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
            args=(child, *self._log),
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

    def run(self, request: JobRequest, timeout: float) -> JobResult:
        """Run one attempt in a worker; TimedOut when it overruns, Stopped on a cold stop."""
        while True:
            try:
                worker = self._idle.get(timeout=0.5)
                break
            except queue.Empty:
                if self._closed:
                    raise Stopped() from None
        with self._lock:
            self._busy.add(worker.process.pid)
        try:
            worker.conn.send(request)
            if worker.conn.poll(timeout):
                result: JobResult = worker.conn.recv()
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
