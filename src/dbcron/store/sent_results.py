"""What a task's mail carried: the last result's fingerprint and rows, and the row keys sent.

`send: if_changed` compares a run's fingerprint with the last delivered one and
counts what changed against its rows; `only_new` leaves out rows whose key hash
is here. All are written only after the mail went out, so a failed delivery is
tried again with the same content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from sqlalchemy import delete, func, insert, select

from dbcron.store.database import Database
from dbcron.store.tables import sent_keys, sent_results, sent_rows

_CHUNK = 5_000  # keys per INSERT: well under any driver's parameter limit

# A result's rows as row hash -> (key hash or None, copies of that row).
RowHashes = Mapping[int, tuple[int | None, int]]


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

    def last_rows(self, task: str) -> dict[int, tuple[int | None, int]] | None:
        """The last mail's rows, or None when they were not kept row by row (too many,
        or mailed before schema v6): then their copies do not add up to its row count."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(sent_results.c.rows).where(sent_results.c.task == task)).scalar()
            if rows is None:
                return None
            kept = conn.execute(select(func.coalesce(func.sum(sent_rows.c.copies), 0))
                                .where(sent_rows.c.task == task)).scalar_one()
            if kept != rows:
                return None
            return {h: (k, n) for h, k, n in conn.execute(
                select(sent_rows.c.row_hash, sent_rows.c.key_hash, sent_rows.c.copies)
                .where(sent_rows.c.task == task))}

    def record(self, task: str, fingerprint: str, rows: int, slot: datetime,
               now: datetime, row_hashes: RowHashes | None = None) -> None:
        """The result just mailed replaces the last one; `row_hashes` None: too many rows
        to keep one by one, so the next mail says it changed without counts."""
        items = iter((row_hashes or {}).items())
        with self.db.write() as conn:
            conn.execute(delete(sent_results).where(sent_results.c.task == task))
            conn.execute(delete(sent_rows).where(sent_rows.c.task == task))
            conn.execute(insert(sent_results).values(
                task=task, fingerprint=fingerprint, rows=rows, scheduled_for=slot,
                delivered_at=now))
            # A chunk's parameters at a time: 100,000 rows as dicts at once would be 20 MB.
            while chunk := [{"task": task, "row_hash": h, "key_hash": k, "copies": n}
                            for h, (k, n) in islice(items, _CHUNK)]:
                conn.execute(insert(sent_rows), chunk)

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
            conn.execute(delete(sent_rows).where(sent_rows.c.task == task))
            conn.execute(delete(sent_keys).where(sent_keys.c.task == task))
