"""Business calendars: which days are open, and which days a calendar schedule runs on.

Pure functions of a `CalendarRule` and dates. Public holidays come from the
`holidays` package, imported only when a calendar with a country is first
asked about, so `manage-tasks list` stays fast for tasks without one.

A calendar schedule is a cron expression plus one day rule:

- `on_holiday: skip` (the default, and what `business_days: all` means): the
  cron's days, less the closed ones;
- `on_holiday: next` / `previous`: a cron day that is closed moves to the
  next / previous open day, at the same wall time (two slots landing on one
  day run once);
- `business_day: N`: the Nth open day of the month (N < 0 counts from its end).

The time of day always comes from the cron expression: cron times do not
depend on the day, so a day rule only has to say which days are active.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from dbcron.cron import Cron
from dbcron.vocabulary import WEEKDAYS

# No public calendar closes more than a few weeks in a row; a bound keeps a
# malformed calendar from looping, and validation forbids an all-week weekend.
_MAX_CLOSED_RUN = 62


@dataclass(frozen=True)
class CalendarRule:
    """A schedule's calendar and day rule, resolved from its stored form."""

    country: str | None = None
    subdivision: str | None = None
    holidays: frozenset[date] = frozenset()
    weekend: frozenset[int] = frozenset({5, 6})  # date.weekday(): 5 = Saturday
    on_holiday: str = "skip"
    business_day: int | None = None

    @classmethod
    def from_schedule(cls, data: Mapping[str, Any]) -> CalendarRule | None:
        """From a stored schedule mapping; None when it has no calendar."""
        calendar = data.get("calendar")
        if calendar is None:
            return None
        weekend = calendar.get("weekend")
        return cls(
            country=calendar.get("country"),
            subdivision=calendar.get("subdivision"),
            holidays=frozenset(_date(d) for d in calendar.get("holidays") or ()),
            weekend=frozenset({5, 6} if weekend is None else {WEEKDAYS.index(w) for w in weekend}),
            on_holiday=data.get("on_holiday") or "skip",
            business_day=data.get("business_day"),
        )

    def label(self) -> str:
        """The calendar in a few words, e.g. 'GB-ENG holidays, weekend sat+sun'."""
        where = "-".join(p for p in (self.country, self.subdivision) if p)
        parts = [f"{where} holidays" if where else "no public holidays"]
        if self.holidays:
            parts.append(f"{len(self.holidays)} listed closure"
                         + ("" if len(self.holidays) == 1 else "s"))
        days = "+".join(WEEKDAYS[d] for d in sorted(self.weekend))
        parts.append(f"weekend {days}" if days else "no weekend")
        return ", ".join(parts)


def _date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@lru_cache(maxsize=256)
def public_holidays(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    """The named public holidays of one year (observed days included), cached."""
    import holidays

    return dict(holidays.country_holidays(country, subdiv=subdivision, years=year).items())


def closed_reason(rule: CalendarRule, day: date) -> str | None:
    """Why `day` is not a business day ('Christmas Day', 'a Saturday'), or None if open."""
    if day in rule.holidays:
        return "a listed holiday"
    if rule.country is not None:
        name = public_holidays(rule.country, rule.subdivision, day.year).get(day)
        if name is not None:
            return name
    if day.weekday() in rule.weekend:
        return f"a {day:%A}"
    return None


def is_open(rule: CalendarRule, day: date) -> bool:
    return closed_reason(rule, day) is None


@lru_cache(maxsize=4096)
def open_days(rule: CalendarRule, year: int, month: int) -> tuple[date, ...]:
    """The business days of a month, in order (cached: `business_day` asks daily)."""
    day = date(year, month, 1)
    result = []
    while day.month == month:
        if is_open(rule, day):
            result.append(day)
        day += timedelta(days=1)
    return tuple(result)


def nth_business_day(rule: CalendarRule, year: int, month: int, n: int) -> date | None:
    """The Nth business day (N < 0 counts from the end); None when the month has too few."""
    days = open_days(rule, year, month)
    index = n - 1 if n > 0 else n
    return days[index] if -len(days) <= index < len(days) else None


def _shift(rule: CalendarRule, day: date, step: int) -> date | None:
    """The first open day after (step 1) or before (step -1) `day`."""
    for _ in range(_MAX_CLOSED_RUN):
        day += timedelta(days=step)
        if is_open(rule, day):
            return day
    return None


def _closed_neighbours(rule: CalendarRule, day: date, step: int) -> list[date]:
    """The closed days right before (step -1) or after (step 1) `day`, nearest first."""
    result = []
    for _ in range(_MAX_CLOSED_RUN):
        day += timedelta(days=step)
        if is_open(rule, day):
            break
        result.append(day)
    return result


def day_active(rule: CalendarRule, cron: Cron, day: date) -> bool:
    """Does the schedule run on `day` (at the cron's times)?"""
    if rule.business_day is not None:
        return (day.month in cron.months
                and nth_business_day(rule, day.year, day.month, rule.business_day) == day)
    if not is_open(rule, day):
        return False
    if cron.day_matches(day):
        return True
    if rule.on_holiday == "skip":
        return False
    # A closed cron day moves to the open day after (next) or before (previous) it.
    step = -1 if rule.on_holiday == "next" else 1
    return any(cron.day_matches(d) for d in _closed_neighbours(rule, day, step))


def moves_into(rule: CalendarRule, cron: Cron, day: date) -> list[str]:
    """Why the schedule runs on `day` although the cron alone would not, or what it passed.

    For `next`/`previous`: the closed cron days moved onto `day`. For
    `business_day`: the closed weekdays that the count passed over. Weekend
    days are left out of a `business_day` note: everyone expects those.
    """
    if rule.business_day is not None:
        first = date(day.year, day.month, 1)
        span = range(day.day, 32) if rule.business_day < 0 else range(1, day.day)
        notes = []
        for number in span:
            try:
                other = first.replace(day=number)
            except ValueError:
                break
            reason = closed_reason(rule, other)
            if reason is not None and other.weekday() not in rule.weekend:
                notes.append(f"{other} is {reason}: not a business day")
        return notes
    if rule.on_holiday == "skip":
        return []
    step = -1 if rule.on_holiday == "next" else 1
    return [
        f"{d} is {closed_reason(rule, d)}: moved to {day}"
        for d in sorted(_closed_neighbours(rule, day, step))
        if cron.day_matches(d)
    ]


def skipped_between(rule: CalendarRule, cron: Cron, first: date, last: date) -> list[str]:
    """Cron days in [first, last] that `on_holiday: skip` drops, weekends left out."""
    if rule.business_day is not None or rule.on_holiday != "skip":
        return []
    notes = []
    day = first
    while day <= last:
        reason = closed_reason(rule, day)
        if reason is not None and day.weekday() not in rule.weekend and cron.day_matches(day):
            notes.append(f"{day} is {reason}: skipped")
        day += timedelta(days=1)
    return notes


def decision(rule: CalendarRule, cron: Cron, day: date) -> str | None:
    """What the calendar does with `day`, for a dry run of that date; None if nothing."""
    reason = closed_reason(rule, day)
    if rule.business_day is not None:
        n = rule.business_day
        target = nth_business_day(rule, day.year, day.month, n)
        which = "last" if n == -1 else f"{ordinal(-n)} last" if n < 0 else ordinal(n)
        where = f"the {which} business day of {day:%B %Y} is {target}"
        if target is None:
            return f"{day:%B %Y} has fewer than {abs(n)} business days"
        return f"{day} is {reason}; {where}" if reason else where
    if reason is None or not cron.day_matches(day):
        return None
    if rule.on_holiday == "skip":
        return f"{day} is {reason}: skipped"
    target = _shift(rule, day, 1 if rule.on_holiday == "next" else -1)
    return f"{day} is {reason}: moved to {target}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
