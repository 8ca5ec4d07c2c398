"""The scheduler daemon's lifecycle: lock, load, signals, reload diff, heartbeat, stop.

Signal handlers only set flags and wake the loop; the loop (one thread) acts on
them, reads the clock once per tick and passes it down. APScheduler is only
the timer: due slots go to a dispatcher thread that asks the runner to claim
and run them, so a burst of 1,000 due slots never delays the heartbeat or the
systemd watchdog.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import select
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from dbcron.daemon.catchup import plan_catchup, too_late
from dbcron.daemon.lock_file import hold
from dbcron.daemon.runner import Identity, Runner
from dbcron.daemon.sdnotify import Notifier, watchdog_interval
from dbcron.daemon.worker_pool import WorkerPool
from dbcron.errors import DaemonError, StoreError
from dbcron.model import Task
from dbcron.schedule import ScheduleSpec, fires_between, next_fire
from dbcron.settings import Settings
from dbcron.store import DaemonRow, Store, TaskRow, open_store
from dbcron.validation import not_done
from dbcron.vocabulary import Trigger

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from dbcron.daemon.http_api import HttpServer
    from dbcron.daemon.metrics import Metrics

log = logging.getLogger("dbcron.daemon")
HEARTBEAT_SECONDS = 5.0
# Reloads start at least this far apart: a storm of SIGHUPs (a script applying 200
# files one by one) gives one reload at once and one after the storm, not 200.
RELOAD_SPACING = 1.0
HOLD_RETRY = 1.0  # seconds between offers of slots held while the store is unreachable
# A task's newest slot handed over within this of its time runs as scheduled; the
# others of the same hand-over are a burst of late slots (see _dispatch).
LATE_AFTER = timedelta(seconds=2)
HOUSEKEEPING_EVERY = timedelta(days=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Loaded:
    digest: str
    task: Task
    spec: ScheduleSpec


class Daemon:
    def __init__(
        self,
        settings: Settings,
        environ: dict[str, str],
        clock: Callable[[], datetime] = utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.notifier = Notifier.from_env(environ)
        self.watchdog = watchdog_interval(environ)
        self.identity = Identity(socket.gethostname(), os.getpid(), str(uuid.uuid4()))
        # The heartbeat renews leases: at least three beats fit in one.
        self.heartbeat = min(HEARTBEAT_SECONDS, settings.lease_seconds / 3)
        self.tasks: dict[str, _Loaded] = {}
        self.revision = -1
        self.reload_requested = False
        self.stopping = False
        self.stop_now = False
        # Signal handlers only set flags and write a byte here (a self-pipe): an Event's
        # lock, taken inside a handler that interrupted the loop holding it, deadlocks.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._dispatcher: threading.Thread | None = None
        self._due: queue.Queue[tuple[str, list[datetime] | None] | None] = queue.Queue()
        self._locks: list[int] = []
        self._last_reload: datetime | None = None
        self._last_status = ""
        self.http: HttpServer | None = None
        # Per task: (definition digest, the slot awaited); a changed schedule starts afresh.
        self._expected: dict[str, tuple[str, datetime | None]] = {}
        self._store_trouble: datetime | None = None  # since when the store fails us
        self._held = 0  # due slots the dispatcher holds until the store is back
        self.store: Store
        self.runner: Runner
        self.pool: WorkerPool
        self.scheduler: BackgroundScheduler

    # --- signals: set flags, wake the loop ----------------------------------------------

    def on_reload_signal(self, signum: int = signal.SIGHUP, frame: FrameType | None = None) -> None:
        self.reload_requested = True
        self._wake()

    def on_stop_signal(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        if self.stopping:
            self.stop_now = True  # a second signal: do not wait for the drain
        self.stopping = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already full: the loop wakes anyway
            os.write(self._wake_w, b".")

    def _sleep(self, seconds: float) -> None:
        """Wait up to `seconds`, less if a signal handler woke us."""
        ready, _, _ = select.select([self._wake_r], [], [], seconds)
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGHUP, self.on_reload_signal)
        signal.signal(signal.SIGTERM, self.on_stop_signal)
        signal.signal(signal.SIGINT, self.on_stop_signal)

    # --- start --------------------------------------------------------------------------

    def start(self) -> None:
        settings = self.settings
        self._locks.append(hold(settings.pidfile, f"state directory {settings.state_dir}"))
        if settings.store.startswith("sqlite:///"):
            db_path = Path(settings.store.removeprefix("sqlite:///"))
            self._locks.append(hold(db_path.with_name(db_path.name + ".lock"),
                                     f"store {db_path}"))
        if self.metrics is not None and settings.metrics_address:
            # After the locks: a second daemon says who holds the store, not "port in use".
            try:
                self.metrics.start_server(settings.metrics_address)
            except (ValueError, OSError) as exc:
                raise DaemonError(f"DBCRON_METRICS_ADDRESS={settings.metrics_address}: {exc}"
                                  ) from None
        try:
            self.store = open_store(settings.store, check=True)
        except StoreError as exc:
            # systemd shows why in `systemctl status`, and Restart= keeps hitting the
            # same wall: say it there as well as on stderr.
            self.notifier.send(STATUS=f"cannot start: {exc}", ERRNO=errno.EUCLEAN)
            raise
        now = self.clock()
        self.store.daemons.register(DaemonRow(
            id=self.identity.daemon_id or "", host=self.identity.host, pid=self.identity.pid,
            started_at=now, heartbeat_at=now, last_reload_at=None, tasks_loaded=0,
            status="starting", stopped_at=None, heartbeat_seconds=self.heartbeat,
        ))
        if settings.http_address:
            self._start_http(settings.http_address)
        self.pool = WorkerPool(settings.max_workers, settings.log_level, settings.log_format)
        self.runner = Runner(self.store, settings, self.pool, self.identity, self.clock,
                             self.metrics)
        from apscheduler.schedulers.background import BackgroundScheduler

        from dbcron.daemon.scheduler import SlotExecutor

        self.scheduler = BackgroundScheduler(
            executors={"default": SlotExecutor()}, timezone=UTC,
            job_defaults={"coalesce": False, "misfire_grace_time": None, "max_instances": 1},
        )
        stale = self._recover(now)
        self.revision = self.store.tasks.revision()
        self._load(self.store.tasks.all(enabled_only=True), now, catch_up=True)
        self._resume(stale, now)
        self._dispatcher = threading.Thread(target=self._dispatch, name="dbcron-dispatch",
                                            daemon=True)
        self._dispatcher.start()
        self.scheduler.start()
        self._last_reload = now
        if self.metrics is not None:
            self.metrics.set_tasks_loaded(len(self.tasks))
            self.metrics.reloaded(now)
        self._beat(now)
        self.notifier.ready()
        self._status()
        log.info("scheduler-daemon ready: %d tasks loaded, store %s, pid %d%s",
                 len(self.tasks), _masked(settings.store), os.getpid(),
                 f", metrics on {settings.metrics_address}" if self.metrics else "")
        if not self.tasks:
            self._say_nothing_runs(settings)

    def _say_nothing_runs(self, settings: Settings) -> None:
        """A daemon started in the wrong directory finds (or creates) an empty store: say so."""
        stored = len(self.store.tasks.summaries())
        what = f"holds {stored} task(s), all disabled" if stored else "holds no tasks"
        log.warning(
            "the store %s %s: nothing will run. Add tasks with 'manage-tasks apply DIR' using "
            "the same settings (run where this daemon runs, or DBCRON_STATE_DIR=%s), or start "
            "the daemon where the store with your tasks is",
            _masked(settings.store), what, settings.state_dir,
        )

    def _start_http(self, address: str) -> None:
        """The HTTP API and status page; its writes go through the store like the CLI's,
        and a change wakes the loop as SIGHUP would."""
        from dbcron.daemon.http_api import Api, HttpServer

        self.http = HttpServer(Api(self.store, self.settings, self.clock,
                                   self.on_reload_signal, self._wake))
        try:
            host, port = self.http.start(address)
        except (ValueError, OSError) as exc:
            raise DaemonError(f"DBCRON_HTTP_ADDRESS={address}: {exc}") from None
        log.info("HTTP API and status page on http://%s:%d/",
                 f"[{host}]" if ":" in host else host, port)

    def _recover(self, now: datetime) -> list[Any]:
        """Runs left `running` by a daemon that is gone become interrupted."""
        note = "interrupted: the daemon running it stopped or died"
        stale = self.store.runs.interrupt_expired(now, note)
        if self._sole_owner():
            stale += self.store.runs.interrupt_orphans(self.identity.daemon_id or "", now, note)
        for run in stale:
            log.warning("run %s interrupted: slot %s (daemon pid %s on %s is gone)",
                        run.task, run.scheduled_for.isoformat(), run.pid, run.host,
                        extra={"task": run.task, "status": "interrupted"})
        return stale

    def _sole_owner(self) -> bool:
        """On SQLite our lock proves no other daemon lives, so its runs need not wait for
        their leases (a `run --local` in a CLI is not a daemon and keeps its lease)."""
        return self.settings.store.startswith("sqlite")

    def _resume(self, stale: list[Any], now: datetime) -> None:
        """Retry interrupted runs whose task allows another attempt and is within grace."""
        for run in stale:
            loaded = self.tasks.get(run.task)
            if loaded is None or run.attempt > loaded.task.policy.retries:
                continue
            if run.effect_at is not None:
                # Its mail may be out, its commit made, its function called: a retry
                # could do it twice, and at most once is the promise.
                log.warning("run %s: interrupted slot %s is not retried: its side effect had "
                            "begun", run.task, run.scheduled_for.isoformat(),
                            extra={"task": run.task, "status": "interrupted"})
                continue
            if run.trigger != "manual" and too_late(run.scheduled_for, now,
                                                    loaded.task.policy.grace):
                continue
            if self.runner.resume(loaded.task, run.id, run.fence, run.scheduled_for,
                                  run.trigger, run.attempt + 1, now):
                log.info("run %s: retrying interrupted slot %s as attempt %d", run.task,
                         run.scheduled_for.isoformat(), run.attempt + 1)

    # --- loading and reloading ----------------------------------------------------------

    def _parse(self, row: TaskRow) -> _Loaded | None:
        try:
            task = Task.model_validate(row.data)
        except ValueError as exc:
            log.error("task %s is invalid and was left out: %s", row.name,
                      str(exc).replace("\n", "; "))
            return None
        for problem in not_done(task):
            log.warning("task %s: %s (stored before this was refused; it runs without it)",
                        row.name, problem)
        spec = ScheduleSpec.from_dict(row.data["schedule"], self.settings.timezone)
        return _Loaded(row.digest, task, spec)

    def _load(self, rows: list[TaskRow], now: datetime, catch_up: bool) -> None:
        from dbcron.daemon.scheduler import SlotTrigger

        horizons = self.store.runs.last_slots() if catch_up else {}
        for row in rows:
            loaded = self._parse(row)
            if loaded is None:
                self._unload(row.name)
                continue
            self.tasks[row.name] = loaded
            if catch_up:
                self._catch_up(loaded, horizons.get(row.name) or row.created_at, now)
            first = next_fire(loaded.spec, self._fired_until(row.name, now))
            if first is None:
                self._unschedule(row.name)
                continue
            self.scheduler.add_job(
                self._on_fire, SlotTrigger(loaded.spec), args=[row.name], id=row.name,
                name=row.name, next_run_time=first, replace_existing=True,
            )

    def _fired_until(self, name: str, now: datetime) -> datetime:
        """Where a (re)loaded job's schedule resumes: after `now`, unless its current job
        has a slot pending that APScheduler has not fired yet.

        A reload landing a few ms after a slot is due, before the scheduler's thread
        got to it, would otherwise replace the job past that slot and lose it.
        """
        job = self.scheduler.get_job(name)
        pending: datetime | None = job.next_run_time if job is not None else None
        if pending is not None and pending <= now:
            return pending - timedelta(microseconds=1)
        return now

    def _unload(self, name: str) -> None:
        self.tasks.pop(name, None)
        self._unschedule(name)

    def _unschedule(self, name: str) -> None:
        if self.scheduler.get_job(name) is not None:
            self.scheduler.remove_job(name)

    def _catch_up(self, loaded: _Loaded, since: datetime, now: datetime) -> None:
        self._plan_late(loaded.task, fires_between(loaded.spec, since, now), now,
                        "while no daemon ran")

    def _plan_late(self, task: Task, slots: Iterable[datetime], now: datetime,
                   when: str) -> None:
        """Late slots (oldest first) go by the task's catch-up policy and its caps."""
        plan = plan_catchup(slots, task.policy.catchup, task.policy.grace, now)
        why = f"missed {when} (catchup: {task.policy.catchup})"
        for slot in plan.missed:
            self.runner.record(task, slot, "catchup", "missed", now, why)
        if plan.uncounted:
            log.warning("%s: %d older slots were missed %s", task.name, plan.uncounted, when,
                        extra={"task": task.name, "status": "missed"})
        for slot in plan.run:
            self.runner.submit(task, slot, "catchup", now)

    def reload(self, now: datetime) -> None:
        """Re-read the store; add, change or remove only the jobs whose definition changed."""
        started = time.monotonic()
        self.notifier.reloading(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)
        # Read everything first: a store error here leaves the jobs as they were, and the
        # revision unchanged, so the next tick or poll tries again.
        revision = self.store.tasks.revision()
        digests = self.store.tasks.digests()
        gone = [n for n in self.tasks if n not in digests]
        changed = [n for n, d in digests.items() if n not in self.tasks or
                   self.tasks[n].digest != d]
        rows = self.store.tasks.get_many(changed)
        for name in gone:
            self._unload(name)
        # Changed tasks are replaced in place: a slot firing meanwhile finds the old or the
        # new definition, never none.
        self._load(rows, now, catch_up=False)
        self.revision = revision
        self._last_reload = now
        if self.metrics is not None:
            self.metrics.reloaded(now)
            self.metrics.set_tasks_loaded(len(self.tasks))
        self.notifier.ready()
        self._status()
        log.info("reloaded in %.0f ms: %d added or changed, %d removed, %d tasks loaded",
                 (time.monotonic() - started) * 1000, len(rows), len(gone), len(self.tasks))

    # --- firing -------------------------------------------------------------------------

    def _on_fire(self, name: str, slots: list[datetime] | None = None) -> None:
        """Called in APScheduler's thread with the due slots: only queue, never block it.

        (`slots` has a default only because APScheduler checks a job's arguments
        when it is added; its executor here always passes them.)
        """
        self._due.put((name, slots))

    def _dispatch(self) -> None:
        """Claim what is due in batches: everything queued since the last pass at once.

        While the store is unreachable the due slots are held here and offered again
        every second, with those that come due meanwhile; once it is back they go
        through the usual rules (grace, overlap), so an outage shorter than a task's
        grace loses none of its slots.
        """
        held: list[tuple[str, list[datetime] | None] | None] = []
        while True:
            try:
                items = [*held, self._due.get(timeout=HOLD_RETRY if held else None)]
            except queue.Empty:
                items = list(held)
            while len(items) < 5000 + len(held):
                try:
                    items.append(self._due.get_nowait())
                except queue.Empty:
                    break
            if None in items or self.stopping:
                return
            try:
                due: list[tuple[Task, datetime, Trigger]] = []
                now = self.clock()
                for name, slots in (i for i in items if i is not None):
                    loaded = self.tasks.get(name)
                    if loaded is None or not slots:
                        continue
                    if len(slots) == 1:
                        due.append((loaded.task, slots[0], "schedule"))
                        continue
                    # Several slots at once: the clock stepped forward, the host was
                    # suspended, or the daemon stalled. The catch-up policy applies to
                    # them as after downtime (an every-second task after a 3 h step must
                    # not run 10,000 times); the newest, if still on time, runs as usual.
                    late = slots if now - slots[-1] > LATE_AFTER else slots[:-1]
                    self._plan_late(loaded.task, late, now,
                                    "while the daemon was suspended or its clock jumped")
                    if len(late) < len(slots):
                        due.append((loaded.task, slots[-1], "schedule"))
                self.runner.submit_many(due, now)
            except Exception as exc:  # the store down must not kill the dispatcher
                count = sum(len(i[1] or ()) for i in items if i is not None)
                if not held:
                    log.error("the store is unreachable; %d due slot(s) held until it is back: "
                              "%s", count, _first_line(exc))
                self._store_trouble = self._store_trouble or self.clock()
                held, self._held = items, count
                continue
            if held:
                log.info("the store is back: %d held slot(s) handed over", self._held)
            held, self._held = [], 0

    def _take_requests(self, now: datetime) -> None:
        for request in self.store.daemons.take_requests(self.identity.daemon_id or ""):
            row = self.store.tasks.get(request.task)
            loaded = self._parse(row) if row is not None else None
            if loaded is None:
                log.error("run-now request for %s: no such valid task", request.task)
                continue
            run_id = self.runner.submit(loaded.task, request.slot or request.requested_at,
                                        request.trigger or "manual", now)
            if run_id is not None:
                self.store.daemons.answer(request.id, run_id)

    # --- the loop -----------------------------------------------------------------------

    def loop(self) -> None:
        tick = min(1.0, self.watchdog) if self.watchdog else 1.0
        next_beat = next_poll = next_dog = next_reload = time.monotonic()
        next_housekeeping = self.clock() + timedelta(minutes=1)
        while not self.stopping:
            wait = tick
            if self.reload_requested:  # a reload held back by RELOAD_SPACING
                wait = max(0.0, min(tick, next_reload - time.monotonic()))
            self._sleep(wait)
            now = self.clock()
            mono = time.monotonic()
            try:
                if self.reload_requested and mono >= next_reload:
                    self.reload_requested = False
                    next_reload = mono + RELOAD_SPACING
                    try:
                        self.reload(now)
                    except Exception:
                        self.reload_requested = True  # try again next tick
                        raise
                if mono >= next_poll:
                    next_poll = mono + self.settings.poll_seconds
                    if self.store.tasks.revision() != self.revision:
                        next_reload = mono + RELOAD_SPACING
                        self.reload(now)
                self._take_requests(now)
                self.runner.follow_signals(now)
                self.runner.tick(now)
                if mono >= next_beat:
                    next_beat = mono + self.heartbeat
                    self._beat(now)
                if now >= next_housekeeping:
                    next_housekeeping = now + HOUSEKEEPING_EVERY
                    self._housekeeping(now)
                if self._store_trouble is not None and not self._held:
                    self._store_trouble = None
                    self._status()
            except Exception as exc:  # the store down: log, keep the loop (and watchdog) alive
                if self._store_trouble is None:
                    self._store_trouble = now
                    log.error("daemon loop error (retrying every tick, logged once): %s",
                              _first_line(exc), exc_info=True)
                self._status()
            if self.watchdog and mono >= next_dog:
                next_dog = mono + self.watchdog
                self.notifier.watchdog()

    def _beat(self, now: datetime) -> None:
        line = self._status()
        self.store.daemons.beat(
            self.identity.daemon_id or "", now, tasks_loaded=len(self.tasks),
            last_reload_at=self._last_reload, status=line,
        )
        self.store.runs.renew_leases(self.runner.inflight(), self.runner.lease, now)
        if self.metrics is not None:
            self._watch_overdue(now)
        if not self._sole_owner():
            stale = self.store.runs.interrupt_expired(
                now, "interrupted: the daemon running it stopped renewing its lease"
            )
            self._resume(stale, now)

    def _watch_overdue(self, now: datetime) -> None:
        """Expected next slot and `overdue` per task, for the metrics (daemon/overdue.py)."""
        from dbcron.daemon.overdue import watch

        assert self.metrics is not None
        last = self.store.runs.last_slots()
        states = {}
        expected = {}
        for name, loaded in list(self.tasks.items()):
            digest, awaited = self._expected.get(name, (loaded.digest, None))
            states[name] = watch(loaded.spec, awaited if digest == loaded.digest else None,
                                 last.get(name), now)
            expected[name] = (loaded.digest, states[name][0])
        self._expected = expected
        self.metrics.set_expected(states)

    def _status(self) -> str:
        """STATUS= for `systemctl status`, sent only when the line changed; returns it."""
        line = self._status_line()
        if line != self._last_status:
            self._last_status = line
            self.notifier.status(line)
        return line

    def _housekeeping(self, now: datetime) -> None:
        def work() -> None:
            from dbcron.daemon.housekeeping import prune

            try:
                report = prune(self.store, self.settings, now)
                log.info("housekeeping: %s", report)
            except Exception:
                log.exception("housekeeping failed")

        threading.Thread(target=work, name="dbcron-housekeeping", daemon=True).start()

    def _status_line(self) -> str:
        if self._store_trouble is not None:
            held = f"; {self._held} due slot(s) held" if self._held else ""
            return (f"store unreachable since {self._store_trouble:%H:%M:%S %Z}{held}; "
                    "retrying every second")
        jobs = self.scheduler.get_jobs() if self.scheduler.running else []
        if not jobs:
            return f"{len(self.tasks)} tasks; nothing scheduled"
        first = jobs[0]
        tz = self.tasks[first.id].spec.tz if first.id in self.tasks else UTC
        when = first.next_run_time.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
        return f"{len(self.tasks)} tasks; next {first.id} at {when}"

    # --- stop ---------------------------------------------------------------------------

    def stop(self) -> None:
        """No new slots; running runs drain for drain_seconds; the rest become interrupted."""
        self.notifier.stopping()
        log.info("stopping: waiting up to %.0fs for %d running run(s)",
                 self.settings.drain_seconds, self.runner.active())
        self.scheduler.shutdown(wait=False)
        if self.http is not None:
            self.http.stop()
        self.runner.stop_accepting()
        self._due.put(None)
        deadline = time.monotonic() + self.settings.drain_seconds
        while not self.stop_now and time.monotonic() < deadline:
            if self.runner.drain(0.2):
                break
            if self.watchdog:
                self.notifier.watchdog()
        if self._dispatcher is not None:
            self._dispatcher.join(10)  # no claim may land after the interrupts below
        self.pool.close(kill_busy=True)
        self.runner.shutdown()
        now = self.clock()
        left = self.store.runs.interrupt_daemon(
            self.identity.daemon_id or "", now, "interrupted: the daemon stopped before it ended"
        )
        if left:
            log.warning("stopped with %d run(s) unfinished; marked interrupted", left)
        self.store.daemons.stopped(self.identity.daemon_id or "", now)
        self.store.close()
        self.settings.pidfile.unlink(missing_ok=True)  # before unlocking: a new daemon's is its own
        for fd in self._locks:
            os.close(fd)
        log.info("scheduler-daemon stopped")

    def run(self) -> None:
        self.install_signal_handlers()
        self.start()
        self.loop()
        self.stop()


def _first_line(exc: Exception) -> str:
    """A store error in one line (SQLAlchemy's carry the SQL and a link below)."""
    from dbcron.secrets import mask_secrets

    text = str(exc).strip()
    return mask_secrets(text.splitlines()[0] if text else type(exc).__name__)


def _masked(url: str) -> str:
    from dbcron.secrets import mask_secrets

    return mask_secrets(url)
