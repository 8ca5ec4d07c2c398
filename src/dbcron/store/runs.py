"""Run rows: one per slot, claimed before any work, updated as the run goes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dbcron.store.database import Database
from dbcron.store.tables import daemons, runs
from dbcron.vocabulary import (
    FINAL_STATUSES,
    LIVE_STATUSES,
    SCHEDULED_TRIGGERS,
    RunStatus,
    Trigger,
)


@dataclass(frozen=True)
class RunRow:
    id: int
    task: str
    scheduled_for: datetime
    trigger: Trigger
    status: RunStatus
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    rows: int | None
    bytes: int | None
    artifacts: list[str]
    result: Any
    error: str | None
    host: str | None
    pid: int | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("scheduled_for", "started_at", "finished_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def printable(text: str | None) -> str | None:
    """PostgreSQL refuses NUL in text; an error message quoting one must still be stored."""
    return text.replace("\x00", "\\x00") if text else text


def _new_id(result: Any) -> int:
    return int(result.inserted_primary_key[0])


def _run(r: Any) -> RunRow:
    return RunRow(
        id=r.id,
        task=r.task,
        scheduled_for=r.scheduled_for,
        trigger=r.trigger,
        status=r.status,
        attempt=r.attempt,
        started_at=r.started_at,
        finished_at=r.finished_at,
        rows=r.rows,
        bytes=r.bytes,
        artifacts=json.loads(r.artifacts) if r.artifacts else [],
        result=json.loads(r.result) if r.result else None,
        error=r.error,
        host=r.host,
        pid=r.pid,
    )


@dataclass(frozen=True)
class Claim:
    """Who is claiming a slot, and until when its claim holds without a heartbeat."""

    host: str
    pid: int
    daemon_id: str | None
    lease_until: datetime | None


@dataclass(frozen=True)
class Started:
    """An attempt of a claimed run begins (a retry starts a new attempt on the same row)."""

    attempt: int
    at: datetime
    lease_until: datetime | None
    claim: Claim

    def columns(self) -> dict[str, Any]:
        return {
            "status": "running", "attempt": self.attempt, "started_at": self.at,
            "finished_at": None, "error": None, "lease_until": self.lease_until,
            "host": self.claim.host, "pid": self.claim.pid, "daemon_id": self.claim.daemon_id,
        }


@dataclass(frozen=True)
class Finished:
    """A run ends; its lease is released."""

    status: RunStatus
    at: datetime
    rows: int | None = None
    size: int | None = None
    artifacts: list[str] | None = None
    result: Any = None
    error: str | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "status": self.status, "finished_at": self.at, "rows": self.rows,
            "bytes": self.size, "error": printable(self.error), "lease_until": None,
            "artifacts": json.dumps(self.artifacts) if self.artifacts else None,
            "result": json.dumps(self.result) if self.result is not None else None,
        }


@dataclass(frozen=True)
class Noted:
    """A running run's progress note (a failed attempt waiting for its retry)."""

    error: str

    def columns(self) -> dict[str, Any]:
        return {"error": printable(self.error)}


@dataclass(frozen=True)
class Waiting:
    """A claimed run held by its data-ready gate: why, and until when it waits."""

    note: str

    def columns(self) -> dict[str, Any]:
        return {"status": "waiting", "error": printable(self.note)}


# Every change of a claimed run row is one of these; `RunRepo.update_many` writes them.
RunUpdate = Started | Finished | Noted | Waiting


class RunRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, task: str, slot: datetime, trigger: Trigger, claim: Claim) -> int | None:
        """Insert the slot's run row as running; None when the slot was claimed already."""
        return self.claim_many([(task, slot, trigger)], claim).get((task, slot))

    def claim_many(
        self, slots: list[tuple[str, datetime, Trigger]], claim: Claim
    ) -> dict[tuple[str, datetime], int]:
        """Claim many (task, slot, trigger) at once: one statement, one transaction.

        The unique (task, slot) key decides: a slot another daemon (or an earlier
        attempt) holds is skipped by ON CONFLICT DO NOTHING and missing from the
        result. A burst of 1,000 due slots costs one round trip instead of 1,000.
        """
        if not slots:
            return {}
        rows = [
            {
                "task": task, "scheduled_for": slot, "trigger": trigger, "status": "running",
                # started_at is set when a worker takes the attempt (a queued slot waits).
                "attempt": 1, "host": claim.host, "pid": claim.pid,
                "daemon_id": claim.daemon_id, "lease_until": claim.lease_until,
            }
            for task, slot, trigger in slots
        ]
        from sqlalchemy.dialects import postgresql, sqlite

        upsert = postgresql.insert if self.db.engine.dialect.name == "postgresql" else sqlite.insert
        statement = (
            upsert(runs)
            .on_conflict_do_nothing(index_elements=["task", "scheduled_for"])
            .returning(runs.c.id, runs.c.task, runs.c.scheduled_for)
        )
        with self.db.write() as conn:
            return {(r.task, r.scheduled_for): r.id for r in conn.execute(statement, rows)}

    def reopen(self, task: str, slot: datetime, trigger: Trigger, claim: Claim) -> int | None:
        """Claim a slot again whose run ended without success (a backfill), in place.

        One UPDATE guarded by the status: of two daemons only one reopens it, and a
        slot that succeeded (or is running) is never touched. The row's earlier
        failure is replaced by the new attempt's outcome.
        """
        statement = (
            update(runs)
            .where(runs.c.task == task, runs.c.scheduled_for == slot,
                   runs.c.status.in_(FINAL_STATUSES - {"succeeded"}))
            .values(trigger=trigger, status="running", attempt=1, started_at=None,
                    finished_at=None, rows=None, bytes=None, artifacts=None, result=None,
                    error=None, host=claim.host, pid=claim.pid, daemon_id=claim.daemon_id,
                    lease_until=claim.lease_until)
            .returning(runs.c.id)
        )
        with self.db.write() as conn:
            found = conn.execute(statement).scalar()
        return int(found) if found is not None else None

    def record(
        self, task: str, slot: datetime, trigger: Trigger, status: RunStatus, now: datetime,
        claim: Claim, error: str | None = None,
    ) -> int | None:
        """A slot that did not run (skipped, missed): a finished row, unless already claimed."""
        values = {
            "task": task,
            "scheduled_for": slot,
            "trigger": trigger,
            "status": status,
            "attempt": 0,
            "finished_at": now,
            "error": error,
            "host": claim.host,
            "pid": claim.pid,
            "daemon_id": claim.daemon_id,
        }
        try:
            with self.db.write() as conn:
                return _new_id(conn.execute(insert(runs).values(values)))
        except IntegrityError:
            return None

    def update_many(self, updates: list[tuple[int, RunUpdate]]) -> None:
        """Apply (run id, update) pairs in one transaction, in order for each run.

        Updates of different runs commute, so they go in layers (each run's first
        update, then its second...) and same-shaped ones in one executemany: a
        burst of 1,000 finishing runs is a few statements, not 1,000.
        """
        layers: list[list[tuple[int, dict[str, Any]]]] = []
        depth: dict[int, int] = {}
        for run_id, change in updates:
            level = depth.get(run_id, 0)
            depth[run_id] = level + 1
            if level == len(layers):
                layers.append([])
            layers[level].append((run_id, change.columns()))
        with self.db.write() as conn:
            for layer in layers:
                shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
                for run_id, values in layer:
                    params = {f"v_{k}": v for k, v in values.items()} | {"v_id": run_id}
                    shapes.setdefault(tuple(sorted(values)), []).append(params)
                for keys, params_list in shapes.items():
                    statement = (
                        update(runs)
                        .where(runs.c.id == bindparam("v_id"))
                        .values({k: bindparam(f"v_{k}") for k in keys})
                    )
                    conn.execute(statement, params_list)

    def renew_leases(self, run_ids: list[int], until: datetime) -> None:
        """Extend the leases of the runs this process has in flight (and only those)."""
        with self.db.write() as conn:
            for k in range(0, len(run_ids), 500):
                conn.execute(
                    update(runs)
                    .where(and_(runs.c.id.in_(run_ids[k : k + 500]),
                                runs.c.status.in_(LIVE_STATUSES)))
                    .values(lease_until=until)
                )

    def interrupt_expired(self, now: datetime, note: str) -> list[RunRow]:
        """Runs whose lease ran out (their process died) become interrupted.

        One UPDATE ... RETURNING: when two daemons look at once, each stale run
        is returned to exactly one of them, which alone may retry it.
        """
        return self._interrupt(and_(runs.c.status.in_(LIVE_STATUSES), runs.c.lease_until < now),
                               now, note)

    def interrupt_orphans(self, alive_daemon: str, now: datetime, note: str) -> list[RunRow]:
        """Runs of every other registered daemon: with the SQLite store lock held, those
        daemons are certainly dead, whatever their leases say."""
        others = select(daemons.c.id).where(daemons.c.id != alive_daemon)
        return self._interrupt(and_(runs.c.status.in_(LIVE_STATUSES),
                                    runs.c.daemon_id.in_(others)),
                               now, note)

    def interrupt_daemon(self, daemon_id: str, now: datetime, note: str) -> int:
        """At stop: this process's unfinished runs."""
        return len(self._interrupt(
            and_(runs.c.daemon_id == daemon_id, runs.c.status.in_(LIVE_STATUSES)), now, note
        ))

    def _interrupt(self, where: Any, now: datetime, note: str) -> list[RunRow]:
        statement = (
            update(runs)
            .where(where)
            .values(status="interrupted", finished_at=now, error=note, lease_until=None)
            .returning(*runs.c)
        )
        with self.db.write() as conn:
            return [_run(r) for r in conn.execute(statement)]

    def get(self, run_id: int) -> RunRow | None:
        with self.db.read() as conn:
            r = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        return _run(r) if r is not None else None

    def last_slots(self) -> dict[str, datetime]:
        query = (
            select(runs.c.task, func.max(runs.c.scheduled_for))
            .where(runs.c.trigger.in_(SCHEDULED_TRIGGERS))
            .group_by(runs.c.task)
        )
        with self.db.read() as conn:
            return {t: s for t, s in conn.execute(query)}

    def latest_status(self) -> dict[str, tuple[datetime, str]]:
        """(slot, status) of each task's newest run: all `list` needs, without whole rows."""
        newest = select(func.max(runs.c.id)).group_by(runs.c.task).scalar_subquery()
        query = select(runs.c.task, runs.c.scheduled_for, runs.c.status).where(
            runs.c.id.in_(newest)
        )
        with self.db.read() as conn:
            return {r.task: (r.scheduled_for, r.status) for r in conn.execute(query)}

    def toward_max_runs(self, task: str) -> int:
        """Runs that count against `max_runs`: succeeded, and running (they may succeed)."""
        query = select(func.count()).where(
            and_(runs.c.task == task, runs.c.status.in_(("succeeded", "running")))
        )
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def history(
        self, task: str | None = None, status: RunStatus | None = None,
        since: datetime | None = None, limit: int = 20,
    ) -> list[RunRow]:
        query = select(runs).order_by(runs.c.scheduled_for.desc(), runs.c.id.desc()).limit(limit)
        if task is not None:
            query = query.where(runs.c.task == task)
        if status is not None:
            query = query.where(runs.c.status == status)
        if since is not None:
            query = query.where(runs.c.scheduled_for >= since)
        with self.db.read() as conn:
            return [_run(r) for r in conn.execute(query)]

    def counts_since(self, since: datetime) -> dict[str, int]:
        query = (
            select(runs.c.status, func.count())
            .where(runs.c.scheduled_for >= since)
            .group_by(runs.c.status)
        )
        with self.db.read() as conn:
            return {s: int(n) for s, n in conn.execute(query)}

    def prune(self, before: datetime) -> int:
        """Delete finished runs older than `before`.

        Running runs stay, and so does each task's newest run: it is where
        catch-up starts after downtime, and what `list` shows as the last result.
        """
        newest = select(func.max(runs.c.id)).group_by(runs.c.task)
        with self.db.write() as conn:
            return conn.execute(
                delete(runs).where(and_(
                    runs.c.finished_at < before, runs.c.status.not_in(LIVE_STATUSES),
                    runs.c.id.not_in(newest),
                ))
            ).rowcount
