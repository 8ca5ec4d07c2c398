"""dbcron's schedule module as an APScheduler 3.x trigger, and a pass-through executor.

APScheduler is only the in-process timer: the trigger asks `schedule.next_fire`
(the same function `manage-tasks next` prints), and the executor hands every
due slot straight to the daemon, which claims, runs and records it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.triggers.base import BaseTrigger

from dbcron.schedule import ScheduleSpec, next_fire


class SlotTrigger(BaseTrigger):  # type: ignore[misc]
    def __init__(self, spec: ScheduleSpec) -> None:
        self.spec = spec

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # The daemon passes the first fire time itself (right after the catch-up
        # horizon), so APScheduler only asks with a previous fire time.
        return next_fire(self.spec, previous_fire_time or now)

    def __str__(self) -> str:
        return f"dbcron schedule ({self.spec.tz.key})"


class SlotExecutor(BaseExecutor):  # type: ignore[misc]
    """Calls the job's function with the due slots at once, in the scheduler's thread.

    The function only queues them, so it returns in microseconds; there is no
    per-job instance counting because overlap is the daemon's policy, not
    APScheduler's.
    """

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        job.func(*job.args, run_times)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        self.submit_job(job, run_times)
