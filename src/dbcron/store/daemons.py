"""Daemon heartbeats (is one alive, since when, what it loaded) and run-now requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, select, update

from dbcron.store.database import Database
from dbcron.store.tables import daemons, run_requests
from dbcron.vocabulary import Trigger


@dataclass(frozen=True)
class DaemonRow:
    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    last_reload_at: datetime | None
    tasks_loaded: int
    status: str
    stopped_at: datetime | None
    heartbeat_seconds: float

    def alive(self, now: datetime) -> bool:
        """Alive while it has not said goodbye and its heartbeat is not three beats old."""
        late = now - self.heartbeat_at
        return self.stopped_at is None and late <= timedelta(seconds=3 * self.heartbeat_seconds)


@dataclass(frozen=True)
class RunRequest:
    id: int
    task: str
    requested_at: datetime
    slot: datetime | None = None  # a backfill's past slot; None: run now
    trigger: Trigger | None = None


class DaemonRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, row: DaemonRow) -> None:
        with self.db.write() as conn:
            conn.execute(insert(daemons).values(row.__dict__))

    def beat(self, daemon_id: str, now: datetime, **values: Any) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(daemons).where(daemons.c.id == daemon_id).values(heartbeat_at=now, **values)
            )

    def stopped(self, daemon_id: str, now: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(daemons)
                .where(daemons.c.id == daemon_id)
                .values(stopped_at=now, heartbeat_at=now, status="stopped")
            )

    def latest(self) -> list[DaemonRow]:
        """Daemons newest first; old stopped ones are pruned by `forget_before`."""
        query = select(daemons).order_by(daemons.c.started_at.desc()).limit(20)
        with self.db.read() as conn:
            return [DaemonRow(**r._mapping) for r in conn.execute(query)]

    def forget_before(self, before: datetime) -> None:
        """Drop heartbeats of daemons long gone and run-now requests long answered."""
        with self.db.write() as conn:
            conn.execute(delete(daemons).where(daemons.c.heartbeat_at < before))
            conn.execute(
                delete(run_requests).where(
                    and_(run_requests.c.requested_at < before,
                         run_requests.c.daemon_id.is_not(None))
                )
            )

    # run-now requests: the CLI asks, a live daemon takes and answers with a run id

    def request_run(self, task: str, now: datetime, slot: datetime | None = None,
                    trigger: Trigger | None = None) -> int:
        with self.db.write() as conn:
            result = conn.execute(insert(run_requests).values(
                task=task, requested_at=now, scheduled_for=slot, trigger=trigger))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def take_requests(self, daemon_id: str) -> list[RunRequest]:
        """Claim open requests for this daemon; another daemon never takes the same one."""
        waiting = select(run_requests.c.id).where(run_requests.c.daemon_id.is_(None)).limit(1)
        with self.db.read() as conn:
            if conn.execute(waiting).first() is None:
                return []  # the common case, every second: no write lock taken
        with self.db.write() as conn:
            open_ = list(
                conn.execute(
                    select(run_requests.c.id, run_requests.c.task, run_requests.c.requested_at,
                           run_requests.c.scheduled_for, run_requests.c.trigger)
                    .where(run_requests.c.daemon_id.is_(None))
                    .order_by(run_requests.c.id)
                )
            )
            taken = []
            for r in open_:
                claimed = conn.execute(
                    update(run_requests)
                    .where(and_(run_requests.c.id == r.id, run_requests.c.daemon_id.is_(None)))
                    .values(daemon_id=daemon_id)
                ).rowcount
                if claimed:
                    taken.append(RunRequest(r.id, r.task, r.requested_at, r.scheduled_for,
                                            r.trigger))
        return taken

    def answer(self, request_id: int, run_id: int) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(run_requests).where(run_requests.c.id == request_id).values(run_id=run_id)
            )

    def answer_of(self, request_id: int) -> tuple[str | None, int | None]:
        """(daemon id that took it, run id) of a request; (None, None) while untaken."""
        query = select(run_requests.c.daemon_id, run_requests.c.run_id).where(
            run_requests.c.id == request_id
        )
        with self.db.read() as conn:
            r = conn.execute(query).first()
        return (r.daemon_id, r.run_id) if r is not None else (None, None)

    def withdraw(self, request_id: int) -> bool:
        """Cancel an untaken request (the CLI gave up waiting); False if a daemon took it."""
        with self.db.write() as conn:
            return bool(
                conn.execute(
                    delete(run_requests).where(
                        and_(run_requests.c.id == request_id, run_requests.c.daemon_id.is_(None))
                    )
                ).rowcount
            )
