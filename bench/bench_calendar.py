"""What a business calendar adds to the schedule math (`list`, `next`, the daemon's trigger).

CPU time (process_time, so a busy machine skews it less): importing `holidays`,
building one country-year of holidays (once per process, then cached), and
`next_fire` per task for 864 distinct calendar schedules against the same
number of plain cron ones, with the calendar result cache cleared.

    .venv/bin/python bench/bench_calendar.py
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any


def main() -> None:
    start = time.process_time()
    import holidays  # noqa: F401 - timing the import is the point

    print(f"import holidays: {(time.process_time() - start) * 1000:.0f} ms CPU")
    from dbcron import calendars
    from dbcron.schedule import ScheduleSpec, _next_calendar, next_fire

    start = time.process_time()
    calendars.public_holidays("GB", "ENG", 2026)
    print(f"first country-year (GB-ENG 2026): {(time.process_time() - start) * 1000:.0f} ms CPU")
    rules: list[dict[str, Any]] = [{"business_day": -1}, {"on_holiday": "next"}, {}]
    calendar = [
        ScheduleSpec.from_dict({"cron": f"{m} {h} * * *", **rule,
                                "calendar": {"country": "GB", "subdivision": "ENG"}})
        for m in range(0, 60, 5) for h in range(24) for rule in rules
    ]
    plain = [ScheduleSpec.from_dict({"cron": f"{m} {h} * * *"})
             for m in range(0, 60, 5) for h in range(24) for _ in rules]
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    for name, specs in (("calendar", calendar), ("plain cron", plain)):
        _next_calendar.cache_clear()
        start = time.process_time()
        for i in range(3):
            for spec in specs:
                next_fire(spec, now + timedelta(seconds=i))
        per = (time.process_time() - start) / (3 * len(specs)) * 1e6
        print(f"next_fire, {name}: {per:.1f} µs CPU each (uncached)")


if __name__ == "__main__":
    main()
