"""The runner in-process on a real SQLite store and real worker processes: overlap, grace,
max_runs, jitter. The clock is injected where the policy reads it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import CALL_MODULES
from dbcron.daemon.runner import Identity, Runner, backoff
from dbcron.daemon.worker_pool import WorkerPool
from dbcron.model import Task
from dbcron.schedule import jitter_for
from dbcron.settings import load_settings
from dbcron.store import Store, open_store


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Store, Runner]]:
    settings = load_settings(environ={"DBCRON_STATE_DIR": str(tmp_path), "DBCRON_MAX_WORKERS": "3",
                                      "DBCRON_CALL_MODULES": CALL_MODULES}, cwd=tmp_path)
    store = open_store(settings.store)
    pool = WorkerPool(3)
    runner = Runner(store, settings, pool, Identity("h", 1, "d"), lambda: datetime.now(UTC))
    yield store, runner
    pool.close(kill_busy=True)
    runner.shutdown()
    store.close()


def task(name: str, overlap: str = "skip", seconds: float = 0.8, **extra: Any) -> Task:
    return Task.model_validate({
        "name": name, "kind": "call", "call": "jobs:sleep", "args": [seconds],
        "schedule": {"every": "1h", **extra.pop("schedule", {})},
        "policy": {"overlap": overlap, "grace": "1h", **extra.pop("policy", {})}, **extra,
    })


def wait_idle(runner: Runner, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while runner.active() and time.monotonic() < deadline:
        runner.tick(datetime.now(UTC))
        time.sleep(0.05)
    assert not runner.active()
    runner.writer.flush()  # row updates are written by the writer thread


def two_slots(store: Store, runner: Runner, t: Task) -> list[Any]:
    now = datetime.now(UTC)
    first, second = now - timedelta(seconds=2), now - timedelta(seconds=1)
    runner.submit(t, first, "schedule", now)
    time.sleep(0.2)
    runner.submit(t, second, "schedule", now)
    wait_idle(runner)
    return sorted(store.runs.history(t.name), key=lambda r: r.scheduled_for)


def test_overlap_skip_records_the_second_slot(env: tuple[Store, Runner]) -> None:
    store, runner = env
    first, second = two_slots(store, runner, task("skipper", "skip"))
    assert (first.status, second.status) == ("succeeded", "skipped")
    assert second.error == "the previous run was still running"


def test_overlap_queue_runs_the_second_after_the_first(env: tuple[Store, Runner]) -> None:
    store, runner = env
    first, second = two_slots(store, runner, task("queuer", "queue"))
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert second.started_at >= first.finished_at  # type: ignore[operator]


def test_overlap_allow_runs_both_at_once(env: tuple[Store, Runner]) -> None:
    store, runner = env
    first, second = two_slots(store, runner, task("allower", "allow"))
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert second.started_at < first.finished_at  # type: ignore[operator]


def test_a_slot_past_grace_is_missed(env: tuple[Store, Runner]) -> None:
    store, runner = env
    now = datetime.now(UTC)
    t = task("late", policy={"grace": "10m"})
    assert runner.submit(t, now - timedelta(minutes=11), "schedule", now) is None
    (run,) = store.runs.history("late")
    assert (run.status, run.error) == ("missed", "started 11m late, past its grace of 10m")


def test_max_runs_stops_after_enough_successes(env: tuple[Store, Runner]) -> None:
    store, runner = env
    t = task("twice", seconds=0, schedule={"max_runs": 2})
    now = datetime.now(UTC)
    for minutes in (3, 2, 1):
        runner.submit(t, now - timedelta(minutes=minutes), "schedule", now)
        wait_idle(runner)
    assert [r.status for r in store.runs.history("twice")] == ["succeeded", "succeeded"]


def test_jitter_delays_the_start_but_not_the_slot(env: tuple[Store, Runner]) -> None:
    store, runner = env
    t = task("jittery", seconds=0, schedule={"jitter": "1h"})
    # The slot is now: grace, checked when the attempt gets its worker, counts from the
    # jittered start, which the tick below releases.
    now = datetime.now(UTC).replace(microsecond=0)
    delay = jitter_for("jittery", now, timedelta(hours=1))
    assert timedelta(seconds=2) < delay < timedelta(hours=1)
    run_id = runner.submit(t, now, "schedule", now)
    assert run_id is not None
    runner.tick(now + timedelta(seconds=1))
    time.sleep(0.3)
    runner.writer.flush()
    run = store.runs.get(run_id)
    assert run is not None and run.started_at is None  # claimed, waiting for its jitter
    runner.tick(now + timedelta(hours=1))
    wait_idle(runner)
    run = store.runs.get(run_id)
    assert run is not None and run.status == "succeeded" and run.scheduled_for == now


@pytest.mark.parametrize(("attempt", "seconds"), [(1, 30), (2, 60), (3, 120), (6, 600), (9, 600)])
def test_backoff_doubles_and_caps(attempt: int, seconds: float) -> None:
    assert backoff(attempt, 30) == seconds


def test_catchup_all_runs_every_slot_one_after_the_other(env: tuple[Store, Runner]) -> None:
    store, runner = env
    t = task("backlog", "skip", seconds=0.3, policy={"catchup": "all"})
    now = datetime.now(UTC)
    for minutes in (3, 2, 1):
        runner.submit(t, now - timedelta(minutes=minutes), "catchup", now)
    wait_idle(runner)
    runs = sorted(store.runs.history("backlog"), key=lambda r: r.scheduled_for)
    assert [r.status for r in runs] == ["succeeded"] * 3
    assert runs[1].started_at >= runs[0].finished_at  # type: ignore[operator]


def test_max_runs_counts_runs_still_going(env: tuple[Store, Runner]) -> None:
    store, runner = env
    t = task("once", "queue", seconds=0.5, schedule={"max_runs": 1})
    now = datetime.now(UTC)
    runner.submit(t, now - timedelta(seconds=2), "schedule", now)
    assert runner.submit(t, now - timedelta(seconds=1), "schedule", now) is None
    wait_idle(runner)
    assert [r.status for r in store.runs.history("once")] == ["succeeded"]
