"""What a task's mail carried: the last result's fingerprint and the row keys sent.

`send: if_changed` compares a run's fingerprint with the last delivered one;
`only_new` leaves out rows whose key hash is here. Both are written only after
the mail went out, so a failed delivery is tried again with the same content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from dbcron.store.database import Database
from dbcron.store.tables import sent_keys, sent_results

_CHUNK = 5_000  # keys per INSERT: well under any driver's parameter limit


@dataclass(frozen=True)
class SentResult:
    fingerprint: str
    rows: int
    scheduled_for: datetime
    delivered_at: datetime


class SentResultRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def last(self, task: str) -> SentResult | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(sent_results.c.fingerprint, sent_results.c.rows,
                       sent_results.c.scheduled_for, sent_results.c.delivered_at)
                .where(sent_results.c.task == task)
            ).first()
        return SentResult(*row) if row else None

    def record(self, task: str, fingerprint: str, rows: int, slot: datetime,
               now: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(delete(sent_results).where(sent_results.c.task == task))
            conn.execute(insert(sent_results).values(
                task=task, fingerprint=fingerprint, rows=rows, scheduled_for=slot,
                delivered_at=now))

    def known_keys(self, task: str) -> set[int]:
        with self.db.read() as conn:
            return set(conn.execute(
                select(sent_keys.c.key_hash).where(sent_keys.c.task == task)
            ).scalars())

    def add_keys(self, task: str, hashes: Iterable[int], now: datetime) -> None:
        """Remember keys as delivered; keys already known are the caller's to leave out."""
        values = [{"task": task, "key_hash": h, "delivered_at": now} for h in hashes]
        with self.db.write() as conn:
            for start in range(0, len(values), _CHUNK):
                conn.execute(insert(sent_keys), values[start:start + _CHUNK])

    def prune(self, before: datetime) -> int:
        """Forget keys mailed before `before` (with the run history of that time)."""
        with self.db.write() as conn:
            result = conn.execute(
                delete(sent_keys).where(sent_keys.c.delivered_at < before))
        return result.rowcount or 0

    def forget(self, task: str) -> None:
        """A deleted task's sent results go with it (a new task of that name starts afresh)."""
        with self.db.write() as conn:
            conn.execute(delete(sent_results).where(sent_results.c.task == task))
            conn.execute(delete(sent_keys).where(sent_keys.c.task == task))
