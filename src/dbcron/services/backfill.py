"""`manage-tasks backfill NAME --from DATE --to DATE`: run past slots that never succeeded.

Each slot goes through the same path as `run` (the live daemon when there is
one, else this process), one at a time, oldest first, for that slot: the same
run row (a failed one is run again in place), the same Message-ID, the same
report dates. A slot that succeeded is never run again, so never mailed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dbcron.errors import DbcronError

if TYPE_CHECKING:
    from dbcron.schedule import ScheduleSpec
    from dbcron.settings import Settings
    from dbcron.store import RunRow, Store

MAX_SLOTS = 1000  # a typo in a year should not queue a decade of reports


@dataclass(frozen=True)
class BackfillPlan:
    task: str
    tz: ZoneInfo  # the task's zone, for showing slots
    slots: list[datetime]  # to run, oldest first
    done: int  # slots in the range that already succeeded
    running: int  # slots in the range running now (left alone)
    future: int  # slots after now, left to the schedule


def slots_in(spec: ScheduleSpec, first: date, last: date) -> Iterator[datetime]:
    """The task's slots from the start of `first` to the end of `last`, in its zone."""
    from dbcron.schedule import fires_between

    start = datetime.combine(first, time(), spec.tz) - timedelta(microseconds=1)
    end = datetime.combine(last + timedelta(days=1), time(), spec.tz) - timedelta(microseconds=1)
    return fires_between(spec, start, end)


def plan(store: Store, settings: Settings, name: str, first: date, last: date,
         now: datetime) -> BackfillPlan:
    """Which slots of [first, last] a backfill runs: those without a successful run."""
    from dbcron.services import tasks

    if last < first:
        raise DbcronError(f"--to {last} is before --from {first}")
    spec = tasks.spec_of(tasks.get(store, name), settings)
    slots: list[datetime] = []
    future = 0
    for slot in slots_in(spec, first, last):
        if slot > now:
            future += 1
            continue
        slots.append(slot)
        if len(slots) > MAX_SLOTS:
            raise DbcronError(f"{name} has more than {MAX_SLOTS} slots from {first} to {last}; "
                              "backfill a shorter range at a time")
    earliest = slots[0] if slots else now
    status = {r.scheduled_for: r.status
              for r in store.runs.history(task=name, since=earliest, limit=10 * MAX_SLOTS)}
    todo = [s for s in slots if status.get(s) not in ("succeeded", "running")]
    done = sum(1 for s in slots if status.get(s) == "succeeded")
    running = sum(1 for s in slots if status.get(s) == "running")
    return BackfillPlan(name, spec.tz, todo, done, running, future)


def describe(todo: BackfillPlan) -> str:
    parts = [f"{len(todo.slots)} slot{'' if len(todo.slots) == 1 else 's'} to run",
             f"{todo.done} already succeeded"]
    if todo.running:
        parts.append(f"{todo.running} running now (left alone)")
    if todo.future:
        parts.append(f"{todo.future} still to come (left to the schedule)")
    return f"backfill of {todo.task}: " + ", ".join(parts)


def backfill(
    store: Store, settings: Settings, todo: BackfillPlan, clock: Callable[[], datetime],
    local: bool,
) -> Iterator[RunRow]:
    """Run the planned slots one at a time, oldest first, yielding each one's final row
    as it ends (the caller shows progress)."""
    from dbcron.services.runs import run_now

    for slot in todo.slots:
        yield run_now(store, settings, todo.task, clock, local, lambda _line: None, slot,
                      "backfill")


def slot_line(todo: BackfillPlan, number: int, run: RunRow) -> str:
    """One finished slot as a line of its own: `[3/20] 2026-11-13T09:00:00+00:00 succeeded
    in 1.2s`, with the first line of its error when it failed."""
    took = ""
    if run.started_at and run.finished_at:
        took = f" in {(run.finished_at - run.started_at).total_seconds():.1f}s"
    error = f": {run.error.splitlines()[0]}" if run.error else ""
    when = run.scheduled_for.astimezone(todo.tz).isoformat()
    return f"[{number}/{len(todo.slots)}] {when} {run.status}{took}{error}"


def bar_item(todo: BackfillPlan, run: RunRow | None) -> str:
    """Beside the progress bar: the slot that just ended and how."""
    if run is None:
        return ""
    return f"{run.scheduled_for.astimezone(todo.tz):%Y-%m-%d %H:%M} {run.status}"
