"""The DST table through the daemon's APScheduler job, and the catch-up plan; clocks injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from dbcron.daemon.catchup import plan_catchup
from dbcron.daemon.scheduler import SlotExecutor, SlotTrigger
from dbcron.schedule import ScheduleSpec, next_fire
from test_schedule import DST_TABLE, _start


@pytest.mark.parametrize(("cron", "zone", "gap", "overlap", "start", "expected"), DST_TABLE)
def test_dst_table_through_the_daemons_job(cron: str, zone: str, gap: str, overlap: str,
                                           start: str, expected: list[str]) -> None:
    """What APScheduler hands the executor when its clock reads `until`: the same slots."""
    spec = ScheduleSpec.from_dict(
        {"cron": cron, "timezone": zone, "dst": {"gap": gap, "overlap": overlap}}
    )
    begin = _start(start, zone)
    received: list[datetime] = []
    scheduler = BackgroundScheduler(executors={"default": SlotExecutor()}, timezone=UTC)

    def fire(name: str, slots: list[datetime] | None = None) -> None:
        received.extend(slots or [])

    job = scheduler.add_job(fire, SlotTrigger(spec), args=["t"], id="t",
                            next_run_time=next_fire(spec, begin))
    until = datetime.fromisoformat(expected[-1])
    run_times = job._get_run_times(until)  # the scheduler's own catch-up of due times
    SlotExecutor().submit_job(job, run_times)
    assert [t.astimezone(ZoneInfo(zone)).isoformat() for t in received] == expected


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def slots(count: int, every: timedelta) -> list[datetime]:
    return [NOW - every * i for i in range(count, 0, -1)]


@pytest.mark.parametrize(
    ("policy", "count", "every", "grace", "run", "missed", "uncounted"),
    [
        ("none", 3, timedelta(minutes=10), timedelta(hours=1), 0, 3, 0),
        ("latest", 3, timedelta(minutes=10), timedelta(hours=1), 1, 2, 0),
        ("latest", 3, timedelta(hours=2), timedelta(hours=1), 0, 3, 0),
        ("all", 3, timedelta(minutes=10), timedelta(hours=1), 3, 0, 0),
        ("all", 5, timedelta(minutes=20), timedelta(hours=1), 3, 2, 0),
        ("all", 500, timedelta(seconds=1), timedelta(hours=1), 100, 100, 300),
        ("none", 10_000, timedelta(minutes=1), timedelta(hours=1), 0, 100, 9_900),
        ("latest", 0, timedelta(minutes=1), timedelta(hours=1), 0, 0, 0),
    ],
)
def test_catchup_plan(policy: str, count: int, every: timedelta, grace: timedelta, run: int,
                      missed: int, uncounted: int) -> None:
    plan = plan_catchup(slots(count, every), policy, grace, NOW)
    assert (len(plan.run), len(plan.missed), plan.uncounted) == (run, missed, uncounted)
    assert plan.run == sorted(plan.run) and not set(plan.run) & set(plan.missed)
    if plan.run:
        assert plan.run[-1] == NOW - every  # the newest slot is always among those run
