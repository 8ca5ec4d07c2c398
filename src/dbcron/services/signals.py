"""Ready signals in: an ETL says "the data for this date is loaded", opening a task's gate.

One function behind `POST /api/v1/tasks/{name}/ready` and `manage-tasks ready`;
the caller wakes the daemon (the API in-process, the CLI by SIGHUP), and a
daemon elsewhere sees the signal at its next tick (daemon/lifecycle.py).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dbcron.errors import DbcronError

if TYPE_CHECKING:
    from dbcron.settings import Settings
    from dbcron.store import SignalRow, Store


class NoSignalGate(DbcronError):
    """The task does not wait for ready signals, so one would open nothing."""


def parse_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise DbcronError(f"{field} {text!r} is not a date: write it as YYYY-MM-DD, "
                          "e.g. 2026-12-03") from None


def receive(store: Store, settings: Settings, name: str, day: date | None, now: datetime,
            sender: str) -> SignalRow:
    """Record a ready signal for the task and business date (default: today in the task's
    zone, the date of a slot due now)."""
    from dbcron.daemon.gate import business_date
    from dbcron.services.tasks import load

    task = load(store, name)
    if task.ready is None or not task.ready.signal:
        raise NoSignalGate(
            f"task '{name}' does not wait for a ready signal, so this one would open nothing; "
            "give it ready: {signal: true} (with after/query if it waits for those too)")
    tz = ZoneInfo(task.schedule.timezone or settings.timezone)
    return store.signals.record(name, day or business_date(now, tz), now, sender)
