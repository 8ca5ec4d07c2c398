"""One run of a task: claim the slot, apply the policies, run attempts, record everything.

The state machine of a run row:

    (claim) running -> succeeded | failed | timed_out | interrupted
    (no claim)      -> skipped (overlap) | missed (past grace)

A slot is claimed by inserting its row before any work, so a slot runs at most
once whatever happens. Attempts run in worker processes (see workers.py); a
failed attempt is retried after a backoff that doubles, capped at 10 minutes,
while the row stays `running` with its lease renewed by the daemon's heartbeat.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dbcron.daemon.catchup import too_late
from dbcron.daemon.run_writer import RunWriter
from dbcron.daemon.worker_pool import Stopped, TimedOut, WorkerPool
from dbcron.jobs.fence import FENCED_OFF, refusal
from dbcron.jobs.types import JobRequest, JobResult
from dbcron.model import Task
from dbcron.schedule import jitter_for
from dbcron.secrets import mask_secrets
from dbcron.settings import Settings
from dbcron.store import Claim, Store
from dbcron.store.runs import FIRST_FENCE, Finished, Noted, Started, Waiting
from dbcron.vocabulary import RunStatus, Trigger

if TYPE_CHECKING:
    from dbcron.daemon.metrics import Metrics

log = logging.getLogger("dbcron.runner")
MAX_BACKOFF = 600.0


def backoff(attempt: int, base: float) -> float:
    """Seconds before attempt `attempt + 1`: base, doubling, capped."""
    return float(min(base * 2 ** (attempt - 1), MAX_BACKOFF))


@dataclass(order=True)
class _Delayed:
    due: datetime
    seq: int
    attempt: _Attempt = field(compare=False)


@dataclass
class _Attempt:
    task: Task
    run_id: int
    slot: datetime
    trigger: Trigger
    number: int = 1
    gate_open: bool = False  # its data-ready gate let it through (or it has none)
    gated: bool = False  # delayed because its gate did not hold (not jitter, not a retry)
    signalled: bool = False  # its ready signal is here: a signal wakes it no more
    fence: int = FIRST_FENCE  # the claim's fencing number: every write of the row checks it
    due: datetime | None = None  # when it was meant to start, if later than its slot (jitter)


@dataclass(frozen=True)
class Identity:
    """Who runs: written into each claimed row so history says where a run ran."""

    host: str
    pid: int
    daemon_id: str | None


class Runner:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        pool: WorkerPool,
        identity: Identity,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.pool = pool
        self.identity = identity
        self.clock = clock
        self.metrics = metrics
        self._threads = ThreadPoolExecutor(settings.max_workers, thread_name_prefix="dbcron-run")
        self._lock = threading.Lock()
        self._active: dict[str, int] = defaultdict(int)
        self._waiting: dict[str, deque[_Attempt]] = defaultdict(deque)
        self._delayed: list[_Delayed] = []
        self._blocked: list[_Attempt] = []  # overlap: queue, waiting on another daemon's run
        self._seq = itertools.count()
        self._futures: set[Future[None]] = set()
        self._accepting = True
        self._unstarted: dict[str, int] = defaultdict(int)  # per task: handed over, no worker yet
        # Claimed, not yet finished: run id -> fencing number; their leases are ours.
        self._inflight: dict[int, int] = {}
        self.writer = RunWriter(store.runs)
        self.lease = timedelta(seconds=settings.lease_seconds)

    def _claim(self) -> Claim:
        return Claim(self.identity.host, self.identity.pid, self.identity.daemon_id, self.lease)

    # --- entry points -----------------------------------------------------------------

    def submit(self, task: Task, slot: datetime, trigger: Trigger, now: datetime) -> int | None:
        """Decide what a due slot becomes; returns the run id when it was claimed to run."""
        return self.submit_many([(task, slot, trigger)], now)[0]

    def submit_many(
        self, due: list[tuple[Task, datetime, Trigger]], now: datetime
    ) -> list[int | None]:
        """Decide what each due slot becomes, claiming those to run in one statement.

        A task's second slot in the same batch goes through on its own afterwards,
        so its overlap policy sees the first one running.
        """
        results: list[int | None] = [None] * len(due)
        if not self._accepting:
            return results
        batch: list[tuple[int, Task, datetime, Trigger]] = []
        later: list[int] = []
        seen: set[str] = set()
        for i, (task, slot, trigger) in enumerate(due):
            if task.name in seen:
                later.append(i)
            elif self._admit(task, slot, trigger, now):
                seen.add(task.name)
                batch.append((i, task, slot, trigger))
        # overlap: skip holds across daemons: a run of the task going anywhere blocks.
        exclusive = {task.name for _, task, _, trigger in batch
                     if task.policy.overlap == "skip" and trigger == "schedule"}
        claimed = self.store.runs.claim_many(
            [(task.name, slot, trigger) for _, task, slot, trigger in batch], self._claim(), now,
            exclusive,
        )
        for i, task, slot, trigger in batch:
            fence = FIRST_FENCE
            if (task.name, slot) not in claimed and trigger == "backfill":
                # A backfilled slot may hold an earlier failure: that row is run again.
                reopened = self.store.runs.reopen(task.name, slot, trigger, self._claim(), now)
                if reopened is not None:
                    claimed[(task.name, slot)], fence = reopened
            if (task.name, slot) not in claimed:
                log.debug("%s: slot %s was claimed already", task.name, slot.isoformat())
                continue
            run_id = claimed[(task.name, slot)]
            if run_id is None:
                self.record(task, slot, trigger, "skipped", now,
                            "the previous run was still running")
                continue
            results[i] = run_id
            self._begin(_Attempt(task, run_id, slot, trigger, fence=fence), now)
        for i in later:
            results[i] = self.submit(*due[i], now)
        return results

    def _admit(self, task: Task, slot: datetime, trigger: Trigger, now: datetime) -> bool:
        """Grace, max_runs and overlap: False when the slot is recorded as not run."""
        policy = task.policy
        if trigger in ("manual", "backfill"):
            return True  # asked for by a person: no grace, no overlap rule
        if too_late(slot, now, policy.grace):
            why = f"started {_ago(now - slot)} late, past its grace of {_ago(policy.grace)}"
            self.record(task, slot, trigger, "missed", now, why)
            return False
        limit = task.schedule.max_runs
        if limit is not None and self.store.runs.toward_max_runs(task.name) >= limit:
            log.info("%s: max_runs %d reached; slot %s not run", task.name, limit, slot)
            return False
        busy = self._busy(task.name) if policy.overlap == "skip" and trigger != "catchup" else ""
        if busy:
            self.record(task, slot, trigger, "skipped", now, f"the previous run was still {busy}")
            return False
        return True

    def _busy(self, name: str) -> str:
        """What the task's previous run is doing here, or "" when it has none."""
        with self._lock:
            if not (self._active[name] > 0 or self._waiting[name]):
                return ""
            # Only waiting for a worker (they are all busy with other tasks): history must
            # not say "running" about a run that never started.
            return ("waiting for a free worker" if self._unstarted[name] >= self._active[name]
                    else "running")

    def _begin(self, attempt: _Attempt, now: datetime) -> None:
        """A claimed slot: wait behind the running one (overlap: queue, and catch-up
        slots, which run one after the other), or start."""
        task = attempt.task
        queues = task.policy.overlap == "queue" or attempt.trigger == "catchup"
        with self._lock:
            self._inflight[attempt.run_id] = attempt.fence
            busy = self._active[task.name] > 0 or bool(self._waiting[task.name])
            if busy and attempt.trigger != "manual" and queues:
                self._waiting[task.name].append(attempt)
                return
            self._active[task.name] += 1
        jittered = attempt.trigger == "schedule" and task.schedule.jitter
        delay = jitter_for(task.name, attempt.slot, task.schedule.jitter) if jittered else None
        if delay:
            attempt.due = attempt.slot + delay
            self._delay(attempt, now + delay)
        else:
            self._start(attempt)

    def resume(self, task: Task, run_id: int, fence: int, slot: datetime, trigger: Trigger,
               attempt: int, now: datetime) -> bool:
        """Retry an interrupted run's slot (after a crash) as its next attempt.

        The take-over moves the fence on, so the older attempt, should it still run
        somewhere (a paused daemon's worker), is refused at its side-effect gate.
        False when another daemon took the run over first.
        """
        taken = self.store.runs.take_over(run_id, fence, self._claim(), now)
        if taken is None:
            return False
        with self._lock:
            self._inflight[run_id] = taken
            self._active[task.name] += 1
        self._start(_Attempt(task, run_id, slot, trigger, attempt, fence=taken))
        return True

    def tick(self, now: datetime) -> None:
        """Start delayed attempts (jitter, retry backoff) that are due, and queued ones
        another daemon's run held back."""
        with self._lock:
            due, self._blocked = self._blocked, []
            while self._delayed and self._delayed[0].due <= now:
                due.append(heapq.heappop(self._delayed).attempt)
        for attempt in due:
            self._start(attempt)

    def follow_signals(self, now: datetime) -> None:
        """A ready signal (from the API, `manage-tasks ready` or another host) opens its
        task's waiting runs now, not after their `ready.every`: called every tick.

        While runs here wait for a signal, one query asks which of their (task, date)
        pairs have one, and each such run looks at its gate at once, once (a run whose
        gate still waits for `after` or `query` then keeps to `every`). Asking for the
        pairs rather than following signal ids loses no wake: a run that read "no
        signal" just before one committed is in `_delayed` by a later tick, which
        finds the signal still there; and ids, out of commit order on PostgreSQL or
        reused on SQLite after `forget`, play no part. `now` is the tick's, which
        `tick` then compares with: a later reading would leave the run for the next
        tick."""
        with self._lock:
            waiting = [d.attempt for d in self._delayed if d.attempt.gated
                       and not d.attempt.signalled and _wants_signal(d.attempt.task)]
        if not waiting:
            return
        keys = {a.run_id: (a.task.name, self._business_date(a)) for a in waiting}
        present = self.store.signals.present(set(keys.values()))
        tasks = self._recheck({run for run, key in keys.items() if key in present}, now)
        if tasks:
            log.info("ready signal for %s: waiting runs look at their gate now",
                     ", ".join(sorted(tasks)))

    def _business_date(self, attempt: _Attempt) -> date:
        from dbcron.daemon.gate import business_date

        # ZoneInfo keeps its instances: no file is read per tick.
        return business_date(attempt.slot, ZoneInfo(attempt.task.schedule.timezone
                                                    or self.settings.timezone))

    def _recheck(self, run_ids: set[int], now: datetime) -> set[str]:
        """Move the gate's next look of these waiting runs to `now`; their tasks."""
        tasks: set[str] = set()
        with self._lock:
            for delayed in self._delayed:
                attempt = delayed.attempt
                if attempt.gated and attempt.run_id in run_ids:
                    delayed.due = min(delayed.due, now)
                    attempt.signalled = True
                    tasks.add(attempt.task.name)
            heapq.heapify(self._delayed)
        return tasks

    def active(self) -> int:
        with self._lock:
            return sum(self._active.values())

    def inflight(self) -> list[tuple[int, int]]:
        """(run id, fence) claimed here and not finished: the leases to renew."""
        with self._lock:
            return list(self._inflight.items())

    def stop_accepting(self) -> None:
        self._accepting = False

    def drain(self, seconds: float) -> bool:
        """Wait up to `seconds` for running attempts; True when none is left."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
            if not pending:
                return True
            time.sleep(0.1)
        return False

    def shutdown(self) -> None:
        """After the workers are gone: let run threads record what they have, then write
        every pending row update."""
        self._accepting = False
        self._threads.shutdown(wait=True, cancel_futures=True)
        self.writer.close()

    # --- attempts ---------------------------------------------------------------------

    def _delay(self, attempt: _Attempt, due: datetime) -> None:
        with self._lock:
            heapq.heappush(self._delayed, _Delayed(due, next(self._seq), attempt))

    def _start(self, attempt: _Attempt) -> None:
        if not self._accepting:
            return  # the row stays running; shutdown marks it interrupted
        if self._held_elsewhere(attempt):
            with self._lock:
                self._blocked.append(attempt)  # asked again every tick
            return
        with self._lock:
            self._unstarted[attempt.task.name] += 1
        future = self._threads.submit(self._run_attempt, attempt)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _held_elsewhere(self, attempt: _Attempt) -> bool:
        """overlap: queue holds across daemons: a first attempt waits while another
        daemon's run of the task is going (this daemon's own runs queue in _waiting)."""
        task = attempt.task
        if task.policy.overlap != "queue" or attempt.trigger == "manual" or attempt.number > 1:
            return False
        try:
            return not self.store.runs.start_exclusive(
                attempt.run_id, attempt.fence, task.name, self.identity.daemon_id, self.clock())
        except Exception:  # the store away: wait for it rather than risk an overlap
            log.warning("%s: could not check for runs on other daemons; slot %s waits",
                        task.name, attempt.slot.isoformat())
            return True

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("runner bug: %s", future.exception(), exc_info=future.exception())

    def _run_attempt(self, attempt: _Attempt) -> None:
        with self._lock:
            self._unstarted[attempt.task.name] -= 1
        if not self._accepting:
            return  # queued before a stop: its row stays running and becomes interrupted
        task = attempt.task
        if task.ready is not None and not attempt.gate_open and not self._through_gate(attempt):
            return
        now = self.clock()
        # A run its data-ready gate held waited by design (up to ready.until): no grace.
        if (attempt.trigger not in ("manual", "backfill") and attempt.number == 1
                and not attempt.gate_open
                and too_late(attempt.due or attempt.slot, now, task.policy.grace)):
            self._missed_waiting(attempt, now)
            return
        self.writer.put(attempt.run_id, attempt.fence,
                        Started(attempt.number, now, self._claim()))
        if task.monitor is not None:
            from dbcron.daemon.monitor import ping

            ping(task, "start", attempt.run_id)
        # A backfill is for a past slot on purpose: its mail must not say "late".
        late = now - attempt.slot if attempt.trigger not in ("manual", "backfill") else None
        log.info(
            "run %s started: slot %s, attempt %d%s", task.name, attempt.slot.isoformat(),
            attempt.number, f", {_ago(late)} late" if late and late > timedelta(seconds=1) else "",
            extra={"task": task.name, "slot": attempt.slot.isoformat(), "run_id": attempt.run_id},
        )
        request = JobRequest(
            task=task, slot=attempt.slot, settings=self.settings,
            timeout=task.policy.timeout.total_seconds(), attempt=attempt.number,
            trigger=attempt.trigger, late_by=late, run_id=attempt.run_id, fence=attempt.fence,
        )
        started = time.monotonic()
        try:
            result = self.pool.run(request, task.policy.timeout.total_seconds(),
                                   lambda what: self._gate(attempt, what))
        except TimedOut:
            result = JobResult("failed", error=f"timed out after {_ago(task.policy.timeout)}",
                               retryable=False)
            self._finish(attempt, "timed_out", result, started, late)
            return
        except Stopped:
            return  # a cold stop: shutdown marks the row interrupted
        if result.error is not None and result.error.startswith(FENCED_OFF):
            self._fenced(attempt)
            return
        if result.status == "succeeded":
            self._finish(attempt, "succeeded", result, started, late)
            return
        if result.retryable and attempt.number <= task.policy.retries:
            if not self._accepting:
                return  # stopping: interrupted now, retried by the next start within grace
            wait = backoff(attempt.number, self.settings.retry_backoff_seconds)
            why = f"attempt {attempt.number} failed: {mask_secrets(result.error or '')}"
            log.warning("run %s %s; retrying in %ss", task.name, why, int(wait),
                        extra={"task": task.name, "slot": attempt.slot.isoformat()})
            self.writer.put(attempt.run_id, attempt.fence,
                            Noted(f"{why}; retrying in {int(wait)}s"))
            attempt.number += 1
            self._delay(attempt, self.clock() + timedelta(seconds=wait))
            return
        self._finish(attempt, "failed", result, started, late)

    def _through_gate(self, attempt: _Attempt) -> bool:
        """The data-ready gate: True when the run goes on now; else it waits (the row says
        `waiting` and why) or, past `ready.until`, ends as `ready.then` says."""
        from dbcron.daemon.gate import check, deadline, decide

        task, ready = attempt.task, attempt.task.ready
        assert ready is not None
        look = check(self.store, self.settings, task, attempt.slot)
        now = self.clock()
        step = decide(ready, attempt.slot, now, look.holds)
        attempt.gated = False
        if step.action == "open":
            attempt.gate_open = True
            return True
        end = deadline(ready, attempt.slot)
        if step.action == "wait":
            assert step.next_check is not None
            note = (f"{look.why}; looking again at {step.next_check:%H:%M:%S} UTC, until "
                    f"{end:%Y-%m-%d %H:%M} UTC (then: {ready.then})")
            self.writer.put(attempt.run_id, attempt.fence, Waiting(note))
            log.info("run %s waiting: %s", task.name, note,
                     extra={"task": task.name, "slot": attempt.slot.isoformat(),
                            "status": "waiting"})
            if self.metrics is not None:
                self.metrics.observe_gate(task.name, "waiting")
            attempt.gated = True
            attempt.signalled = look.signalled  # its signal came before this look
            self._delay(attempt, step.next_check)
            return False
        why = f"not ready by {end:%Y-%m-%d %H:%M} UTC: {look.why}"
        if self.metrics is not None:
            self.metrics.observe_gate(task.name, f"gave_up_{ready.then}")
        if ready.then == "run":
            log.warning("run %s starts anyway (ready.then: run): %s", task.name, why)
            attempt.gate_open = True
            return True
        status: RunStatus = "skipped" if ready.then == "skip" else "failed"
        result = JobResult("failed", error=f"{why} (ready.then: {ready.then})", retryable=False)
        self._finish(attempt, status, result, time.monotonic(), None)
        return False

    def _finish(self, attempt: _Attempt, status: RunStatus, result: JobResult, started: float,
                late: timedelta | None) -> None:
        task = attempt.task
        now = self.clock()
        with self._lock:
            self._inflight.pop(attempt.run_id, None)
        duration = time.monotonic() - started
        error = mask_secrets(result.error) if result.error else None
        self.writer.put(attempt.run_id, attempt.fence, Finished(
            status, now, rows=result.rows, size=result.bytes, artifacts=result.artifacts,
            result=result.result, error=error,
        ))
        if result.deliveries:
            self._ledger(task.name, attempt.run_id, result.deliveries, now)
        if task.monitor is not None:
            from dbcron.daemon.monitor import ping

            ping(task, "success" if status == "succeeded" else "fail", attempt.run_id,
                 f"{status}: {error}" if error else status)
        level = logging.INFO if status == "succeeded" else logging.ERROR
        log.log(
            level, "run %s %s: slot %s, %.1fs%s%s", task.name, status, attempt.slot.isoformat(),
            duration, f", {result.rows} rows" if result.rows is not None else "",
            f": {error}" if error else (f": {result.summary}" if result.summary else ""),
            extra={"task": task.name, "slot": attempt.slot.isoformat(), "status": status,
                   "duration": round(duration, 3), "rows": result.rows, "run_id": attempt.run_id},
        )
        if self.metrics is not None:
            self.metrics.observe_run(
                task.name, status, duration, late.total_seconds() if late else None,
                result.rows, now,
            )
        # A skip is a decision (ready.then: skip), not a failure worth a mail.
        if status not in ("succeeded", "skipped") and task.notify.on_failure:
            self._notify(task, attempt, status, error or status)
        self._next_of(task.name)

    def _ledger(self, task: str, run_id: int, items: list[dict[str, str]], now: datetime
                ) -> None:
        try:
            self.store.deliveries.record(run_id, task, items, now)
        except Exception:  # the run's own row matters more than its ledger
            log.exception("run %s: could not record %d deliveries of run %d", task, len(items),
                          run_id)

    def _gate(self, attempt: _Attempt, what: str) -> str | None:
        """A worker is about to send, commit or call: only while the claim is ours."""
        try:
            if self.writer.gate(attempt.run_id, attempt.fence, self.clock()):
                return None
        except Exception as exc:  # cannot confirm the claim: do not risk doing it twice
            reason = mask_secrets(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return f"could not confirm the run's claim before {what}: {reason}"
        return refusal(what)

    def _missed_waiting(self, attempt: _Attempt, now: datetime) -> None:
        """Grace is checked when a run gets its worker, not only when it is claimed: one
        that waited behind busy workers until past its grace does not start at all."""
        task = attempt.task
        waited = now - (attempt.due or attempt.slot)
        why = (f"waited {_ago(waited)} for a free worker, past its grace of "
               f"{_ago(task.policy.grace)}")
        with self._lock:
            self._inflight.pop(attempt.run_id, None)
        self.writer.put(attempt.run_id, attempt.fence, Finished("missed", now, error=why))
        log.warning("run %s missed: slot %s: %s", task.name, attempt.slot.isoformat(), why,
                    extra={"task": task.name, "slot": attempt.slot.isoformat(),
                           "status": "missed"})
        if self.metrics is not None:
            self.metrics.observe_run(task.name, "missed", 0.0, None, None, now)
        self._next_of(task.name)

    def _fenced(self, attempt: _Attempt) -> None:
        """Our claim was taken from us (we were paused or cut off past the lease): the
        attempt stopped before its side effect, and the row is no longer ours to write."""
        with self._lock:
            self._inflight.pop(attempt.run_id, None)
        log.warning("run %s: slot %s was taken over while this daemon could not renew its "
                    "lease; attempt %d stopped before its side effect, nothing recorded here",
                    attempt.task.name, attempt.slot.isoformat(), attempt.number,
                    extra={"task": attempt.task.name, "slot": attempt.slot.isoformat()})
        self._next_of(attempt.task.name)

    def _notify(self, task: Task, attempt: _Attempt, status: RunStatus, error: str) -> None:
        from dbcron.jobs.mail.delivery import notify_failure

        facts: dict[str, Any] = {
            "status": status, "attempt": attempt.number, "host": self.identity.host,
            "run_id": attempt.run_id, "trigger": attempt.trigger,
        }
        try:
            notify_failure(task, attempt.slot, error, facts, self.settings)
        except Exception as exc:  # the failure mail failing must not hide the failure itself
            log.error("%s: could not send the failure notice: %s", task.name,
                      mask_secrets(str(exc)))

    def _next_of(self, name: str) -> None:
        """A run ended: start the next queued slot of the task (overlap: queue)."""
        with self._lock:
            waiting = self._waiting[name]
            if waiting:
                nxt = waiting.popleft()
            else:
                self._active[name] -= 1
                return
        self._start(nxt)

    def record(self, task: Task, slot: datetime, trigger: Trigger, status: RunStatus, now: datetime,
                why: str) -> None:
        if self.store.runs.record(task.name, slot, trigger, status, now, self._claim(), why):
            log.warning("run %s %s: slot %s: %s", task.name, status, slot.isoformat(), why,
                        extra={"task": task.name, "slot": slot.isoformat(), "status": status})
            if self.metrics is not None:
                self.metrics.observe_run(task.name, status, 0.0, None, None, now)


def _wants_signal(task: Task) -> bool:
    return task.ready is not None and task.ready.signal


def _ago(delta: timedelta) -> str:
    from dbcron.durations import format_duration

    return format_duration(delta)
