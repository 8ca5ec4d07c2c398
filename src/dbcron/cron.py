"""Five-field cron expressions on wall-clock time.

Written here rather than taken from APScheduler's CronTrigger because
`manage-tasks list` computes the next fire of every task (10,000 in the
benchmark) and CronTrigger costs ~60 µs to build and its own DST rules differ
from the task's `dst` policy; this works on naive local times only and leaves
time zones to `schedule.py`.
"""

from __future__ import annotations

from calendar import isleap
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, time, timedelta
from functools import lru_cache

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = (
    # name, low, high, names (offset so that names[0] == low)
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)

VALID = (
    "five fields 'minute hour day-of-month month day-of-week' (e.g. '0 9 * * mon-fri', "
    "'*/15 * * * *') or one of " + ", ".join(_MACROS)
)


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message says which field and why."""


@dataclass(frozen=True)
class Cron:
    """Allowed values of each field; `dom_any`/`dow_any` keep Vixie cron's OR rule."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday, as date.weekday()
    dom_any: bool
    dow_any: bool

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = d.weekday() in self.weekdays
        if self.dom_any or self.dow_any:
            # Only a restricted field constrains; both '*' means every day.
            return dom and dow
        return dom or dow

    def next_after(self, after: datetime) -> datetime | None:
        """First naive wall time strictly after `after` that matches; None when none ever
        will.

        Day by day for 8 years, where every common schedule fires; past them, only the
        dates the day-of-month field allows, for the 400 years in which the Gregorian
        calendar and its weekdays repeat: '0 0 29 2 */7' (29 February on a Sunday)
        fires in 2032, then in 2060, and no search stops short of that. (Every date a
        month has falls on every weekday within that cycle, so once parse_cron has
        checked that some month has the day, only the year 9999 ends a search empty.)
        """
        start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        first_time: time | None = start.time()
        for _ in range(366 * 8):
            if self.day_matches(day):
                found = self._first_time_on(first_time)
                if found is not None:
                    return datetime.combine(day, found)
            day += timedelta(days=1)
            first_time = None
        return self._far(day)

    def _far(self, since: date) -> datetime | None:
        # Reached only by a day-of-month AND weekday rule (any other rule matches a day of
        # every allowed month within weeks): its dates are few, so try them one by one.
        months, days = sorted(self.months), sorted(self.days)
        for year in range(since.year, min(since.year + 401, MAXYEAR + 1)):
            for month in months:
                for dom in days:
                    if not _fits(dom, month) or (dom == 29 and month == 2 and not isleap(year)):
                        continue
                    candidate = date(year, month, dom)
                    if candidate >= since and self.day_matches(candidate):
                        return datetime.combine(candidate, time(self.hours[0], self.minutes[0]))
        return None

    def _first_time_on(self, not_before: time | None) -> time | None:
        if not_before is None:
            return time(self.hours[0], self.minutes[0])
        for hour in self.hours:
            if hour < not_before.hour:
                continue
            for minute in self.minutes:
                if hour > not_before.hour or minute >= not_before.minute:
                    return time(hour, minute)
        return None


def _parse_value(token: str, field: str, low: int, high: int, names: list[str] | None) -> int:
    if names is not None and token.lower()[:3] in names and token.isalpha():
        return names.index(token.lower()[:3]) + (1 if names is _MONTHS else 0)
    if not token.isdigit():
        raise CronError(f"{field}: {token!r} is not a number in {low}-{high}")
    value = int(token)
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is out of range {low}-{high}")
    return value


def _parse_field(text: str, field: str, low: int, high: int, names: list[str] | None) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first = _parse_value(a, field, low, high, names)
            last = _parse_value(b, field, low, high, names)
            if last < first:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            first = _parse_value(base, field, low, high, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values


@lru_cache(maxsize=4096)
def parse_cron(expression: str) -> Cron:
    """Parse an expression (cached: many tasks share a few schedules)."""
    text = _MACROS.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{expression!r} has {len(parts)} fields; expected {VALID}")
    sets = [
        _parse_field(part, name, low, high, names)
        for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
    ]
    minutes, hours, days, months, cron_dow = sets
    # cron counts Sunday as 0 or 7; date.weekday() counts Monday as 0.
    weekdays = frozenset((d - 1) % 7 for d in cron_dow)
    dom_any, dow_any = parts[2].startswith("*"), parts[4].startswith("*")
    if dow_any and not any(_fits(d, m) for m in months for d in days):
        raise CronError(f"{expression!r} names a day that no month in it has")
    return Cron(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=weekdays,
        dom_any=dom_any,
        dow_any=dow_any,
    )


def _fits(day: int, month: int) -> bool:
    return day <= (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
