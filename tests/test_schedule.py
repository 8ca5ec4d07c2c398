"""Schedule math: a table of DST transitions, month ends and leap days; all pure."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dbcron.cron import CronError, parse_cron
from dbcron.schedule import ScheduleSpec, describe, fire_times, fires_between, jitter_for

NY, LON = "America/New_York", "Europe/London"

# (cron or every, zone, gap, overlap, start (wall time in zone, or with offset), expected)
DST_TABLE = [
    # New York, spring forward 2025-03-09 02:00 EST -> 03:00 EDT
    ("30 2 * * *", NY, "shift", "first", "2025-03-08T12:00",
     ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"]),
    ("30 2 * * *", NY, "skip", "first", "2025-03-08T12:00",
     ["2025-03-10T02:30:00-04:00", "2025-03-11T02:30:00-04:00"]),
    ("30 1 * * *", NY, "shift", "first", "2025-03-08T12:00",
     ["2025-03-09T01:30:00-05:00", "2025-03-10T01:30:00-04:00"]),
    ("0 * * * *", NY, "shift", "first", "2025-03-09T00:30",
     ["2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"]),
    ("0 * * * *", NY, "skip", "first", "2025-03-09T00:30",
     ["2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"]),
    ("*/15 * * * *", NY, "shift", "first", "2025-03-09T01:30",
     ["2025-03-09T01:45:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T03:15:00-04:00"]),
    ("*/15 * * * *", NY, "skip", "first", "2025-03-09T01:30",
     ["2025-03-09T01:45:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T03:15:00-04:00"]),
    # New York, fall back 2025-11-02 02:00 EDT -> 01:00 EST
    ("30 1 * * *", NY, "shift", "first", "2025-11-01T12:00",
     ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]),
    ("30 1 * * *", NY, "shift", "both", "2025-11-01T12:00",
     ["2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00", "2025-11-03T01:30:00-05:00"]),
    ("30 2 * * *", NY, "shift", "first", "2025-11-01T12:00",
     ["2025-11-02T02:30:00-05:00", "2025-11-03T02:30:00-05:00"]),
    ("0 * * * *", NY, "shift", "first", "2025-11-02T00:30",
     ["2025-11-02T01:00:00-04:00", "2025-11-02T02:00:00-05:00", "2025-11-02T03:00:00-05:00"]),
    ("0 * * * *", NY, "shift", "both", "2025-11-02T00:30",
     ["2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00", "2025-11-02T02:00:00-05:00"]),
    ("*/15 * * * *", NY, "shift", "first", "2025-11-02T01:30-04:00",
     ["2025-11-02T01:45:00-04:00", "2025-11-02T02:00:00-05:00", "2025-11-02T02:15:00-05:00"]),
    ("*/15 * * * *", NY, "shift", "both", "2025-11-02T01:30-04:00",
     ["2025-11-02T01:45:00-04:00", "2025-11-02T01:00:00-05:00", "2025-11-02T01:15:00-05:00"]),
    # London, spring forward 2025-03-30 01:00 GMT -> 02:00 BST
    ("30 1 * * *", LON, "shift", "first", "2025-03-29T12:00",
     ["2025-03-30T02:00:00+01:00", "2025-03-31T01:30:00+01:00"]),
    ("30 1 * * *", LON, "skip", "first", "2025-03-29T12:00",
     ["2025-03-31T01:30:00+01:00", "2025-04-01T01:30:00+01:00"]),
    ("30 2 * * *", LON, "shift", "first", "2025-03-29T12:00",
     ["2025-03-30T02:30:00+01:00", "2025-03-31T02:30:00+01:00"]),
    ("0 * * * *", LON, "shift", "first", "2025-03-30T00:30",
     ["2025-03-30T02:00:00+01:00", "2025-03-30T03:00:00+01:00"]),
    ("*/15 * * * *", LON, "shift", "first", "2025-03-30T00:30",
     ["2025-03-30T00:45:00+00:00", "2025-03-30T02:00:00+01:00", "2025-03-30T02:15:00+01:00"]),
    # London, fall back 2025-10-26 02:00 BST -> 01:00 GMT
    ("30 1 * * *", LON, "shift", "first", "2025-10-25T12:00",
     ["2025-10-26T01:30:00+01:00", "2025-10-27T01:30:00+00:00"]),
    ("30 1 * * *", LON, "shift", "both", "2025-10-25T12:00",
     ["2025-10-26T01:30:00+01:00", "2025-10-26T01:30:00+00:00", "2025-10-27T01:30:00+00:00"]),
    ("30 2 * * *", LON, "shift", "first", "2025-10-25T12:00",
     ["2025-10-26T02:30:00+00:00", "2025-10-27T02:30:00+00:00"]),
    ("0 * * * *", LON, "shift", "first", "2025-10-26T00:30",
     ["2025-10-26T01:00:00+01:00", "2025-10-26T02:00:00+00:00"]),
    ("0 * * * *", LON, "shift", "both", "2025-10-26T00:30",
     ["2025-10-26T01:00:00+01:00", "2025-10-26T01:00:00+00:00", "2025-10-26T02:00:00+00:00"]),
    ("*/15 * * * *", LON, "shift", "both", "2025-10-26T01:30+01:00",
     ["2025-10-26T01:45:00+01:00", "2025-10-26T01:00:00+00:00", "2025-10-26T01:15:00+00:00"]),
    # Month ends and 29 February
    ("0 9 31 * *", "UTC", "shift", "first", "2025-01-31T10:00",
     ["2025-03-31T09:00:00+00:00", "2025-05-31T09:00:00+00:00", "2025-07-31T09:00:00+00:00"]),
    ("0 0 29 2 *", "UTC", "shift", "first", "2025-01-01T00:00",
     ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]),
    # 29 February on a Sunday: 28 years apart, past any short search horizon (issue 9)
    ("0 0 29 2 */7", "UTC", "shift", "first", "2026-12-03T00:00",
     ["2032-02-29T00:00:00+00:00", "2060-02-29T00:00:00+00:00", "2088-02-29T00:00:00+00:00"]),
    ("0 0 1 * *", "UTC", "shift", "first", "2024-02-29T12:00",
     ["2024-03-01T00:00:00+00:00", "2024-04-01T00:00:00+00:00"]),
    ("0 12 28-31 2 *", "UTC", "shift", "first", "2024-02-27T00:00",
     ["2024-02-28T12:00:00+00:00", "2024-02-29T12:00:00+00:00", "2025-02-28T12:00:00+00:00"]),
    ("0 9 * * mon-fri", "Asia/Kolkata", "shift", "first", "2026-11-20T10:00",
     ["2026-11-23T09:00:00+05:30", "2026-11-24T09:00:00+05:30"]),
]


def _start(text: str, zone: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(("cron", "zone", "gap", "overlap", "start", "expected"), DST_TABLE)
def test_dst_table(cron: str, zone: str, gap: str, overlap: str, start: str,
                   expected: list[str]) -> None:
    spec = ScheduleSpec.from_dict(
        {"cron": cron, "timezone": zone, "dst": {"gap": gap, "overlap": overlap}}
    )
    times = fire_times(spec, _start(start, zone), len(expected))
    assert [t.astimezone(ZoneInfo(zone)).isoformat() for t in times] == expected


@pytest.mark.parametrize(
    ("every", "zone", "start", "expected"),
    [
        # Intervals count elapsed time: across the NY gap the wall clock jumps.
        ("1h", NY, "2025-03-09T00:30",
         ["2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"]),
        ("1h", NY, "2025-11-02T00:30",
         ["2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00", "2025-11-02T02:00:00-05:00"]),
        ("15m", LON, "2025-03-30T00:40",
         ["2025-03-30T00:45:00+00:00", "2025-03-30T02:00:00+01:00", "2025-03-30T02:15:00+01:00"]),
    ],
)
def test_intervals_count_real_time(every: str, zone: str, start: str, expected: list[str]) -> None:
    spec = ScheduleSpec.from_dict({"every": every, "timezone": zone})
    times = fire_times(spec, _start(start, zone), len(expected))
    assert [t.astimezone(ZoneInfo(zone)).isoformat() for t in times] == expected


def test_interval_anchored_at_start() -> None:
    spec = ScheduleSpec.from_dict({"every": "90m", "start": "2026-01-01T08:10:00+00:00"})
    before = datetime.fromisoformat("2025-12-31T00:00:00+00:00")
    assert [t.isoformat() for t in fire_times(spec, before, 2)] == [
        "2026-01-01T08:10:00+00:00", "2026-01-01T09:40:00+00:00"
    ]


def test_one_off_at_fires_once_in_its_zone() -> None:
    spec = ScheduleSpec.from_dict({"at": "2026-12-01T09:00", "timezone": "Asia/Kolkata"})
    after = datetime.fromisoformat("2026-11-01T00:00:00+00:00")
    assert [t.isoformat() for t in fire_times(spec, after, 3)] == ["2026-12-01T03:30:00+00:00"]


def test_window_bounds_fires() -> None:
    spec = ScheduleSpec.from_dict(
        {"cron": "0 12 * * *", "start": "2026-01-05T00:00", "end": "2026-01-07T23:00"}
    )
    after = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    assert [t.day for t in fire_times(spec, after, 10)] == [5, 6, 7]


def test_fires_between_lists_missed_slots_oldest_first() -> None:
    spec = ScheduleSpec.from_dict({"every": "10m"})
    start = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    until = datetime.fromisoformat("2026-01-01T00:35:00+00:00")
    assert [t.minute for t in fires_between(spec, start, until)] == [10, 20, 30]


def test_jitter_is_stable_and_bounded() -> None:
    from datetime import timedelta

    slot = datetime.fromisoformat("2026-01-01T09:00:00+00:00")
    first = jitter_for("a", slot, timedelta(minutes=5))
    assert first == jitter_for("a", slot, timedelta(minutes=5))
    assert timedelta(0) <= first < timedelta(minutes=5)
    assert jitter_for("a", slot, timedelta(0)) == timedelta(0)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"cron": "0 9 * * mon-fri", "timezone": "Asia/Kolkata"},
         "At 09:00, Monday through Friday (Asia/Kolkata)"),
        ({"cron": "*/15 * * * *"}, "Every 15 minutes (UTC)"),
        ({"every": "90m"}, "Every 1 hour 30 minutes (UTC)"),
        ({"at": "2026-12-01T09:00", "timezone": "Europe/London"},
         "Once at 2026-12-01 09:00 (Europe/London)"),
        ({"every": "1d", "max_runs": 3}, "Every 1 day (UTC), at most 3 runs"),
    ],
)
def test_describe(data: dict[str, object], text: str) -> None:
    assert describe(ScheduleSpec.from_dict(data)) == text


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 9 * *", "'0 9 * *' has 4 fields; expected five fields"),
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("0 25 * * *", "hour: 25 is out of range 0-23"),
        ("0 9 * * funday", "day of week: 'funday' is not a number in 0-7"),
        ("*/0 * * * *", "minute: step '0' must be a positive number"),
        ("0 9 5-1 * *", "day of month: range '5-1' runs backwards"),
        ("0 0 30 2 *", "'0 0 30 2 *' names a day that no month in it has"),
    ],
)
def test_bad_cron_says_which_field(expression: str, message: str) -> None:
    with pytest.raises(CronError) as info:
        parse_cron(expression)
    assert str(info.value).startswith(message)


def test_cron_day_of_month_or_day_of_week() -> None:
    # Vixie cron: both restricted means either matches (the 13th, or any Friday).
    spec = ScheduleSpec.from_dict({"cron": "0 0 13 * fri"})
    after = datetime.fromisoformat("2026-02-01T00:00:00+00:00")
    assert [t.day for t in fire_times(spec, after, 4)] == [6, 13, 20, 27]


def test_sunday_is_0_and_7_and_macros() -> None:
    after = datetime.fromisoformat("2026-11-22T12:00:00+00:00")  # a Sunday
    for expression in ("0 9 * * 0", "0 9 * * 7", "0 9 * * sun", "@weekly"):
        spec = ScheduleSpec.from_dict({"cron": expression})
        assert fire_times(spec, after, 1)[0].weekday() == 6
