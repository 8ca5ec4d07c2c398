"""Which slot each task is waiting for, and whether it is overdue: pure, given `now`.

A slot is overdue when it is more than OVERDUE_AFTER past and the store holds
no run row for it (nor for a later slot). A daemon that fires the slot writes
the row at once (even `skipped` or `missed` rows count: they are decisions),
so an overdue slot means the timer never fired: a stuck or stopped daemon,
a broken schedule. The gauge lets Prometheus alert on exactly that.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dbcron.schedule import ScheduleSpec, next_fire

OVERDUE_AFTER = timedelta(minutes=1)


def watch(spec: ScheduleSpec, expected: datetime | None, last_slot: datetime | None,
          now: datetime) -> tuple[datetime | None, bool]:
    """(the slot now awaited, whether it is overdue); `expected` is the one awaited so far."""
    if expected is None or (last_slot is not None and last_slot >= expected):
        expected = next_fire(spec, now)
    if expected is None:
        return None, False  # the schedule has ended: nothing to wait for
    late = now - expected > OVERDUE_AFTER
    return expected, late and (last_slot is None or last_slot < expected)
