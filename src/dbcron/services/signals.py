"""Ready signals in: an ETL says "the data for this date is loaded", opening a task's gate.

One function behind `POST /api/v1/tasks/{name}/ready` and `manage-tasks ready`.
Every daemon on the store sees the signal at its next tick, within about a second
while a run waits for one (Runner.follow_signals); the API also wakes its own
daemon's loop, to save that second. The CLI sends no SIGHUP: that would reload
every task definition per signal to save half a second on average
(docs/benchmarks.md).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dbcron.errors import DbcronError

if TYPE_CHECKING:
    from pathlib import Path

    from dbcron.settings import Settings
    from dbcron.store import SignalRow, Store


class NoSignalGate(DbcronError):
    """The task does not wait for ready signals, so one would open nothing."""


# Only the form the docs promise: date.fromisoformat would take 20261203 and 2026-W49-4 too.
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(text: object, field: str) -> date:
    """A date written YYYY-MM-DD (`text` is whatever a JSON body held)."""
    if isinstance(text, str) and _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass  # 2026-13-03: the message below
    raise DbcronError(f"{field} {text!r} is not a date: write it as YYYY-MM-DD, "
                      "e.g. 2026-12-03")


def receive(store: Store, settings: Settings, name: str, day: date | None, now: datetime,
            sender: str) -> SignalRow:
    """Record a ready signal for the task and the run's day (the slot's date in the task's
    timezone); by default today there, the day of a slot due now. A task without
    schedule.timezone takes this process's DBCRON_TIMEZONE for that default."""
    from dbcron.daemon.gate import business_date
    from dbcron.services.tasks import load

    task = load(store, name)
    if task.ready is None or not task.ready.signal:
        raise NoSignalGate(
            f"task '{name}' does not wait for a ready signal, so this one would open nothing; "
            "give it ready: {signal: true} (with after/query if it waits for those too)")
    tz = ZoneInfo(task.schedule.timezone or settings.timezone)
    return store.signals.record(name, day or business_date(now, tz), now, sender)


def after_signal(pidfile: Path) -> str:
    """What happens next, in words for the CLI (which sends the daemon nothing)."""
    from dbcron.services.local_daemon import daemon_pid

    pid = daemon_pid(pidfile)
    if pid is None:
        return ("no daemon is running here: a run waiting for this signal starts when a daemon "
                "on this store does (a daemon on another host sees it within about a second)")
    return (f"the daemon (pid {pid}) sees it within about a second: a run waiting for it goes "
            "on then")
