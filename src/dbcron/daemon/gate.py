"""Data-ready gates: may a claimed run start now, wait for its data, or give up?

`decide` is pure (the gate's state, the slot and `now` in, a step out); `check`
looks: the store for a ready signal for the slot's date and for same-date
successes of the tasks named in `after`, then the source, read-only, for the
gate query (only once the rest holds, so a gate does not query a database its
upstream load is still filling).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from dbcron.model import Ready, Task
    from dbcron.settings import Settings
    from dbcron.store import Store

# A gate query is a quick look; it never gets the run's whole timeout.
QUERY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Look:
    holds: bool
    why: str  # what is still missing, or what opened it
    signalled: bool = False  # a ready signal for the slot's date is here


@dataclass(frozen=True)
class Step:
    action: Literal["open", "wait", "give_up"]
    next_check: datetime | None = None


def deadline(ready: Ready, slot: datetime) -> datetime:
    return slot + ready.until


def decide(ready: Ready, slot: datetime, now: datetime, holds: bool) -> Step:
    """Open when it holds; else look again after `every` (the last look falls on the
    deadline itself), and give up once the deadline has passed."""
    if holds:
        return Step("open")
    end = deadline(ready, slot)
    if now >= end:
        return Step("give_up")
    return Step("wait", min(now + ready.every, end))


def check(store: Store, settings: Settings, task: Task, slot: datetime) -> Look:
    """Does the gate hold for this slot now? Errors count as 'not yet', with the reason."""
    assert task.ready is not None
    tz = ZoneInfo(task.schedule.timezone or settings.timezone)
    day = business_date(slot, tz)
    signal = store.signals.first(task.name, day) if task.ready.signal else None
    got = signal is not None
    missing = [name for name in task.ready.after if not _succeeded_on(store, name, day, tz)]
    waiting = [f"the ready signal for {day}"] if task.ready.signal and not got else []
    if missing:
        waiting.append(f"{', '.join(missing)} to succeed for {day}")
    if waiting:
        return Look(False, "waiting for " + " and for ".join(waiting), got)
    held = ([f"the ready signal for {day} came at {signal.received_at:%Y-%m-%d %H:%M:%S} UTC "
             f"({signal.sender})"] if signal is not None else [])
    if task.ready.after:
        held.append(f"{', '.join(task.ready.after)} succeeded for {day}")
    if task.ready.query is None:
        return Look(True, "; ".join(held), got)
    try:
        holds = _query_holds(task, slot, tz)
    except Exception as exc:  # the source down is "not ready yet", said in the row
        from dbcron.secrets import mask_secrets

        return Look(False, f"the ready query failed: {mask_secrets(str(exc)).splitlines()[0]}",
                    got)
    return Look(holds, "the ready query holds" if holds else "the ready query does not hold yet",
                got)


def business_date(slot: datetime, tz: ZoneInfo) -> date:
    """The date a slot is for: its date in the task's zone (what signals and `after` match)."""
    return slot.astimezone(tz).date()


def _succeeded_on(store: Store, name: str, day: date, tz: ZoneInfo) -> bool:
    start = datetime.combine(day, time(), tz)
    end = start + timedelta(days=1)
    found = store.runs.history(task=name, status="succeeded", since=start, limit=100)
    return any(r.scheduled_for < end for r in found)


def _query_holds(task: Task, slot: datetime, tz: ZoneInfo) -> bool:
    from dbcron.jobs.query import stream_query
    from dbcron.templating import variables

    assert task.ready is not None and task.ready.query is not None
    gate = task.model_copy(update={"query": task.ready.query, "row_limit": 1})
    timeout = min(QUERY_TIMEOUT, task.ready.every.total_seconds())
    with stream_query(gate, variables(slot, tz, task.name), timeout) as stream:
        for batch in stream.batches:
            for row in batch:
                return bool(row[0])
    return False
