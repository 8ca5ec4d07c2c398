"""Run services behind the CLI: run now, history, daemon status and its health check."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dbcron.errors import DbcronError
from dbcron.settings import Settings
from dbcron.store import DaemonRow, RunRow, Store
from dbcron.vocabulary import FINAL_STATUSES, RunStatus, Trigger

if TYPE_CHECKING:
    from dbcron.model import Task

TAKE_TIMEOUT = 15.0  # seconds a live daemon gets to take a run-now request


def live_daemon(store: Store, now: datetime) -> DaemonRow | None:
    return next((d for d in store.daemons.latest() if d.alive(now)), None)


def run_now(
    store: Store, settings: Settings, name: str, clock: Callable[[], datetime], local: bool,
    progress: Callable[[str], None], slot: datetime | None = None, trigger: Trigger = "manual",
) -> RunRow:
    """Run a task now, through the live daemon when there is one, else in this process.

    A backfill passes a past `slot` and its trigger; the run is for that slot.

    The row comes back with ``started_at`` of its first attempt, so that its
    duration is the whole run, retry waits included (each attempt restarts the
    stored ``started_at``).
    """
    from dbcron.services import tasks

    task = tasks.load(store, name)
    now = clock()
    daemon = None if local else live_daemon(store, now)
    if daemon is None:
        progress("running here" + ("" if local else " (no daemon is alive)"))
        from dbcron.daemon.local_run import run_local

        return run_local(store, settings, task, clock, progress, slot, trigger)
    progress(f"asking the daemon (pid {daemon.pid} on {daemon.host}) to run {name}")
    request_id = store.daemons.request_run(name, now, slot, None if slot is None else trigger)
    run_id = _wait_taken(store, request_id)
    limit = _longest(task)
    told = None
    first: datetime | None = None
    while True:
        run = store.runs.get(run_id)
        first = first or (run.started_at if run is not None else None)
        if run is not None and run.status in FINAL_STATUSES:
            return replace(run, started_at=first or run.started_at)
        if run is not None and run.error and run.error != told:
            told = run.error
            progress(run.error)
        if time.monotonic() > limit:
            raise DbcronError(f"run {run_id} of {name} has not finished in time; "
                              f"see 'manage-tasks history {name}'")
        time.sleep(0.2)


def _wait_taken(store: Store, request_id: int) -> int:
    deadline = time.monotonic() + TAKE_TIMEOUT
    while time.monotonic() < deadline:
        _taker, run_id = store.daemons.answer_of(request_id)
        if run_id is not None:
            return run_id
        time.sleep(0.1)
    if store.daemons.withdraw(request_id):
        raise DbcronError("the daemon did not take the request; is it stuck? "
                          "Try 'manage-tasks run --local'")
    raise DbcronError("the daemon took the request but started no run (see its log)")


def _longest(task: Task) -> float:
    """A monotonic deadline past every attempt, timeout and backoff of the task."""
    attempts = task.policy.retries + 1
    return time.monotonic() + attempts * (task.policy.timeout.total_seconds() + 660)


def mail_note(store: Store, run: RunRow) -> str:
    """Why a succeeded run sent no mail, from the task's rules (empty when it mailed)."""
    from dbcron.model import Task

    row = store.tasks.get(run.task)
    if row is None or run.status != "succeeded" or run.rows is None:
        return ""
    task = Task.model_validate(row.data)
    if task.kind not in ("report", "alert"):
        return ""
    if task.email is None:
        mails = any(entry.type == "mail" for entry in task.deliver)
        return "no email configured: mail not sent" if task.kind == "report" and not mails \
            else ""
    if task.kind == "alert":
        return "no rows: the condition does not hold, mail not sent" if run.rows == 0 else ""
    if task.email.send == "if_rows" and run.rows == 0:
        return "no rows: mail not sent (send: if_rows)"
    if task.email.send == "if_empty" and run.rows > 0:
        return f"{run.rows:,} rows: mail not sent (send: if_empty)"
    return ""


def parse_since(text: str, now: datetime, default_tz: str) -> datetime:
    """`--since`: an ISO time, or a duration back from now such as 24h or 7d."""
    from dbcron.durations import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise DbcronError(
            f"--since {text!r}: give an ISO time (2026-11-20, 2026-11-20T09:00+01:00) or a "
            "duration back from now (24h, 7d)"
        ) from None
    if value.tzinfo is None:
        from zoneinfo import ZoneInfo

        value = value.replace(tzinfo=ZoneInfo(default_tz))
    return value


def history(store: Store, name: str | None, status: RunStatus | None, since: datetime | None,
            limit: int) -> list[RunRow]:
    if name is not None:
        from dbcron.services import tasks

        if store.tasks.get(name) is None and not store.runs.history(task=name, limit=1):
            tasks.get(store, name)  # raises TaskNotFound with a suggestion
    return store.runs.history(task=name, status=status, since=since, limit=limit)


@dataclass
class Status:
    daemon: DaemonRow | None
    alive: bool
    runs_24h: dict[str, int]
    upcoming: list[tuple[datetime, str]]
    failing: list[str]  # tasks whose last run did not succeed

    def to_json(self) -> dict[str, Any]:
        d = self.daemon
        return {
            "daemon": {
                "alive": self.alive,
                "pid": d.pid if d else None,
                "host": d.host if d else None,
                "started_at": d.started_at.isoformat() if d else None,
                "last_heartbeat": d.heartbeat_at.isoformat() if d else None,
                "last_reload": d.last_reload_at.isoformat() if d and d.last_reload_at else None,
                "tasks_loaded": d.tasks_loaded if d else 0,
            },
            "runs_24h": self.runs_24h,
            "next": [{"task": n, "at": t.astimezone(UTC).isoformat()} for t, n in self.upcoming],
            "failing": self.failing,
        }


def status(store: Store, settings: Settings, now: datetime, count: int = 5) -> Status:
    from dbcron.schedule import next_fire
    from dbcron.services.tasks import spec_from_json

    daemons = store.daemons.latest()
    live = next((d for d in daemons if d.alive(now)), None)
    upcoming: list[tuple[datetime, str]] = []
    enabled: set[str] = set()
    for name, _kind, is_enabled, schedule in store.tasks.summaries():
        if not is_enabled:
            continue
        enabled.add(name)
        spec = spec_from_json(schedule, settings.timezone)
        at = next_fire(spec, now)
        if at is not None:
            upcoming.append((at.astimezone(spec.tz), name))  # shown in the task's zone
    upcoming.sort()
    failing = sorted(
        name for name, (_slot, last) in store.runs.latest_status().items()
        if name in enabled and last in FINAL_STATUSES - {"succeeded", "skipped"}
    )
    return Status(
        daemon=live or (daemons[0] if daemons else None),
        alive=live is not None,
        runs_24h=store.runs.counts_since(now - timedelta(hours=24)),
        upcoming=upcoming[:count],
        failing=failing,
    )


def health(report: Status) -> tuple[bool, str]:
    """`status --check`: healthy when a daemon is alive and no task's last run failed."""
    if not report.alive:
        return False, "unhealthy: no scheduler-daemon is alive (no heartbeat in 15 s)"
    if report.failing:
        return False, "unhealthy: last run failed for " + ", ".join(report.failing)
    d = report.daemon
    assert d is not None
    return True, f"ok: daemon pid {d.pid} on {d.host} alive, {d.tasks_loaded} tasks, none failing"
