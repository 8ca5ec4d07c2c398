"""What to do with slots that passed while no daemon was running: pure, `now` given.

`none` records them as missed; `latest` runs the newest one still within grace;
`all` runs each one within grace, oldest first, at most 100 per task. Slots
past grace are recorded as missed, the newest 100 of them; older ones are only
counted (a week's downtime of an every-minute task is not 10,000 rows).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

MAX_RUNS = 100
MAX_MISSED_ROWS = 100


@dataclass
class CatchupPlan:
    run: list[datetime] = field(default_factory=list)
    missed: list[datetime] = field(default_factory=list)
    uncounted: int = 0  # missed slots too old to get a row of their own


def plan_catchup(
    slots: Iterable[datetime], policy: str, grace: timedelta, now: datetime
) -> CatchupPlan:
    """Split past slots (oldest first) into those to run now and those missed."""
    recent: deque[datetime] = deque(maxlen=MAX_RUNS + MAX_MISSED_ROWS)
    total = 0
    for slot in slots:
        recent.append(slot)
        total += 1
    plan = CatchupPlan()
    within = [s for s in recent if now - s <= grace]
    if policy == "latest" and within:
        plan.run = within[-1:]
    elif policy == "all":
        plan.run = within[-MAX_RUNS:]
    chosen = set(plan.run)
    missed = [s for s in recent if s not in chosen]
    plan.missed = missed[-MAX_MISSED_ROWS:]
    plan.uncounted = total - len(plan.run) - len(plan.missed)
    return plan


def too_late(slot: datetime, now: datetime, grace: timedelta) -> bool:
    return now - slot > grace
