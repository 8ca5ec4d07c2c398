"""Cost of one next-fire computation near a DST change against a normal day (issue 9).

    .venv/bin/python bench/bench_schedule.py [--json FILE]

For an every-minute cron (the worst case: a candidate every minute) and an hourly
one, in Europe/London and America/New_York: the mean cost of `next_fire` over the
hour before and the hour after each change (spring forward, fall back), each
minute of it a start point, against the same hours a week earlier. Goal: within
3x of a normal day. Caches are cleared before each case, so what is measured is a
fresh computation per start point except for the per-hour zone checks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dbcron import schedule
from dbcron.schedule import ScheduleSpec, next_fire

CHANGES = {
    "Europe/London": [datetime(2025, 3, 30, 1, tzinfo=UTC), datetime(2025, 10, 26, 1, tzinfo=UTC)],
    "America/New_York": [datetime(2025, 3, 9, 7, tzinfo=UTC),
                         datetime(2025, 11, 2, 6, tzinfo=UTC)],
}


def per_call(spec: ScheduleSpec, around: datetime, rounds: int = 5) -> float:
    """Mean µs per next_fire over the two hours around `around`, one start a minute."""
    starts = [around + timedelta(minutes=m, seconds=7) for m in range(-60, 60)]
    best = float("inf")
    for _ in range(rounds):
        schedule._steady_hour.cache_clear()
        schedule._change_near.cache_clear()
        began = time.perf_counter()
        for start in starts:
            next_fire(spec, start)
        best = min(best, (time.perf_counter() - began) / len(starts) * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for zone, changes in CHANGES.items():
        for cron in ("* * * * *", "0 * * * *"):
            spec = ScheduleSpec.from_dict({"cron": cron, "timezone": zone}, "UTC")
            for change in changes:
                near = per_call(spec, change)
                normal = per_call(spec, change - timedelta(days=7))
                rows.append({"zone": zone, "cron": cron, "change": change.isoformat(),
                             "normal_us": round(normal, 1), "near_us": round(near, 1),
                             "ratio": round(near / normal, 2)})
                print(f"{zone:17} {cron:10} {change:%Y-%m-%d %H:%M}Z  normal {normal:6.1f} µs"
                      f"  near {near:6.1f} µs  x{near / normal:.2f}")
    print(f"worst ratio x{max(r['ratio'] for r in rows):.2f}, "
          f"median x{statistics.median(r['ratio'] for r in rows):.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
