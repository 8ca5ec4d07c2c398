"""Run rows: one per slot, claimed before any work, updated as the run goes."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from dbcron.store.database import Database
from dbcron.store.tables import UtcDateTime, daemons, runs
from dbcron.vocabulary import (
    FINAL_STATUSES,
    LIVE_STATUSES,
    SCHEDULED_TRIGGERS,
    RunStatus,
    Trigger,
)

# A fresh claim's fencing number; every change of hands adds one.
FIRST_FENCE = 1
AFTER_EFFECT = "; its side effect had begun (mail, commit or call), so it is not retried"


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
    fence: int = 0
    effect_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["fence"], data["effect_at"]  # bookkeeping of the claim, not history
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
        fence=r.fence,
        effect_at=r.effect_at,
    )


@dataclass(frozen=True)
class Claim:
    """Who is claiming a slot (its owner), and how long the claim holds without renewal."""

    host: str
    pid: int
    daemon_id: str | None
    lease: timedelta | None


def _real_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Started:
    """An attempt of a claimed run begins (a retry starts a new attempt on the same row).

    The lease is the claim's, renewed by the heartbeat on the store's clock."""

    attempt: int
    at: datetime
    claim: Claim

    def columns(self) -> dict[str, Any]:
        return {
            "status": "running", "attempt": self.attempt, "started_at": self.at,
            "finished_at": None, "error": None,
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


# Every change of a claimed run row is one of these; `RunRepo.write_batch` writes them,
# each only while the row still carries the writer's fencing number.
RunUpdate = Started | Finished | Noted | Waiting


class RunRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._server_clock = db.engine.dialect.name == "postgresql"
        # The run writer's statements, built once: building and cache-keying a fresh
        # UPDATE cost more than running it on SQLite (~0.1 ms each), and a burst of
        # 1,000 runs has 3,000 of them (start, side-effect gate, finish).
        self._updates: dict[tuple[str, ...], Any] = {}
        self._gate = self._gate_statement()

    def clock(self, now: datetime | None, ahead: timedelta | None = None) -> Any:
        """The store's time as SQL: leases compare against it, never against a host's.

        Hosts sharing a PostgreSQL store drift apart (90 s is enough for one to take
        another's live run for dead); the server's now() is one clock for all. A
        SQLite store has one host, whose clock (`now`, injectable) is used.
        """
        if self._server_clock:
            server = func.timezone("UTC", func.now(), type_=DateTime)
            return server + ahead if ahead is not None else server
        when = (now or _real_now()) + (ahead or timedelta(0))
        return literal(when, UtcDateTime)

    def _lease(self, claim: Claim, now: datetime | None) -> Any:
        return self.clock(now, claim.lease) if claim.lease is not None else None

    def claim(self, task: str, slot: datetime, trigger: Trigger, claim: Claim,
              now: datetime | None = None) -> int | None:
        """Insert the slot's run row as running; None when the slot was claimed already."""
        return self.claim_many([(task, slot, trigger)], claim, now).get((task, slot))

    def claim_many(
        self, slots: list[tuple[str, datetime, Trigger]], claim: Claim, now: datetime | None = None,
        exclusive: Collection[str] = (),
    ) -> dict[tuple[str, datetime], int | None]:
        """Claim many (task, slot, trigger) at once: one statement, one transaction.

        The unique (task, slot) key decides: a slot another daemon (or an earlier
        attempt) holds is skipped by ON CONFLICT DO NOTHING and missing from the
        result. A burst of 1,000 due slots costs one round trip instead of 1,000.

        A task in `exclusive` (overlap: skip) is not claimed while any run of it is
        going, on any daemon: its slot maps to None. The check and the claim are
        one transaction, serialised per task (SQLite: the one write lock;
        PostgreSQL: an advisory lock per task name), so two daemons cannot both
        see the task idle and start it.
        """
        if not slots:
            return {}
        blocked: set[str] = set()
        names = sorted({task for task, _, _ in slots} & set(exclusive))
        with self.db.write() as conn:
            if names:
                blocked = self._busy(conn, names, claim.daemon_id)
            result: dict[tuple[str, datetime], int | None] = {
                (task, slot): None for task, slot, _ in slots if task in blocked
            }
            free = [s for s in slots if s[0] not in blocked]
            if free:
                result.update(self._insert_claims(conn, free, claim, now))
            return result

    def _busy(self, conn: Connection, names: list[str], owner: str | None) -> set[str]:
        """Tasks with a run going on another daemon (our own runs the caller knows
        better: their finish may still sit in its write queue)."""
        if self._server_clock:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(727101, k) FROM (SELECT DISTINCT "
                     "hashtext(t) AS k FROM unnest(CAST(:names AS text[])) AS t ORDER BY k) s"),
                {"names": names},
            )
        query = select(runs.c.task).distinct().where(and_(
            runs.c.task.in_(names), runs.c.status.in_(LIVE_STATUSES),
            runs.c.daemon_id.is_distinct_from(owner),
        ))
        return {r.task for r in conn.execute(query)}

    def _insert_claims(
        self, conn: Connection, slots: list[tuple[str, datetime, Trigger]], claim: Claim,
        now: datetime | None,
    ) -> dict[tuple[str, datetime], int]:
        rows = [
            {
                "task": task, "scheduled_for": slot, "trigger": trigger, "status": "running",
                # started_at is set when a worker takes the attempt (a queued slot waits).
                "attempt": 1, "host": claim.host, "pid": claim.pid,
                "daemon_id": claim.daemon_id, "fence": FIRST_FENCE,
            }
            for task, slot, trigger in slots
        ]
        # Only the store's own dialect: a SQLite daemon importing PostgreSQL's (~20 ms)
        # at its first claim, the first slot of a burst, makes every run of it wait.
        if self.db.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
        statement = (
            upsert(runs)
            .values(lease_until=self._lease(claim, now))
            .on_conflict_do_nothing(index_elements=["task", "scheduled_for"])
            .returning(runs.c.id, runs.c.task, runs.c.scheduled_for)
        )
        return {(r.task, r.scheduled_for): r.id for r in conn.execute(statement, rows)}

    def reopen(self, task: str, slot: datetime, trigger: Trigger, claim: Claim,
               now: datetime | None = None) -> tuple[int, int] | None:
        """Claim a slot again whose run ended without success (a backfill), in place:
        its (run id, new fencing number), or None.

        One UPDATE guarded by the status: of two daemons only one reopens it, and a
        slot that succeeded (or is running) is never touched. The row's earlier
        failure is replaced by the new attempt's outcome; the fence moves on, so a
        writer of the old attempt changes nothing.
        """
        statement = (
            update(runs)
            .where(runs.c.task == task, runs.c.scheduled_for == slot,
                   runs.c.status.in_(FINAL_STATUSES - {"succeeded"}))
            .values(trigger=trigger, status="running", attempt=1, started_at=None,
                    finished_at=None, rows=None, bytes=None, artifacts=None, result=None,
                    error=None, host=claim.host, pid=claim.pid, daemon_id=claim.daemon_id,
                    lease_until=self._lease(claim, now), fence=runs.c.fence + 1, effect_at=None)
            .returning(runs.c.id, runs.c.fence)
        )
        with self.db.write() as conn:
            found = conn.execute(statement).first()
        return (int(found.id), int(found.fence)) if found is not None else None

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

    def update_many(self, updates: list[tuple[int, int, RunUpdate]]) -> None:
        """Apply (run id, fence, update) triples; see write_batch."""
        self.write_batch(updates, [])

    def write_batch(
        self, updates: list[tuple[int, int, RunUpdate]], gates: list[tuple[int, int]],
        now: datetime | None = None,
    ) -> set[int]:
        """Apply (run id, fence, update) changes in one transaction, in order for each run.

        An update only lands while the row still carries its fencing number: once the
        run was interrupted or taken over, a late writer (a daemon resumed after a
        pause) changes nothing. Updates of different runs commute, so they go in
        layers (each run's first update, then its second...) and same-shaped ones in
        one executemany: a burst of 1,000 finishing runs is a few statements, not 1,000.

        `gates` (run id, fence) are side-effect gates (see pass_gate) taken in the same
        transaction, after the updates; returns the run ids whose gate opened.
        """
        layers: list[list[tuple[int, int, dict[str, Any]]]] = []
        depth: dict[int, int] = {}
        for run_id, fence, change in updates:
            level = depth.get(run_id, 0)
            depth[run_id] = level + 1
            if level == len(layers):
                layers.append([])
            layers[level].append((run_id, fence, change.columns()))
        # The store's clock for a SQLite store: one time for the batch's gates.
        at = {} if self._server_clock else {"g_now": now or _real_now()}
        # A gate's answer lets a side effect happen: its commit must survive a power cut,
        # or the restarted daemon would find the run not past its gate and retry it.
        with self.db.write(durable=bool(gates)) as conn:
            for layer in layers:
                shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
                for run_id, fence, values in layer:
                    params = {f"v_{k}": v for k, v in values.items()}
                    shapes.setdefault(tuple(sorted(values)), []).append(
                        params | {"v_id": run_id, "v_fence": fence})
                for keys, params_list in shapes.items():
                    conn.execute(self._update_statement(keys), params_list)
            return {run_id for run_id, fence in gates
                    if conn.execute(self._gate, {"g_id": run_id, "g_fence": fence} | at
                                    ).rowcount == 1}

    def _update_statement(self, keys: tuple[str, ...]) -> Any:
        """UPDATE of the columns `keys` of one run, while it carries its fencing number."""
        statement = self._updates.get(keys)
        if statement is None:
            statement = self._updates[keys] = (
                update(runs)
                .where(and_(runs.c.id == bindparam("v_id"), runs.c.fence == bindparam("v_fence")))
                .values({k: bindparam(f"v_{k}") for k in keys})
            )
        return statement

    def renew_leases(self, held: list[tuple[int, int]], lease: timedelta,
                     now: datetime | None = None) -> None:
        """Extend the leases of the (run id, fence) this process holds, and only while it
        still holds them: a run taken over meanwhile keeps its new owner's lease."""
        if not held:
            return
        statement = (
            update(runs)
            # Spelled out: an IN list expands per execution, which executemany refuses.
            .where(and_(runs.c.id == bindparam("h_id"), runs.c.fence == bindparam("h_fence"),
                        or_(*(runs.c.status == s for s in LIVE_STATUSES))))
            .values(lease_until=self.clock(now, lease))
        )
        with self.db.write() as conn:
            conn.execute(statement, [{"h_id": i, "h_fence": f} for i, f in held])

    def take_over(self, run_id: int, fence: int, claim: Claim,
                  now: datetime | None = None) -> int | None:
        """Make an interrupted run ours for its next attempt; the new fencing number, or
        None when someone else changed the row since we saw it at `fence`."""
        statement = (
            update(runs)
            .where(and_(runs.c.id == run_id, runs.c.fence == fence,
                        runs.c.status == "interrupted"))
            .values(status="running", fence=runs.c.fence + 1, finished_at=None, effect_at=None,
                    host=claim.host, pid=claim.pid, daemon_id=claim.daemon_id,
                    lease_until=self._lease(claim, now))
            .returning(runs.c.fence)
        )
        with self.db.write() as conn:
            row = conn.execute(statement).first()
        return int(row.fence) if row is not None else None

    def start_exclusive(self, run_id: int, fence: int, task: str, owner: str | None,
                        now: datetime | None = None) -> bool:
        """Mark a claimed run started unless another daemon's run of the task has started
        and not ended (overlap: queue across daemons); False: wait and ask again.

        Serialised per task like the claim of an overlap: skip slot, so two daemons
        whose queued runs wait on the same one cannot both start when it ends.
        """
        other = runs.alias("other")
        going = select(other.c.id).where(and_(
            other.c.task == task, other.c.status == "running", other.c.started_at.is_not(None),
            other.c.id != run_id, other.c.daemon_id.is_distinct_from(owner),
        )).exists()
        statement = (
            update(runs)
            .where(and_(runs.c.id == run_id, runs.c.fence == fence, ~going))
            .values(started_at=literal(now or _real_now(), UtcDateTime))
        )
        with self.db.write() as conn:
            if self._server_clock:
                conn.execute(text("SELECT pg_advisory_xact_lock(727101, hashtext(:t))"),
                             {"t": task})
            return bool(conn.execute(statement).rowcount == 1)

    def pass_gate(self, run_id: int, fence: int, now: datetime | None = None) -> bool:
        """The step before a side effect: True when the run is still ours (and, on a
        shared store, its lease holds by the store's clock), and then marked as past its
        side effect.

        One conditional UPDATE: an interrupt either lands first (and we stop) or
        after (and sees effect_at, so it does not retry what may have been done).
        A SQLite store has one daemon, whose restart moves the fence on; its
        leases follow the daemon's clock, which a worker cannot see.
        """
        return run_id in self.write_batch([], [(run_id, fence)], now)

    def _gate_statement(self) -> Any:
        """The side-effect gate of run g_id at fence g_fence (see pass_gate); a SQLite
        store's time comes in as g_now."""
        store_now = (self.clock(None) if self._server_clock
                     else bindparam("g_now", type_=UtcDateTime))
        ours = and_(runs.c.id == bindparam("g_id"), runs.c.fence == bindparam("g_fence"),
                    runs.c.status == "running")
        if self._server_clock:
            ours = and_(ours, runs.c.lease_until.is_(None) | (runs.c.lease_until > store_now))
        return update(runs).where(ours).values(effect_at=store_now)

    def interrupt_expired(self, now: datetime, note: str) -> list[RunRow]:
        """Runs whose lease ran out (by the store's clock) become interrupted.

        One UPDATE ... RETURNING: when two daemons look at once, each stale run
        is returned to exactly one of them, which alone may retry it.
        """
        return self._interrupt(and_(runs.c.status.in_(LIVE_STATUSES),
                                    runs.c.lease_until < self.clock(now)), now, note)

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
        # The fence moves on: whatever the old owner still writes or sends is refused.
        error = case((runs.c.effect_at.is_(None), literal(note)),
                     else_=literal(note + AFTER_EFFECT))
        statement = (
            update(runs)
            .where(where)
            .values(status="interrupted", finished_at=now, error=error, lease_until=None,
                    fence=runs.c.fence + 1)
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
