"""One thread that writes the run threads' row updates, in batches.

With SQLite every write transaction takes the one write lock; four run threads
each committing a start and a finish per run spend a burst of 1,000 slots
queueing for it. Here they hand their updates over and go back to their
workers; this thread commits whatever is pending in one transaction.

The side-effect gates (see jobs/fence.py) go the same way: a gate waits for
the writer's next transaction instead of taking the write lock itself, so a
burst's gates cost a few commits, not one each.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from dbcron.store.runs import RunRepo, RunUpdate

log = logging.getLogger("dbcron.runner")
_BATCH = 5000
_TRIES = 5


@dataclass
class _Gate:
    run_id: int
    fence: int
    now: datetime
    done: threading.Event = field(default_factory=threading.Event)
    passed: bool = False
    failed: Exception | None = None


class RunWriter:
    def __init__(self, repo: RunRepo) -> None:
        self._repo = repo
        self._queue: queue.Queue[tuple[int, int, RunUpdate] | _Gate | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="dbcron-run-writer", daemon=True)
        self._thread.start()

    def put(self, run_id: int, fence: int, update: RunUpdate) -> None:
        """Queue a change of a run; it lands only while the row carries `fence`."""
        self._queue.put((run_id, fence, update))

    def gate(self, run_id: int, fence: int, now: datetime) -> bool:
        """Pass the run's side-effect gate (RunRepo.write_batch), after every update put
        before it; raises what the store raised when it stayed unreachable."""
        ask = _Gate(run_id, fence, now)
        self._queue.put(ask)
        ask.done.wait()
        if ask.failed is not None:
            raise ask.failed
        return ask.passed

    def flush(self) -> None:
        """Return once everything put so far is written (or given up on)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < _BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            updates = [i for i in items if i is not None and not isinstance(i, _Gate)]
            gates = [i for i in items if isinstance(i, _Gate)]
            self._write(updates, gates)
            for _ in items:
                self._queue.task_done()
            if None in items:
                return

    def _write(self, updates: list[tuple[int, int, RunUpdate]], gates: list[_Gate]) -> None:
        failed: Exception | None = None
        for attempt in range(1, _TRIES + 1):
            try:
                now = max((g.now for g in gates), default=None)
                passed = self._repo.write_batch(updates, [(g.run_id, g.fence) for g in gates],
                                                now)
                for g in gates:
                    g.passed = g.run_id in passed
                    g.done.set()
                return
            except Exception as exc:  # the store briefly away: wait and try again
                failed = exc
                time.sleep(attempt)
        for g in gates:  # unconfirmed: the attempt must not do its side effect
            g.failed = failed
            g.done.set()
        # Still failing: one bad update must not take the others down with it.
        for update in updates:
            try:
                self._repo.update_many([update])
            except Exception:
                log.exception("could not record an update of run %d", update[0])
