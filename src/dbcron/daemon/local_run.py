"""`manage-tasks run` without a live daemon: one run in the CLI's own process.

It goes through the daemon's runner (same claim, same history, same worker
process and timeout), so a run started here is recorded like any other.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from dbcron.daemon.runner import Identity, Runner
from dbcron.daemon.worker_pool import WorkerPool
from dbcron.errors import DbcronError
from dbcron.model import Task
from dbcron.settings import Settings
from dbcron.store import RunRow, Store
from dbcron.vocabulary import Trigger

LEASE_RENEWAL = 5.0  # seconds between lease renewals of a run in this process


def run_local(
    store: Store, settings: Settings, task: Task, clock: Callable[[], datetime],
    progress: Callable[[str], None], slot: datetime | None = None, trigger: Trigger = "manual",
) -> RunRow:
    """Run the task once in this process (manage-tasks run --local, or no daemon alive);
    a backfill passes the past slot it runs.

    The row comes back with ``started_at`` of its first attempt, so that its
    duration is the whole run, retry waits included.
    """
    # An identity of its own, with leases it renews: a daemon starting meanwhile must see
    # this run as alive, and Ctrl-C must not leave it `running` forever.
    me = Identity(socket.gethostname(), os.getpid(), str(uuid.uuid4()))
    # The command says what happened itself: the job's routine log lines (mail written,
    # run finished) are for a daemon's journal; its warnings still reach the terminal.
    pool = WorkerPool(1, "WARNING", settings.log_format)
    runner = Runner(store, settings, pool, me, clock)
    try:
        run_id = runner.submit(task, slot or clock(), trigger, clock())
        if run_id is None:
            raise DbcronError(f"could not claim a run of {task.name}")
        renewed = time.monotonic()
        told = None
        first: datetime | None = None
        while runner.active():
            now = clock()
            runner.follow_signals(now)  # `manage-tasks ready` in another shell opens its gate
            runner.tick(now)
            run = store.runs.get(run_id)
            first = first or (run.started_at if run is not None else None)
            if run is not None and run.status == "running" and run.error and run.error != told:
                told = run.error  # "attempt 1 failed: ...; retrying in 30s"
                progress(run.error)
            if time.monotonic() - renewed > LEASE_RENEWAL:
                store.runs.renew_leases(runner.inflight(), runner.lease, clock())
                renewed = time.monotonic()
            time.sleep(0.1)
    finally:
        pool.close(kill_busy=True)
        runner.shutdown()
        store.runs.interrupt_daemon(me.daemon_id or "", clock(),
                                    "interrupted: the manage-tasks run was stopped")
    run = store.runs.get(run_id)
    assert run is not None
    return replace(run, started_at=first or run.started_at)
