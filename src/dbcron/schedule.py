"""When a task fires: pure functions of its schedule and a given instant.

Everything here takes `now`/`after` as an argument; nothing reads the clock.
`manage-tasks next`, `list`, `show` and the daemon's APScheduler trigger all go
through `next_fire`, so what the CLI prints is what the daemon runs.

Cron expressions are wall-clock times in the task's zone. A wall time that a
spring-forward gap skips runs at the end of the gap (`gap: shift`) or not at
all (`gap: skip`); a wall time that a fall-back repeats runs on its first pass
(`overlap: first`) or on both (`overlap: both`). Intervals (`every`) count
real elapsed time from `start`, or from the Unix epoch when there is none, so
the slots of `every: 30m` are :00 and :30 and survive restarts unchanged.
A cron schedule with a business calendar runs on the days `calendars.py`
makes active, at the cron's times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from dbcron.calendars import (
    CalendarRule,
    day_active,
    decision,
    moves_into,
    nth_business_day,
    ordinal,
    skipped_between,
)
from dbcron.cron import parse_cron
from dbcron.durations import format_duration, parse_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Wide enough for any real DST shift (Lord Howe's is 30 minutes, the largest 2 hours).
_DST_WINDOW = timedelta(hours=3)


@dataclass(frozen=True)
class ScheduleSpec:
    """A task's schedule, resolved: exactly one of cron, every, at is set."""

    tz: ZoneInfo
    cron: str | None = None
    every: timedelta | None = None
    at: datetime | None = None
    jitter: timedelta = timedelta(0)
    start: datetime | None = None
    end: datetime | None = None
    max_runs: int | None = None
    gap: str = "shift"
    overlap: str = "first"
    calendar: CalendarRule | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], default_tz: str = "UTC") -> ScheduleSpec:
        """Build from a stored (already validated) schedule mapping."""
        tz = ZoneInfo(data.get("timezone") or default_tz)
        dst = data.get("dst") or {}
        every = data.get("every")
        return cls(
            tz=tz,
            cron=data.get("cron"),
            every=parse_duration(every) if every is not None else None,
            at=_local(data.get("at"), tz),
            jitter=parse_duration(data["jitter"]) if data.get("jitter") else timedelta(0),
            start=_local(data.get("start"), tz),
            end=_local(data.get("end"), tz),
            max_runs=data.get("max_runs"),
            gap=dst.get("gap", "shift"),
            overlap=dst.get("overlap", "first"),
            calendar=CalendarRule.from_schedule(data),
        )


def _local(value: str | datetime | None, tz: ZoneInfo) -> datetime | None:
    """An ISO time from a task file: naive means wall time in the task's zone."""
    if value is None:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if dt.tzinfo is None:
        instants = wall_to_instants(dt, tz, "shift", "first")
        return instants[0]
    return dt.astimezone(UTC)


def wall_to_instants(naive: datetime, tz: ZoneInfo, gap: str, overlap: str) -> list[datetime]:
    """The UTC instants a wall time stands for under the DST policy: none, one or two."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(tz).replace(tzinfo=None) != naive:
        # In a gap PEP 495 maps fold=1 before the transition and fold=0 after it.
        return [] if gap == "skip" else [_transition(second, first, tz)]
    return [first] if overlap == "first" else [first, second]


def _transition(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """First instant in (low, high] with the offset in force at `high` (bisection)."""
    target = high.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(tz).utcoffset() == target:
            high = mid
        else:
            low = mid
    return high


def next_fire(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first slot strictly after `after` (aware), or None when there is none."""
    after = after.astimezone(UTC)
    if spec.start is not None and after < spec.start:
        after = spec.start - timedelta(microseconds=1)
    if spec.cron is not None and spec.calendar is not None:
        found = _next_calendar(spec, spec.calendar, after)
    elif spec.cron is not None:
        found = _next_cron(spec, after)
    elif spec.every is not None:
        found = _next_interval(spec.every, spec.start or EPOCH, after)
    elif spec.at is not None:
        found = spec.at if spec.at > after else None
    else:
        found = None
    if found is not None and spec.end is not None and found > spec.end:
        return None
    return found


def _next_interval(every: timedelta, anchor: datetime, after: datetime) -> datetime:
    if after < anchor:
        return anchor
    steps = (after - anchor) // every + 1
    return anchor + every * steps


def _next_cron(spec: ScheduleSpec, after: datetime) -> datetime | None:
    assert spec.cron is not None
    cron = parse_cron(spec.cron)
    tz = spec.tz
    local = after.astimezone(tz).replace(tzinfo=None)
    if _steady(tz, after):
        # No offset change near: wall time and instants run in the same order, and
        # each wall time is exactly one instant.
        naive = cron.next_after(local)
        if naive is None:
            return None
        instant = naive.replace(tzinfo=tz).astimezone(UTC)
        if _steady(tz, instant):
            return instant
        return _next_cron_careful(spec, after, instant)
    return _next_cron_careful(spec, after, after)


def _steady(tz: ZoneInfo, instant: datetime) -> bool:
    """No UTC offset change within the DST window around `instant`."""
    return _steady_hour(tz, instant.replace(minute=0, second=0, microsecond=0))


@lru_cache(maxsize=4096)
def _steady_hour(tz: ZoneInfo, hour: datetime) -> bool:
    # Cached by the hour (`list` asks for thousands of tasks at the same `now`);
    # the window is widened by that hour so it still covers the instant's own.
    window = _DST_WINDOW + timedelta(hours=1)
    before = (hour - window).astimezone(tz).utcoffset()
    return before == (hour + window).astimezone(tz).utcoffset()


def _next_cron_careful(spec: ScheduleSpec, after: datetime, near: datetime) -> datetime | None:
    """Near a DST change (the one around `near`) wall order and instant order differ.

    Instead of trying every candidate wall time around it (3-4.5 ms for an
    every-minute cron), the change splits time in two stretches, each with one
    UTC offset: the first match before the change, the gap's shifted slot, and the
    first match after it (leaving out a fall-back's second pass under `first`)
    are three cron look-ups, the earliest of them wins.
    """
    cron = parse_cron(spec.cron or "")
    change, before, after_change = _change_near(spec.tz, near.replace(minute=0, second=0,
                                                                       microsecond=0))
    tiny = timedelta(microseconds=1)
    if after < change:
        naive = cron.next_after(_wall_at(after, before))
        if naive is not None and _instant_at(naive, before) < change:
            return _instant_at(naive, before)
        if after_change > before and spec.gap == "shift":
            # Wall times in the spring-forward gap do not exist; `shift` runs them at the change.
            naive = cron.next_after(_wall_at(change, before) - tiny)
            if naive is not None and naive < _wall_at(change, after_change):
                return change
    start = _wall_at(max(after, change - tiny), after_change)
    if after_change < before and spec.overlap == "first":
        start = max(start, _wall_at(change, before) - tiny)  # not the repeated hour again
    naive = cron.next_after(start)
    if naive is None:
        return None
    found = _instant_at(naive, after_change)
    # Past this horizon _steady no longer sees this change: the ordinary search applies
    # again (a monthly cron; nothing matched between the change and it).
    horizon = change + 2 * (_DST_WINDOW + timedelta(hours=1))
    if found <= horizon:
        return found
    return _next_cron(spec, horizon)


@lru_cache(maxsize=4096)
def _next_calendar(spec: ScheduleSpec, rule: CalendarRule, after: datetime) -> datetime | None:
    """Day by day: the first active day with a cron time whose instant is after `after`.

    Cached: `list` asks for every task at one `now`, and tasks share schedules.
    """
    cron = parse_cron(spec.cron or "")
    local = after.astimezone(spec.tz).replace(tzinfo=None)
    # Start a DST window early: a wall time of the day before can be a later instant.
    day = (local - _DST_WINDOW).date()
    for _ in range(366 * 8):
        if rule.business_day is not None:
            # One candidate a month: go straight to it instead of walking the days.
            target = nth_business_day(rule, day.year, day.month, rule.business_day)
            if target is None or target < day:
                day = _next_month(day)
                continue
            day = target
        if day_active(rule, cron, day):
            best: datetime | None = None
            for hour in cron.hours:
                for minute in cron.minutes:
                    naive = datetime.combine(day, time(hour, minute))
                    if naive < local - _DST_WINDOW:
                        continue
                    for instant in wall_to_instants(naive, spec.tz, spec.gap, spec.overlap):
                        if instant > after and (best is None or instant < best):
                            best = instant
                if best is not None and hour > best.astimezone(spec.tz).hour + 3:
                    break
            if best is not None:
                return best
        day += timedelta(days=1)
    return None


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def calendar_notes(spec: ScheduleSpec, previous: datetime, slot: datetime) -> list[str]:
    """Why a calendar put `slot` where it is: days moved onto it, holidays skipped before it.

    `previous` is the slot (or start) before it, so skipped days are named once.
    """
    if spec.calendar is None or spec.cron is None:
        return []
    cron = parse_cron(spec.cron)
    day = slot.astimezone(spec.tz).date()
    first = previous.astimezone(spec.tz).date() + timedelta(days=1)
    return (skipped_between(spec.calendar, cron, first, day - timedelta(days=1))
            + moves_into(spec.calendar, cron, day))


def calendar_decision(spec: ScheduleSpec, day: date) -> str | None:
    """What the calendar does with `day` (a dry run's --as-of), or None without a calendar."""
    if spec.calendar is None or spec.cron is None:
        return None
    return decision(spec.calendar, parse_cron(spec.cron), day)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None) + _DST_WINDOW


def _wall_at(instant: datetime, offset: timedelta) -> datetime:
    return (instant.astimezone(UTC) + offset).replace(tzinfo=None)


def _instant_at(wall: datetime, offset: timedelta) -> datetime:
    return (wall - offset).replace(tzinfo=UTC)


@lru_cache(maxsize=1024)
def _change_near(tz: ZoneInfo, hour: datetime) -> tuple[datetime, timedelta, timedelta]:
    """The offset change within the window _steady_hour looks at: when, from, to."""
    window = _DST_WINDOW + timedelta(hours=1)
    low, high = hour - window, hour + window
    before, after = low.astimezone(tz).utcoffset(), high.astimezone(tz).utcoffset()
    assert before is not None and after is not None  # a ZoneInfo always has an offset
    return _transition(low, high, tz), before, after


def fire_times(spec: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    """The next `count` slots after `after`."""
    result: list[datetime] = []
    current: datetime | None = after
    while len(result) < count and current is not None:
        current = next_fire(spec, current)
        if current is not None:
            result.append(current)
    return result


def fires_between(spec: ScheduleSpec, after: datetime, until: datetime) -> Iterator[datetime]:
    """Slots in (after, until], oldest first: what a daemon that was down has missed."""
    current = next_fire(spec, after)
    while current is not None and current <= until:
        yield current
        current = next_fire(spec, current)


def jitter_for(task: str, slot: datetime, jitter: timedelta) -> timedelta:
    """A delay in [0, jitter) fixed by task and slot, so a restart keeps the same start time."""
    if jitter <= timedelta(0):
        return timedelta(0)
    digest = hashlib.sha256(f"{task}@{slot.isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=int(jitter.total_seconds() * fraction))


def describe(spec: ScheduleSpec) -> str:
    """The schedule in words, e.g. 'At 09:00, Monday through Friday (Asia/Kolkata)'."""
    if spec.cron is not None:
        text = _describe_cron(spec.cron)
    elif spec.every is not None:
        text = "Every " + _words(spec.every)
    elif spec.at is not None:
        text = "Once at " + spec.at.astimezone(spec.tz).strftime("%Y-%m-%d %H:%M")
    else:
        text = "Never"
    text += f" ({spec.tz.key})"
    if spec.start is not None:
        text += ", from " + spec.start.astimezone(spec.tz).strftime("%Y-%m-%d %H:%M")
    if spec.end is not None:
        text += ", until " + spec.end.astimezone(spec.tz).strftime("%Y-%m-%d %H:%M")
    if spec.calendar is not None:
        text += ", " + _describe_days(spec.calendar)
    if spec.max_runs is not None:
        text += f", at most {spec.max_runs} runs"
    return text


def _describe_days(rule: CalendarRule) -> str:
    if rule.business_day is not None:
        n = rule.business_day
        which = "last" if n == -1 else f"{ordinal(-n)} last" if n < 0 else ordinal(n)
        days = f"on the {which} business day of the month"
    else:
        days = {"skip": "business days only", "next": "closed days move to the next business day",
                "previous": "closed days move to the previous business day"}[rule.on_holiday]
    return f"{days} ({rule.label()})"



def _words(every: timedelta) -> str:
    names = {"w": "week", "d": "day", "h": "hour", "m": "minute", "s": "second"}
    spelled = format_duration(every)
    parts = []
    number = ""
    for char in spelled:
        if char.isdigit():
            number += char
            continue
        parts.append(f"{number} {names[char]}" + ("" if number == "1" else "s"))
        number = ""
    return " ".join(parts)


@lru_cache(maxsize=1024)
def _describe_cron(expression: str) -> str:
    from cron_descriptor import Options, get_description

    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    text: str = get_description(expression, options)
    return text
