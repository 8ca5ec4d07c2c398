"""Ready signals: "the data for this task and business date is loaded", sent by an ETL.

A run whose gate says `signal: true` waits until a signal for its slot's date
is here. Every signal is a row of its own (who sent it, when), so a repeated
signal is harmless and the history says who opened a gate. The daemon asks,
every tick while runs wait for one, which of their (task, date) pairs have a
signal (`present`): ids are no cursor, since they neither commit in order
(PostgreSQL sequences, concurrent writers) nor stay unique over time (SQLite
reuses the highest ids once `forget` deleted them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, insert, select

from dbcron.store.database import Database
from dbcron.store.tables import ready_signals


@dataclass(frozen=True)
class SignalRow:
    id: int
    task: str
    business_date: date
    received_at: datetime
    sender: str


class SignalRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, task: str, day: date, now: datetime, sender: str) -> SignalRow:
        with self.db.write() as conn:
            new_id = conn.execute(insert(ready_signals).values(
                task=task, business_date=day, received_at=now, sender=sender,
            )).inserted_primary_key
        assert new_id is not None
        return SignalRow(int(new_id[0]), task, day, now, sender)

    def first(self, task: str, day: date) -> SignalRow | None:
        """The first signal received for the task and date, or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(ready_signals.c.id, ready_signals.c.task, ready_signals.c.business_date,
                       ready_signals.c.received_at, ready_signals.c.sender)
                .where(ready_signals.c.task == task, ready_signals.c.business_date == day)
                .order_by(ready_signals.c.id).limit(1)
            ).first()
        return SignalRow(*row) if row else None

    def present(self, pairs: set[tuple[str, date]]) -> set[tuple[str, date]]:
        """Which of these (task, business date) pairs have a signal."""
        tasks = sorted({task for task, _ in pairs})
        days = sorted({day for _, day in pairs})
        found: set[tuple[str, date]] = set()
        with self.db.read() as conn:
            # Chunked: SQLite limits bound parameters per statement (one query up to 500 tasks).
            for i in range(0, len(tasks), 500):
                rows = conn.execute(
                    select(ready_signals.c.task, ready_signals.c.business_date).distinct()
                    .where(ready_signals.c.task.in_(tasks[i : i + 500]),
                           ready_signals.c.business_date.in_(days))
                ).all()
                found.update((r[0], r[1]) for r in rows)
        return found & pairs

    def prune(self, before: datetime) -> int:
        """Forget signals received before `before` (with the run history of that time)."""
        with self.db.write() as conn:
            result = conn.execute(delete(ready_signals).where(
                ready_signals.c.received_at < before))
        return result.rowcount or 0

    def forget(self, task: str) -> None:
        """A deleted task's signals go with it: a new task of that name waits afresh."""
        with self.db.write() as conn:
            conn.execute(delete(ready_signals).where(ready_signals.c.task == task))
