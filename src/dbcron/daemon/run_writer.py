"""One thread that writes the run threads' row updates, in batches.

With SQLite every write transaction takes the one write lock; four run threads
each committing a start and a finish per run spend a burst of 1,000 slots
queueing for it. Here they hand their updates over and go back to their
workers; this thread commits whatever is pending in one transaction.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from dbcron.store.runs import RunRepo

log = logging.getLogger("dbcron.runner")
_BATCH = 5000
_TRIES = 5


class RunWriter:
    def __init__(self, repo: RunRepo) -> None:
        self._repo = repo
        self._queue: queue.Queue[tuple[int, int, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="dbcron-run-writer", daemon=True)
        self._thread.start()

    def put(self, run_id: int, fence: int, values: dict[str, Any]) -> None:
        """Queue an update of a run; it lands only while the row carries `fence`."""
        self._queue.put((run_id, fence, values))

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
            updates = [item for item in items if item is not None]
            self._write(updates)
            for _ in items:
                self._queue.task_done()
            if len(updates) < len(items):
                return

    def _write(self, updates: list[tuple[int, int, dict[str, Any]]]) -> None:
        for attempt in range(1, _TRIES + 1):
            try:
                self._repo.update_many(updates)
                return
            except Exception:  # the store briefly away: wait and try again
                time.sleep(attempt)
        # Still failing: one bad update must not take the others down with it.
        for update in updates:
            try:
                self._repo.update_many([update])
            except Exception:
                log.exception("could not record an update of run %d", update[0])
