"""`manage-tasks run NAME --dry-run`: build exactly what a slot would send, send nothing.

The files and the mail (as an ``.eml``) go to ``--out`` (or a fresh temporary
directory); with ``--to`` the mail goes, marked "[dry run]", to those
addresses only. No run is recorded and a ``sql`` task's changes are rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from dbcron.errors import DbcronError

if TYPE_CHECKING:
    from dbcron.jobs.types import JobResult
    from dbcron.model import Task
    from dbcron.settings import Settings
    from dbcron.store import Store


class NoSlot(DbcronError):
    """The schedule has no fire time on the date asked for."""


def slot_for(task: Task, default_tz: str, as_of: date | None, now: datetime) -> datetime:
    """The slot a preview is for: the first fire time on ``as_of`` in the task's zone, or now.

    A report's templates say ``yesterday`` relative to its slot, so previewing
    "the mail of 2 March" means running as the 2 March slot would.
    """
    from dbcron.schedule import ScheduleSpec, calendar_decision, describe, next_fire

    spec = ScheduleSpec.from_dict(task.schedule.model_dump(mode="json"), default_tz)
    if as_of is None:
        return now.astimezone(spec.tz)
    midnight = datetime.combine(as_of, time(), spec.tz).astimezone(UTC)
    fire = next_fire(spec, midnight - timedelta(microseconds=1))
    if fire is None or fire.astimezone(spec.tz).date() != as_of:
        why = calendar_decision(spec, as_of)
        raise NoSlot(
            f"{task.name} has no run on {as_of:%Y-%m-%d (%A)} ({describe(spec)})"
            + (f": {why}" if why else "")
            + "; pick a date it runs on, or leave out --as-of to preview as of now"
        )
    return fire.astimezone(spec.tz)


def dry_run_task(
    task: Task,
    settings: Settings,
    slot: datetime,
    out_dir: Path | None,
    to: Sequence[str],
    timeout: float,
) -> JobResult:
    """Run the task for ``slot`` as a dry run; a ``call`` task is described, not called.

    It runs in a worker process, as a real run does, so the task's timeout stops
    it for real: a runaway template or export must not hold the terminal.
    """
    from dbcron.daemon.worker_pool import TimedOut, WorkerPool
    from dbcron.jobs.types import JobRequest, JobResult

    if task.kind == "call":
        # Its function may do anything: there is no way to call it without effect.
        return JobResult("succeeded", summary=f"dry run: would call {task.call}")
    request = JobRequest(
        task=task,
        slot=slot,
        settings=settings,
        timeout=timeout,
        trigger="dry-run",
        dry_run=True,
        out_dir=out_dir,
        to=tuple(to),
    )
    pool = WorkerPool(1, settings.log_level, settings.log_format)
    try:
        return pool.run(request, timeout)
    except TimedOut:
        return JobResult(
            "failed", error=f"the dry run was stopped at the task's timeout ({timeout:g}s)"
        )
    finally:
        pool.close(kill_busy=True)


def dry_run(
    store: Store,
    settings: Settings,
    name: str,
    as_of: str | None,
    out_dir: str | None,
    to: Sequence[str],
    now: datetime,
) -> JobResult:
    """The service behind ``run NAME --dry-run``: look the task up, find its slot, dry-run it."""
    from dbcron.services import tasks

    task = tasks.load(store, name)
    day = _parse_date(as_of) if as_of else None
    slot = slot_for(task, settings.timezone, day, now)
    timeout = task.policy.timeout.total_seconds()
    result = dry_run_task(task, settings, slot, Path(out_dir) if out_dir else None, to, timeout)
    lines = [line for line in (_calendar_line(task, settings.timezone, slot),
                               _gate_line(store, settings, task, slot)) if line]
    if not lines:
        return result
    return replace(result, summary="\n".join([*lines, result.summary] if result.summary
                                                else lines))


def _gate_line(store: Store, settings: Settings, task: Task, slot: datetime) -> str | None:
    """Whether the data-ready gate holds for the slot now (a dry run looks once, never waits)."""
    if task.ready is None:
        return None
    from zoneinfo import ZoneInfo

    from dbcron.daemon.gate import business_date, check, deadline

    look = check(store, settings, task, slot)
    if look.holds:
        return f"ready: holds now ({look.why})"
    end = deadline(task.ready, slot)
    line = (f"ready: not yet ({look.why}); a scheduled run would wait, looking every "
            f"{_spelled(task.ready.every)}, until {end:%Y-%m-%d %H:%M} UTC, then "
            f"{task.ready.then}")
    day = business_date(slot, ZoneInfo(task.schedule.timezone or settings.timezone))
    if task.ready.signal and store.signals.first(task.name, day) is None:
        line += (f"; the signal is sent by 'manage-tasks ready {task.name} --date {day}' or "
                 f"POST /api/v1/tasks/{task.name}/ready")
    return line


def _spelled(value: timedelta) -> str:
    from dbcron.durations import format_duration

    return format_duration(value)


def _calendar_line(task: Task, default_tz: str, slot: datetime) -> str | None:
    """What the business calendar decided for the slot's day, or None without a calendar."""
    from dbcron.schedule import ScheduleSpec, calendar_decision, calendar_notes

    spec = ScheduleSpec.from_dict(task.schedule.model_dump(mode="json"), default_tz)
    if spec.calendar is None:
        return None
    notes = calendar_notes(spec, slot - timedelta(days=1), slot)
    day = slot.astimezone(spec.tz).date()
    decided = calendar_decision(spec, day) or f"{day} is a business day"
    return "calendar: " + "; ".join([decided, *notes])


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DbcronError(f"--as-of {text!r} is not a date; write it as YYYY-MM-DD") from None
