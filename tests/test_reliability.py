"""No slot lost, none run twice: real daemons killed, paused, skewed and crowded (issue 9).

Each test drives real scheduler-daemon processes and their worker processes with
real signals, on SQLite or the real PostgreSQL, and counts side effects (lines a
function appended, mails a real SMTP server received), not log lines.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import IN_CI, Cli, write_task
from daemon_proc import CLOCK_DAEMON, DaemonProcess, NotifySocket, alive, wait_for
from dbcron.daemon.lifecycle import LATE_AFTER
from dbcron.store import RunRow, Store, open_store
from dbcron.store.runs import AFTER_EFFECT
from smtp_server import SmtpTestServer

pytestmark = pytest.mark.slow
ONCE = {"every": "1h", "start": "2026-01-01T00:00:00+00:00"}  # runs only when asked


@pytest.fixture
def procs() -> Any:
    started: list[DaemonProcess] = []

    def make(state_dir: Path, command: list[str] | None = None, **env: str) -> DaemonProcess:
        proc = DaemonProcess(state_dir, command, **env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.signal(signal.SIGCONT)
            proc.stop()


class PrivatePostgres:
    """A PostgreSQL of the test's own on a spare port, which it may stop and start (the
    shared one on 5432 is never restarted). initdb and pg_ctl run as `postgres` when
    the tests run as root."""

    def __init__(self, data: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            message = "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
            if IN_CI:
                pytest.fail(f"{message}, and CI=true requires them")
            pytest.skip(message)
        self.bin = Path(bins[-1]).parent
        self.data = data
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        data.mkdir(mode=0o700)
        if self.as_user:
            shutil.chown(data, "postgres", "postgres")
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True,
                       capture_output=True, timeout=120, cwd="/")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_pg() -> Any:
    data = Path(tempfile.mkdtemp(prefix="dbcron-pg-")) / "data"
    os.chmod(data.parent, 0o755)
    server = PrivatePostgres(data)
    server.start()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):
        server.stop()
    shutil.rmtree(data.parent, ignore_errors=True)


def manual_runs(store: Store, task: str) -> list[RunRow]:
    return [r for r in store.runs.history(task, limit=100) if r.trigger == "manual"]


def report(directory: Path, name: str, seconds: int, **policy: Any) -> Path:
    """A report whose query takes `seconds` on PostgreSQL, then mails boss@."""
    path = write_task(
        directory, name, kind="report", call=None, schedule=ONCE,
        policy={"timeout": "60s", **policy}, source="src",
        query=f"SELECT 1 AS x FROM pg_sleep({seconds})",
        export={"formats": ["csv"]}, email={"to": ["boss@example.com"]},
    )
    path.write_text(path.read_text().replace("call: null\n", ""))
    return path


def mails_to_boss(server: SmtpTestServer) -> int:
    return len([m for m in server.messages if "boss@example.com" in m.rcpt_tos])


# --- item 1: workers die with their daemon ------------------------------------------------


def test_workers_die_with_a_killed_daemon_and_a_begun_call_is_not_run_again(
    run_cli: Cli, procs: Any, tmp_path: Path, state_dir: Path
) -> None:
    out = tmp_path / "out.txt"
    write_task(tmp_path / "t", "slow", call="jobs:span", args=[str(out), 4], schedule=ONCE,
               policy={"retries": 1})
    run_cli("apply", str(tmp_path / "t"))
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    store.daemons.request_run("slow", datetime.now(UTC))
    first = procs(state_dir).start()
    started = Path(f"{out}.started")
    worker = int(wait_for(lambda: started.exists() and started.read_text().strip(), 15,
                          "the call to start in a worker"))
    begun = time.monotonic()
    first.signal(signal.SIGKILL)  # the daemon alone, as a crash would: not its group
    first.wait()
    wait_for(lambda: not alive(worker), 2, "the worker to die with its daemon")
    second = procs(state_dir).start()
    (run,) = wait_for(lambda: [r for r in manual_runs(store, "slow") if r.status != "running"],
                      10, "the run to be settled")
    time.sleep(max(0.0, 5 - (time.monotonic() - begun)))  # past the old attempt's end
    assert not out.exists(), "the killed daemon's worker finished its call"
    assert started.read_text().split() == [str(worker)], "the call was started again"
    assert (run.status, run.attempt) == ("interrupted", 1)
    assert run.error == "interrupted: the daemon running it stopped or died" + AFTER_EFFECT
    assert "is not retried: its side effect had begun" in second.log()
    assert second.stop() == 0
    store.close()


def test_a_paused_daemons_worker_ends_itself_past_the_attempts_timeout(
    run_cli: Cli, procs: Any, tmp_path: Path, state_dir: Path
) -> None:
    """A stopped daemon cannot kill its overrunning worker; the worker's own watch ends
    it once the attempt is well past its timeout (timeout + 3 kill graces, 7 s here)."""
    out = tmp_path / "out.txt"
    write_task(tmp_path / "t", "stuck", call="jobs:span", args=[str(out), 60], schedule=ONCE,
               policy={"timeout": "1s"})
    run_cli("apply", str(tmp_path / "t"))
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    store.daemons.request_run("stuck", datetime.now(UTC))
    daemon = procs(state_dir).start()
    started = Path(f"{out}.started")
    worker = int(wait_for(lambda: started.exists() and started.read_text().strip(), 15,
                          "the call to start in a worker"))
    daemon.signal(signal.SIGSTOP)
    wait_for(lambda: not alive(worker), 15, "the worker to end itself")
    daemon.signal(signal.SIGCONT)
    assert not out.exists(), "the call ran to its end"
    assert daemon.stop() == 0
    store.close()


def test_a_killed_daemons_report_is_retried_once_and_mailed_once(
    run_cli: Cli, procs: Any, tmp_path: Path, state_dir: Path, pg_url: str,
    smtp_server: SmtpTestServer,
) -> None:
    """Killed mid-query (before its side effect): the restarted daemon retries the slot,
    and the old worker, dead with its daemon, does not mail as well."""
    env = {"DBCRON_SOURCE_SRC": pg_url, "DBCRON_SMTP_HOST": "127.0.0.1",
           "DBCRON_SMTP_PORT": str(smtp_server.port)}
    assert run_cli("apply", str(report(tmp_path / "t", "rep", 3, retries=1)),
                   **env).exit_code == 0
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    store.daemons.request_run("rep", datetime.now(UTC))
    first = procs(state_dir, **env).start()
    wait_for(lambda: "run rep started" in first.log(), 15, "the report to start")
    first.signal(signal.SIGKILL)
    first.wait()
    second = procs(state_dir, **env).start()
    (run,) = wait_for(lambda: [r for r in manual_runs(store, "rep") if r.status == "succeeded"],
                      30, "the retried report")
    time.sleep(2)  # time for a surviving old worker to mail too
    assert run.attempt == 2
    assert mails_to_boss(smtp_server) == 1
    assert second.stop() == 0
    store.close()


# --- items 3 and 4: fencing, and leases on the store's clock --------------------------------


def test_a_paused_daemon_is_fenced_off_and_sends_nothing(
    run_cli: Cli, procs: Any, tmp_path: Path, pg_url: str, smtp_server: SmtpTestServer
) -> None:
    env = {"DBCRON_STORE": pg_url, "DBCRON_LEASE_SECONDS": "3", "DBCRON_SOURCE_SRC": pg_url,
           "DBCRON_SMTP_HOST": "127.0.0.1", "DBCRON_SMTP_PORT": str(smtp_server.port)}
    assert run_cli("apply", str(report(tmp_path / "t", "rep", 8, retries=1)),
                   **env).exit_code == 0
    store = open_store(pg_url)
    a = procs(tmp_path / "host-a", **env).start()
    store.daemons.request_run("rep", datetime.now(UTC))
    wait_for(lambda: "run rep started" in a.log(), 15, "daemon A to start the report")
    b = procs(tmp_path / "host-b", **env).start()
    a.signal(signal.SIGSTOP)  # A's worker runs on; A cannot renew its lease
    wait_for(lambda: "retrying interrupted slot" in b.log(), 15, "B to take the run over")
    time.sleep(6)  # A's worker ends its query meanwhile and reaches its gate
    a.signal(signal.SIGCONT)
    (run,) = wait_for(lambda: [r for r in manual_runs(store, "rep") if r.status == "succeeded"],
                      30, "B's attempt to succeed")
    wait_for(lambda: "was taken over while this daemon could not renew" in a.log(), 10,
             "A to learn it was fenced off")
    time.sleep(1)
    assert mails_to_boss(smtp_server) == 1
    assert (run.attempt, run.pid) == (2, b.proc.pid)  # type: ignore[union-attr]
    assert manual_runs(store, "rep")[0].status == "succeeded"  # A did not overwrite it
    assert a.stop() == 0 and b.stop() == 0
    store.close()


def test_a_fast_clock_does_not_take_a_live_run_for_dead(
    run_cli: Cli, procs: Any, tmp_path: Path, pg_url: str
) -> None:
    out = tmp_path / "out.txt"
    env = {"DBCRON_STORE": pg_url}
    write_task(tmp_path / "t", "slow", call="jobs:span", args=[str(out), 6], schedule=ONCE,
               policy={"retries": 1})
    assert run_cli("apply", str(tmp_path / "t"), **env).exit_code == 0
    store = open_store(pg_url)
    a = procs(tmp_path / "host-a", **env).start()
    store.daemons.request_run("slow", datetime.now(UTC))
    wait_for(lambda: "run slow started" in a.log(), 15, "daemon A to start the run")
    fast = procs(tmp_path / "host-b", CLOCK_DAEMON, TEST_CLOCK_SHIFT="90", **env).start()
    (run,) = wait_for(lambda: [r for r in manual_runs(store, "slow") if r.status != "running"],
                      20, "the run to end")
    assert (run.status, run.attempt) == ("succeeded", 1), run
    assert len(out.read_text().splitlines()) == 1
    assert "interrupted" not in fast.log()
    assert a.stop() == 0 and fast.stop() == 0
    store.close()


# --- item 2: overlap decided against the store --------------------------------------------


def test_overlap_skip_holds_across_three_daemons(
    run_cli: Cli, procs: Any, tmp_path: Path, pg_url: str
) -> None:
    out = tmp_path / "out.txt"
    env = {"DBCRON_STORE": pg_url}
    write_task(tmp_path / "t", "long", call="jobs:span", args=[str(out), 2.5],
               schedule={"every": "1s"}, policy={"overlap": "skip"})
    assert run_cli("apply", str(tmp_path / "t"), **env).exit_code == 0
    daemons = [procs(tmp_path / f"host-{n}", **env).start() for n in "abc"]
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 4, 30,
             "four runs between the three daemons")
    for d in daemons:
        assert d.stop() == 0
    spans = sorted(tuple(map(float, line.split()[:2])) for line in out.read_text().splitlines())
    overlapping = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlapping == [], f"{len(overlapping)} of {len(spans)} runs overlapped"
    store = open_store(pg_url)
    runs = store.runs.history("long", limit=1000)
    store.close()
    skipped = [r for r in runs if r.status == "skipped"]
    assert skipped and all(r.error == "the previous run was still running" for r in skipped)


# --- item 9: a damaged SQLite store -----------------------------------------------------


@pytest.mark.parametrize("damage", ["empty", "page 4 overwritten"])
def test_a_damaged_sqlite_store_is_refused_before_any_write(
    run_cli: Cli, procs: Any, tmp_path: Path, state_dir: Path, damage: str
) -> None:
    write_task(tmp_path / "t", "x", schedule={"every": "1s"})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    db = state_dir / "dbcron.db"
    if damage == "empty":
        db.write_bytes(b"")
        expected = f"Error: the store {db} is empty (0 bytes), not a dbcron store: "
    else:
        with open(db, "r+b") as handle:
            handle.seek(4096 * 3)
            handle.write(b"\xff" * 4096)
        expected = (f"Error: the store {db} is damaged (SQLite quick_check: *** in database "
                    "main *** Page 4: btreeInitPage() returns error code 11): ")
    before = db.read_bytes()
    sock = NotifySocket(tmp_path / "notify.sock")
    proc = procs(state_dir, NOTIFY_SOCKET=str(sock.path)).start(wait_ready=False)
    assert proc.wait(timeout=20) == 1
    messages = sock.drain()
    sock.close()
    lines = proc.log().splitlines()
    assert len(lines) == 1, proc.log()
    assert lines[0] == expected + (
        "stop every dbcron process using it and restore the file from your backup "
        "(or move it away to start a new, empty store)")
    assert db.read_bytes() == before, "the daemon wrote to the damaged store"
    assert messages == [f"STATUS=cannot start: {lines[0].removeprefix('Error: ')}\nERRNO=117"]


# --- item 10: grace is checked when a run gets its worker ---------------------------------


def test_a_run_waiting_for_a_worker_past_its_grace_is_missed_not_started_late(
    run_cli: Cli, procs: Any, tmp_path: Path, state_dir: Path
) -> None:
    write_task(tmp_path / "t", "hog", call="jobs:span", args=[str(tmp_path / "hog.txt"), 4],
               schedule=ONCE)
    write_task(tmp_path / "t", "tick", call="jobs:append", kwargs={"path": str(tmp_path / "x")},
               schedule={"every": "1s"}, policy={"grace": "1s", "overlap": "skip"})
    run_cli("apply", str(tmp_path / "t"))
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    proc = procs(state_dir, DBCRON_MAX_WORKERS="1").start()
    wait_for(lambda: "run tick succeeded" in proc.log(), 15, "tick to run")
    store.daemons.request_run("hog", datetime.now(UTC))  # takes the only worker for 4 s
    wait_for(lambda: (tmp_path / "hog.txt").exists(), 20, "the hog to end")
    wait_for(lambda: "run tick succeeded" in proc.log().split("run hog succeeded")[-1], 10,
             "tick to run again")
    assert proc.stop() == 0
    runs = [r for r in store.runs.history("tick", limit=1000) if r.trigger == "schedule"]
    store.close()
    missed = [r for r in runs if r.status == "missed"]
    assert missed and all(r.error is not None and "for a free worker, past its grace of 1s"
                          in r.error for r in missed), [(r.status, r.error) for r in runs]
    late = [r for r in runs if r.started_at and (r.started_at - r.scheduled_for).total_seconds()
            > 1.5]
    assert late == [], "a run started past its grace"
    skipped = {r.error for r in runs if r.status == "skipped"}
    assert skipped <= {"the previous run was still waiting for a free worker",
                       "the previous run was still running"}
    assert "the previous run was still waiting for a free worker" in skipped


# --- item 7: a suspend (or a forward clock step) goes through the catch-up policy ----------


def test_a_suspended_daemon_applies_the_catchup_policy_to_the_burst(
    run_cli: Cli, procs: Any, tmp_path: Path, state_dir: Path
) -> None:
    for name, policy in (("none", "none"), ("latest", "latest")):
        write_task(tmp_path / "t", name, call="jobs:append",
                   kwargs={"path": str(tmp_path / f"{name}.txt")}, schedule={"every": "1s"},
                   policy={"catchup": policy, "grace": "1h"})
    run_cli("apply", str(tmp_path / "t"))
    proc = procs(state_dir).start()
    wait_for(lambda: "run latest succeeded" in proc.log(), 15, "the tasks to run")
    proc.signal(signal.SIGSTOP)  # as a laptop lid or a VM pause: APScheduler wakes to a burst
    paused = datetime.now(UTC)
    time.sleep(6)
    proc.signal(signal.SIGCONT)
    resumed = datetime.now(UTC)
    time.sleep(2.5)
    assert proc.stop() == 0
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")

    def during(task: str) -> tuple[list[RunRow], list[RunRow]]:
        """Rows of slots due while it was stopped: the burst, and the one still on time."""
        rows = [r for r in store.runs.history(task, limit=1000)
                if paused < r.scheduled_for < resumed]
        return ([r for r in rows if r.trigger == "catchup"],
                [r for r in rows if r.trigger == "schedule"])

    (none, none_now), (latest, latest_now) = during("none"), during("latest")
    store.close()
    assert len(none) >= 4 and {r.status for r in none} == {"missed"}, none
    assert all(r.error == "missed while the daemon was suspended or its clock jumped "
               "(catchup: none)" for r in none)
    assert [r.status for r in latest] == ["succeeded"] + ["missed"] * (len(latest) - 1)
    assert latest[0].scheduled_for == max(r.scheduled_for for r in latest)
    for on_time in none_now + latest_now:  # at most the newest slot, within LATE_AFTER
        assert on_time.scheduled_for > resumed - 2 * LATE_AFTER, on_time


# --- item 5: slots due during a store outage run once it is back --------------------------


def test_slots_due_while_the_store_is_down_run_when_it_is_back(
    run_cli: Cli, procs: Any, tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    out = tmp_path / "out.txt"
    env = {"DBCRON_STORE": private_pg.url}
    write_task(tmp_path / "t", "tick", call="jobs:append", kwargs={"path": str(out)},
               schedule={"every": "1s"}, policy={"grace": "1h", "overlap": "queue"})
    assert run_cli("apply", str(tmp_path / "t"), **env).exit_code == 0
    sock = NotifySocket(tmp_path / "notify.sock")
    proc = procs(tmp_path / "host", NOTIFY_SOCKET=str(sock.path), **env).start()
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 2, 15, "two runs")
    private_pg.stop()
    down = datetime.now(UTC)
    time.sleep(8)
    private_pg.start()
    up = datetime.now(UTC)
    store = open_store(private_pg.url)
    wait_for(lambda: len([r for r in store.runs.history("tick", limit=1000)
                          if r.scheduled_for > up and r.status == "succeeded"]) >= 2, 30,
             "runs after the store came back")
    assert proc.stop() == 0
    messages = sock.drain()
    sock.close()
    runs = sorted(store.runs.history("tick", limit=1000), key=lambda r: r.scheduled_for)
    store.close()
    slots = [r.scheduled_for for r in runs if r.trigger == "schedule"]
    gaps = [(a, b) for a, b in itertools.pairwise(slots) if (b - a).total_seconds() != 1]
    assert gaps == [], "slots without a row"
    outage = [r for r in runs if down < r.scheduled_for < up]
    assert len(outage) >= 7
    assert {r.status for r in outage} == {"succeeded"}, [(r.status, r.error) for r in outage]
    succeeded = [r for r in runs if r.status == "succeeded"]
    assert len(out.read_text().splitlines()) == len(succeeded), "a slot ran twice"
    assert any(m.startswith("STATUS=store unreachable since ") for m in messages), messages
    assert "the store is back: " in proc.log()


def test_overlap_queue_holds_across_three_daemons(
    run_cli: Cli, procs: Any, tmp_path: Path, pg_url: str
) -> None:
    out = tmp_path / "out.txt"
    env = {"DBCRON_STORE": pg_url}
    write_task(tmp_path / "t", "long", call="jobs:span", args=[str(out), 1.5],
               schedule={"every": "1s"}, policy={"overlap": "queue"})
    assert run_cli("apply", str(tmp_path / "t"), **env).exit_code == 0
    daemons = [procs(tmp_path / f"host-{n}", **env).start() for n in "abc"]
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 5, 40,
             "five runs between the three daemons")
    for d in daemons:
        assert d.stop() == 0
    spans = sorted(tuple(map(float, line.split()[:2])) for line in out.read_text().splitlines())
    overlapping = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlapping == [], f"{len(overlapping)} of {len(spans)} runs overlapped"
