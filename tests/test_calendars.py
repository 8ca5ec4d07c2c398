"""Business calendars: the pure day math as tables, validation, and what next/show/dry run say."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli, write_task
from dbcron.calendars import CalendarRule, closed_reason, nth_business_day
from dbcron.errors import InvalidTask
from dbcron.schedule import ScheduleSpec, calendar_decision, calendar_notes, fire_times
from dbcron.validation import parse_task

ENG = {"country": "GB", "subdivision": "ENG"}


def spec(**schedule: Any) -> ScheduleSpec:
    return ScheduleSpec.from_dict({"timezone": "Europe/London", **schedule})


def days(s: ScheduleSpec, after: str, count: int) -> list[str]:
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    return [t.astimezone(s.tz).strftime("%Y-%m-%d %H:%M") for t in fire_times(s, start, count)]


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        # Last business day: 31 Aug 2026 is the Late Summer Bank Holiday (a Monday).
        ({"cron": "0 18 * * *", "calendar": ENG, "business_day": -1}, "2026-08-01",
         ["2026-08-28 18:00", "2026-09-30 18:00", "2026-10-30 18:00"]),
        # First business day: 1 Jan is a holiday, 3-4 Jan 2027 a weekend.
        ({"cron": "30 7 * * *", "calendar": ENG, "business_day": 1}, "2026-12-15",
         ["2027-01-04 07:30", "2027-02-01 07:30"]),
        # Second last, in March only (the cron's month field still restricts).
        ({"cron": "0 9 * 3 *", "calendar": ENG, "business_day": -2}, "2026-01-01",
         ["2026-03-30 09:00", "2027-03-30 09:00"]),
        # Skip: Christmas Day and Boxing Day (observed, Monday 28th) drop out.
        ({"cron": "0 9 * * mon-fri", "calendar": ENG}, "2026-12-24",
         ["2026-12-24 09:00", "2026-12-29 09:00"]),
        ({"cron": "0 9 * * *", "calendar": ENG, "business_days": "all"}, "2026-12-24",
         ["2026-12-24 09:00", "2026-12-29 09:00"]),
        # Next: Friday 25th moves to Tuesday 29th, and so does Monday 28th: one slot.
        ({"cron": "0 9 * * mon-fri", "calendar": ENG, "on_holiday": "next"}, "2026-12-24",
         ["2026-12-24 09:00", "2026-12-29 09:00", "2026-12-30 09:00"]),
        # Previous: a monthly run on the 1st (a Friday holiday) moves to 31 Dec.
        ({"cron": "0 6 1 * *", "calendar": ENG, "on_holiday": "previous"}, "2026-12-02",
         ["2026-12-31 06:00", "2027-02-01 06:00"]),
        # A weekly Monday run on a Monday holiday moves to the Tuesday.
        ({"cron": "0 9 * * mon", "calendar": ENG, "on_holiday": "next"}, "2026-08-25",
         ["2026-09-01 09:00", "2026-09-07 09:00"]),
        # Listed closures and a Friday-Saturday weekend, without a country.
        ({"cron": "0 9 * * *",
          "calendar": {"holidays": ["2026-12-24"], "weekend": ["fri", "sat"]}},
         "2026-12-23T12:00", ["2026-12-27 09:00", "2026-12-28 09:00"]),
        # Several times a day: each runs on the open days only.
        ({"cron": "0 9,15 * * *", "calendar": ENG}, "2026-12-24T10:00",
         ["2026-12-24 15:00", "2026-12-29 09:00", "2026-12-29 15:00"]),
    ],
)
def test_calendar_fire_times(schedule: dict[str, Any], after: str, expected: list[str]) -> None:
    assert days(spec(**schedule), after, len(expected)) == expected


def test_calendar_slot_across_spring_forward_keeps_dst_policy() -> None:
    # 29 Mar 2026 is the UK spring-forward Sunday; with a weekend of Monday only it is open.
    s = spec(cron="30 1 * * *", calendar={"weekend": ["mon"]}, dst={"gap": "skip"})
    assert days(s, "2026-03-28T12:00", 2) == ["2026-03-31 01:30", "2026-04-01 01:30"]


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        ("2026-12-25", "Christmas Day"),
        ("2026-12-28", "Boxing Day (observed)"),
        ("2026-12-27", "a Sunday"),
        ("2026-12-24", "a listed holiday"),
        ("2026-12-23", None),
    ],
)
def test_closed_reason(day: str, reason: str | None) -> None:
    rule = CalendarRule(country="GB", subdivision="ENG", holidays=frozenset({date(2026, 12, 24)}))
    assert closed_reason(rule, date.fromisoformat(day)) == reason


def test_scotland_has_its_own_holidays() -> None:
    rule = CalendarRule(country="GB", subdivision="SCT")
    assert closed_reason(rule, date(2027, 1, 4)) == "New Year Holiday (observed)"
    assert nth_business_day(rule, 2027, 1, 1) == date(2027, 1, 5)
    assert nth_business_day(rule, 2027, 1, 30) is None


def test_notes_say_why_a_date_moved_or_was_skipped() -> None:
    moved = spec(cron="0 9 * * mon-fri", calendar=ENG, on_holiday="next")
    start = datetime(2026, 12, 24, 10, tzinfo=UTC)
    (slot,) = fire_times(moved, start, 1)
    assert calendar_notes(moved, start, slot) == [
        "2026-12-25 is Christmas Day: moved to 2026-12-29",
        "2026-12-28 is Boxing Day (observed): moved to 2026-12-29",
    ]
    skipped = spec(cron="0 9 * * *", calendar=ENG)
    (slot,) = fire_times(skipped, start, 1)
    # Weekends are what a business-day schedule is for: not worth a note.
    assert calendar_notes(skipped, start, slot) == [
        "2026-12-25 is Christmas Day: skipped", "2026-12-28 is Boxing Day (observed): skipped",
    ]
    last = spec(cron="0 18 * * *", calendar=ENG, business_day=-1)
    start = datetime(2026, 8, 1, tzinfo=UTC)
    (slot,) = fire_times(last, start, 1)
    assert calendar_notes(last, start, slot) == [
        "2026-08-31 is Late Summer Bank Holiday: not a business day"
    ]
    assert calendar_decision(last, date(2026, 8, 31)) == (
        "2026-08-31 is Late Summer Bank Holiday; "
        "the last business day of August 2026 is 2026-08-28"
    )
    assert calendar_decision(moved, date(2026, 12, 25)) == (
        "2026-12-25 is Christmas Day: moved to 2026-12-29"
    )


BASE: dict[str, Any] = {"name": "month-end", "kind": "call", "call": "tests.jobs:succeed"}


def problems(schedule: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidTask) as info:
        parse_task({**BASE, "schedule": schedule}, "tasks/x.yaml")
    return info.value.problems


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"cron": "0 9 * * *", "calendar": {"country": "XX"}},
         "schedule.calendar.country: unknown country 'XX': use an ISO 3166 code the holidays "
         "library knows, e.g. GB, US, DE, FR, IN"),
        ({"cron": "0 9 * * *", "calendar": {"country": "GB", "subdivision": "XYZ"}},
         "schedule.calendar: unknown subdivision 'XYZ' of GB: valid: ENG, NIR, SCT, WLS"),
        ({"cron": "0 9 * * *", "calendar": {"subdivision": "ENG"}},
         "schedule.calendar: subdivision needs a country (e.g. country: GB, subdivision: ENG)"),
        ({"cron": "0 9 * * *", "calendar": {"weekend": ["sat", "sunday"]}},
         "schedule.calendar.weekend.1: Input should be 'mon', 'tue', 'wed', 'thu', 'fri', "
         "'sat' or 'sun' (got 'sunday')"),
        ({"cron": "0 9 * * *", "calendar": {"holidays": ["2026-13-01"]}},
         "schedule.calendar.holidays.0: Input should be a valid date or datetime, month value "
         "is outside expected range of 1-12 (got '2026-13-01')"),
        ({"cron": "0 9 * * *", "calendar": {"weekend": ["mon", "tue", "wed", "thu", "fri",
                                                        "sat", "sun"]}},
         "schedule.calendar.weekend: a weekend of all seven days leaves no business day"),
        ({"cron": "0 9 * * *", "calendar": {"contry": "GB"}},
         "schedule.calendar.contry: unknown field 'contry'; did you mean 'country'? "
         "valid fields: country, subdivision, holidays, weekend"),
        ({"cron": "0 9 * * *", "business_day": -1},
         "schedule: business_day needs a calendar, e.g. calendar: {country: GB} "
         "(calendar: {} means weekends only)"),
        ({"every": "1h", "calendar": ENG},
         "schedule: a calendar works with cron (it picks days; cron gives the time), "
         "e.g. cron: '0 9 * * *'"),
        ({"cron": "0 9 * * *", "calendar": ENG, "business_day": 0},
         "schedule.business_day: count from 1 (the first business day) or from -1 (the last)"),
        ({"cron": "0 9 * * *", "calendar": ENG, "business_day": 24},
         "schedule.business_day: Input should be less than or equal to 23 (got 24)"),
        ({"cron": "0 9 1 * *", "calendar": ENG, "business_day": 1},
         "schedule: business_day picks the days: write the cron's day-of-month and "
         "day-of-week as * (e.g. '0 9 * * *'), got '0 9 1 * *'"),
        ({"cron": "0 9 * * *", "calendar": ENG, "business_day": 1, "on_holiday": "next"},
         "schedule: on_holiday does not apply with business_day: the Nth business day is "
         "never a holiday"),
        ({"cron": "0 9 * * *", "calendar": ENG, "on_holiday": "later"},
         "schedule.on_holiday: Input should be 'skip', 'next' or 'previous' (got 'later')"),
        ({"cron": "0 9 * * *", "calendar": ENG, "business_days": "some"},
         "schedule.business_days: Input should be 'all' (got 'some')"),
    ],
)
def test_bad_calendars_are_named_with_what_is_valid(schedule: dict[str, Any],
                                                     expected: str) -> None:
    (problem,) = problems(schedule)
    assert problem.startswith(f"tasks/x.yaml: task 'month-end': {expected}"), problem


def test_calendar_round_trips_through_the_stored_form() -> None:
    task = parse_task({**BASE, "schedule": {
        "cron": "0 18 * * *", "business_day": -1,
        "calendar": {"country": "gb", "subdivision": "ENG",
                     "holidays": [date(2026, 12, 31), "2026-12-24", "2026-12-24"]}}}, "x")
    stored = task.to_data()["schedule"]
    assert stored["calendar"] == {"country": "GB", "subdivision": "ENG",
                                  "holidays": ["2026-12-24", "2026-12-31"]}
    rule = ScheduleSpec.from_dict(stored).calendar
    assert rule is not None and rule.weekend == frozenset({5, 6})


def calendar_task(tmp_path: Path) -> Path:
    return write_task(tmp_path / "t", "month-end", schedule={
        "cron": "0 18 * * *", "timezone": "Europe/London", "business_day": -1,
        "calendar": ENG})


def test_next_and_show_explain_the_calendar(run_cli: Cli, tmp_path: Path) -> None:
    assert run_cli("apply", str(calendar_task(tmp_path))).exit_code == 0
    result = run_cli("next", "month-end", "-n", "2", "--from", "2026-08-01T00:00")
    assert result.exit_code == 0
    assert result.output == (
        "2026-08-28T18:00:00+01:00\n"
        "  2026-08-31 is Late Summer Bank Holiday: not a business day\n"
        "2026-09-30T18:00:00+01:00\n"
    )
    result = run_cli("next", "month-end", "-n", "1", "--from", "2026-08-01T00:00", "--json")
    assert json.loads(result.output) == ["2026-08-28T17:00:00+00:00"]

    moved = write_task(tmp_path / "u", "weekdays", schedule={
        "cron": "0 9 * * mon-fri", "timezone": "Europe/London", "on_holiday": "next",
        "calendar": ENG})
    run_cli("apply", str(moved))
    result = run_cli("next", "weekdays", "-n", "2", "--from", "2026-12-24T10:00")
    assert result.output == (
        "2026-12-29T09:00:00+00:00\n"
        "  2026-12-25 is Christmas Day: moved to 2026-12-29\n"
        "  2026-12-28 is Boxing Day (observed): moved to 2026-12-29\n"
        "2026-12-30T09:00:00+00:00\n"
    )
    result = run_cli("show", "month-end")
    assert result.exit_code == 0
    assert ("# At 18:00 (Europe/London), on the last business day of the month "
            "(GB-ENG holidays, weekend sat+sun)\n") in result.output
    data = json.loads(run_cli("show", "month-end", "--json").output)
    assert data["schedule"]["calendar"] == ENG and "calendar_notes" in data


def test_dry_run_as_of_explains_the_calendar(run_cli: Cli, tmp_path: Path) -> None:
    run_cli("apply", str(calendar_task(tmp_path)))
    result = run_cli("run", "month-end", "--dry-run", "--as-of", "2026-08-31")
    assert result.exit_code == 1
    assert result.output == (
        "Error: month-end has no run on 2026-08-31 (Monday) (At 18:00 (Europe/London), on the "
        "last business day of the month (GB-ENG holidays, weekend sat+sun)): 2026-08-31 is "
        "Late Summer Bank Holiday; the last business day of August 2026 is 2026-08-28; pick a "
        "date it runs on, or leave out --as-of to preview as of now\n"
    )
    result = run_cli("run", "month-end", "--dry-run", "--as-of", "2026-08-28")
    assert result.exit_code == 0
    assert result.output.startswith(
        "calendar: the last business day of August 2026 is 2026-08-28; 2026-08-31 is Late "
        "Summer Bank Holiday: not a business day\n"), result.output


def test_bad_calendar_at_apply_names_the_file_and_changes_nothing(run_cli: Cli,
                                                                   tmp_path: Path) -> None:
    path = write_task(tmp_path / "t", "month-end", schedule={
        "cron": "0 18 * * *", "business_day": -1, "calendar": {"country": "ZZ"}})
    result = run_cli("apply", str(path))
    assert result.exit_code == 1
    assert f"{path}: task 'month-end': schedule.calendar.country: unknown country 'ZZ'" in (
        result.output)
    assert not (tmp_path / "state" / "dbcron.db").exists()


def test_a_calendar_file_is_shared_by_tasks_and_stored_inline(run_cli: Cli,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    (folder / "calendars").mkdir(parents=True)
    (folder / "calendars" / "uk-office.yaml").write_text(
        "country: GB\nsubdivision: ENG\nholidays: [2026-12-24]\n")
    for name in ("a", "b"):
        write_task(folder, name, schedule={"cron": "0 9 * * *", "calendar": "uk-office"})
    result = run_cli("apply", str(folder))
    assert result.exit_code == 0, result.output
    data = json.loads(run_cli("show", "b", "--json").output)
    assert data["schedule"]["calendar"] == {**ENG, "holidays": ["2026-12-24"]}
    assert run_cli("next", "a", "-n", "1", "--from", "2026-12-23T10:00Z").output == (
        "2026-12-29T09:00:00+00:00\n"
        "  2026-12-24 is a listed holiday: skipped\n"
        "  2026-12-25 is Christmas Day: skipped\n"
        "  2026-12-28 is Boxing Day (observed): skipped\n")

    write_task(folder, "c", schedule={"cron": "0 9 * * *", "calendar": "us-office"})
    result = run_cli("apply", str(folder))
    assert result.exit_code == 1
    assert result.output == (f"Error: {folder / 'c.yaml'}: schedule.calendar: no calendar "
                             f"file us-office.yaml in {folder / 'calendars'}\n")
