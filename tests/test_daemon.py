"""The daemon as a real process receiving real signals, on a temporary SQLite store."""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli, write_task
from daemon_proc import DaemonProcess, NotifySocket, wait_for
from dbcron.store import Store, open_store
from dbcron.store.runs import AFTER_EFFECT

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(state_dir: Path) -> Any:
    started: list[DaemonProcess] = []

    def make(**env: str) -> DaemonProcess:
        proc = DaemonProcess(state_dir, **env)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


def store_of(state_dir: Path) -> Store:
    return open_store(f"sqlite:///{state_dir / 'dbcron.db'}")


def runs_of(state_dir: Path, task: str) -> list[Any]:
    s = store_of(state_dir)
    try:
        return list(reversed(s.runs.history(task=task, limit=10_000)))
    finally:
        s.close()


def lines(path: Path) -> int:
    """Lines an `append` task wrote so far (none before its first run)."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def append_task(directory: Path, name: str, out: Path, **extra: Any) -> Path:
    return write_task(directory, name, call="jobs:append", kwargs={"path": str(out)},
                      schedule=extra.pop("schedule", {"every": "1s"}), **extra)


def test_every_second_each_slot_once(run_cli: Cli, daemon: Any, tmp_path: Path,
                                     state_dir: Path) -> None:
    out = tmp_path / "out.txt"
    # queue, not the default skip: a daemon slow to start (a loaded machine) runs a catch-up
    # slot at start that may still be going when the next second's slot comes.
    run_cli("apply", str(append_task(tmp_path / "t", "tick", out, policy={"overlap": "queue"})))
    proc = daemon().start()
    wait_for(lambda: len([r for r in runs_of(state_dir, "tick") if r.status == "succeeded"]) >= 4,
             15, "4 successful runs")
    assert proc.stop() == 0
    runs = [r for r in runs_of(state_dir, "tick") if r.trigger == "schedule"]
    slots = [r.scheduled_for for r in runs]
    assert len(slots) == len(set(slots)), "a slot ran twice"
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(slots))
    assert {r.status for r in runs} == {"succeeded"}
    assert len(out.read_text().splitlines()) == len(runs_of(state_dir, "tick"))
    assert "run tick succeeded" in proc.log()


def test_apply_signals_reload_and_poll_sees_unsignalled_edits(
    run_cli: Cli, daemon: Any, tmp_path: Path, state_dir: Path
) -> None:
    proc = daemon(DBCRON_POLL_SECONDS="3").start()
    out = tmp_path / "a.txt"
    result = run_cli("apply", str(append_task(tmp_path / "t", "late", out)))
    assert "told the daemon (pid" in result.stderr
    wait_for(out.exists, 2.5, "the applied task to fire within 2 s")
    # An edit the daemon is not told about (another host's CLI): the revision poll finds it.
    s = store_of(state_dir)
    s.tasks.upsert([{"name": "quiet", "kind": "call", "schedule": {"every": "1s"},
                     "call": "jobs:append", "kwargs": {"path": str(tmp_path / "q.txt")}}],
                   datetime.now(UTC))
    s.close()
    wait_for((tmp_path / "q.txt").exists, 5.5, "the unsignalled task within the poll interval")
    assert run_cli("disable", "late").exit_code == 0
    wait_for(lambda: "reloaded" in proc.log().split("disable")[-1], 3, "reload after disable")
    count = len(out.read_text().splitlines())
    import time

    time.sleep(2.5)
    assert len(out.read_text().splitlines()) <= count + 1  # at most one already in flight
    assert proc.stop() == 0


def test_sighup_burst_gives_at_most_two_reloads(run_cli: Cli, daemon: Any, tmp_path: Path) -> None:
    run_cli("apply", str(append_task(tmp_path / "t", "x", tmp_path / "x.txt",
                                     schedule={"cron": "0 0 1 1 *"})))
    proc = daemon(DBCRON_POLL_SECONDS="60").start()
    import time

    for _ in range(200):  # a storm over ~0.6 s, as a script applying files one by one makes
        proc.signal(signal.SIGHUP)
        time.sleep(0.003)
    wait_for(lambda: "reloaded" in proc.log(), 5, "a reload")
    time.sleep(2)
    assert 1 <= proc.log().count("reloaded in") <= 2
    assert proc.stop() == 0


def test_sigterm_drains_a_running_run(run_cli: Cli, daemon: Any, tmp_path: Path,
                                      state_dir: Path) -> None:
    marker = tmp_path / "done"
    write_task(tmp_path / "t", "slow", call="jobs:sleep", args=[2, str(marker)],
               schedule={"every": "1h", "start": "2026-01-01T00:00:00+00:00"})
    run_cli("apply", str(tmp_path / "t"))
    s = store_of(state_dir)
    s.daemons.request_run("slow", datetime.now(UTC))
    s.close()
    proc = daemon().start()
    wait_for(lambda: "run slow started" in proc.log(), 10, "the run to start")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert marker.exists()
    assert [r.status for r in runs_of(state_dir, "slow") if r.trigger == "manual"] == ["succeeded"]


def test_drain_period_over_then_interrupted_and_second_signal_is_immediate(
    run_cli: Cli, daemon: Any, tmp_path: Path, state_dir: Path
) -> None:
    write_task(tmp_path / "t", "slow", call="jobs:sleep", args=[30, str(tmp_path / "m")],
               schedule={"every": "1h", "start": "2026-01-01T00:00:00+00:00"})
    run_cli("apply", str(tmp_path / "t"))
    s = store_of(state_dir)
    s.daemons.request_run("slow", datetime.now(UTC))
    s.close()
    proc = daemon(DBCRON_DRAIN_SECONDS="20").start()
    wait_for(lambda: "run slow started" in proc.log(), 10, "the run to start")
    proc.signal(signal.SIGTERM)
    wait_for(lambda: "stopping" in proc.log(), 5, "stopping")
    proc.signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    manual = [r for r in runs_of(state_dir, "slow") if r.trigger == "manual"]
    # The call had begun (it is the side effect), so it is not retried: at most once.
    assert [(r.status, r.error) for r in manual] == [
        ("interrupted", "interrupted: the daemon stopped before it ended" + AFTER_EFFECT)
    ]
    assert not (tmp_path / "m").exists()


def test_kill_9_then_restart_interrupts_and_catches_up(
    run_cli: Cli, daemon: Any, tmp_path: Path, state_dir: Path
) -> None:
    write_task(tmp_path / "t", "slow", call="jobs:sleep", args=[60],
               schedule={"every": "2s"}, policy={"catchup": "latest", "retries": 0})
    run_cli("apply", str(tmp_path / "t"))
    proc = daemon().start()
    wait_for(lambda: "run slow started" in proc.log(), 10, "a run to start")
    proc.signal(signal.SIGKILL)
    proc.wait()
    killed_at = datetime.now(UTC)
    before = runs_of(state_dir, "slow")
    (killed,) = [r for r in before if r.status == "running"]
    import time

    time.sleep(4.5)  # at least two slots pass while no daemon runs
    again = daemon().start()
    last_before = max(b.id for b in before)
    caught = wait_for(lambda: [r for r in runs_of(state_dir, "slow")
                               if r.id > last_before and r.status == "running"],
                      10, "a catch-up run")
    after = {r.id: r for r in runs_of(state_dir, "slow")}
    assert after[killed.id].status == "interrupted"
    assert "the daemon running it stopped or died" in (after[killed.id].error or "")
    missed = [r for r in after.values() if r.status == "missed" and r.id > last_before]
    seen = [(r.scheduled_for.isoformat(), r.status, r.trigger) for r in after.values()]
    assert len(caught) == 1 and caught[0].trigger == "catchup", seen
    assert caught[0].scheduled_for > killed_at, seen
    assert missed and all(killed.scheduled_for < r.scheduled_for < caught[0].scheduled_for
                          for r in missed), seen
    slots = [r.scheduled_for for r in after.values()]
    assert len(slots) == len(set(slots))
    assert again.stop() == 0


def test_timeout_stops_the_function_and_the_next_slot_runs(
    run_cli: Cli, daemon: Any, tmp_path: Path, state_dir: Path
) -> None:
    marker = tmp_path / "woke"
    write_task(tmp_path / "t", "sleepy", call="jobs:sleep", args=[5, str(marker)],
               schedule={"every": "3s"}, policy={"timeout": "1s", "overlap": "skip"})
    run_cli("apply", str(tmp_path / "t"))
    proc = daemon().start()
    runs = wait_for(
        lambda: [r for r in runs_of(state_dir, "sleepy") if r.status == "timed_out"][1:], 15,
        "two timed-out runs in a row",
    )
    assert runs[0].error == "timed out after 1s"
    assert proc.stop() == 0
    import time

    time.sleep(5)
    assert not marker.exists(), "the timed-out function kept running"


def test_retries_then_failed(run_cli: Cli, daemon: Any, tmp_path: Path, state_dir: Path) -> None:
    write_task(tmp_path / "t", "flaky", call="jobs:fail", args=["db is down"],
               schedule={"every": "1h", "start": "2026-01-01T00:00:00+00:00"},
               policy={"retries": 2})
    run_cli("apply", str(tmp_path / "t"))
    s = store_of(state_dir)
    s.daemons.request_run("flaky", datetime.now(UTC))
    s.close()
    proc = daemon().start()
    run = wait_for(lambda: [r for r in runs_of(state_dir, "flaky")
                            if r.trigger == "manual" and r.status == "failed"], 15, "failed")[0]
    assert (run.attempt, run.error) == (3, "RuntimeError: db is down")
    assert proc.log().count("run flaky started") == 3
    assert proc.stop() == 0


def test_second_daemon_on_the_same_store_refuses(run_cli: Cli, daemon: Any,
                                                 state_dir: Path) -> None:
    first = daemon().start()
    second = daemon().start(wait_ready=False)
    assert second.wait(timeout=20) == 1
    pid = first.proc.pid  # type: ignore[union-attr]
    assert (f"Error: another scheduler-daemon (pid {pid}) is already running on state "
            f"directory {state_dir}") in second.log()
    assert first.stop() == 0


def test_sd_notify_messages(run_cli: Cli, daemon: Any, tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "notify.sock")
    run_cli("apply", str(append_task(tmp_path / "t", "n", tmp_path / "n.txt",
                                     schedule={"cron": "0 9 * * *"})))
    proc = daemon(NOTIFY_SOCKET=str(sock.path), WATCHDOG_USEC="1000000").start()
    import time

    time.sleep(2.2)
    proc.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in proc.log(), 5, "reload")
    assert proc.stop() == 0
    messages = sock.drain()
    sock.close()
    kinds = Counter(line.split("=")[0] for m in messages for line in m.splitlines())
    assert kinds["READY"] >= 2 and kinds["RELOADING"] == 1 and kinds["STOPPING"] == 1
    assert any(m.startswith("STATUS=1 tasks; next n at ") for m in messages)
    dogs = [t for t, m in sock.messages if m == "WATCHDOG=1"]
    assert len(dogs) >= 4  # every 0.5 s for half of WATCHDOG_USEC
    gaps = [b - a for a, b in itertools.pairwise(dogs)]
    assert max(gaps) < 1.0
    order = [m.split("=")[0] for m in messages if m.split("=")[0] in
             ("READY", "RELOADING", "STOPPING")]
    assert order[0] == "READY" and order[-1] == "STOPPING"
    assert order.index("RELOADING") < len(order) - 2


def test_run_command_through_the_daemon(run_cli: Cli, daemon: Any, tmp_path: Path) -> None:
    out = tmp_path / "r.txt"
    run_cli("apply", str(append_task(tmp_path / "t", "now", out, schedule={"cron": "0 9 1 1 *"})))
    proc = daemon().start()
    result = run_cli("run", "now")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("asking the daemon (pid ")
    assert result.stdout.startswith("run #") and " of now: succeeded in " in result.stdout
    status = run_cli("status", "--check")
    assert (status.exit_code, status.stdout.split(",")[0]) == (
        0, f"ok: daemon pid {proc.proc.pid} on {__import__('socket').gethostname()} alive"  # type: ignore[union-attr]
    )
    assert proc.stop() == 0
    status = run_cli("status", "--check")
    assert (status.exit_code, status.stdout) == (
        1, "unhealthy: no scheduler-daemon is alive (no heartbeat in 15 s)\n"
    )


def test_metrics_endpoint_after_a_few_runs(run_cli: Cli, daemon: Any, tmp_path: Path) -> None:
    import socket
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_cli("apply", str(append_task(tmp_path / "t", "m", tmp_path / "m.txt")))
    write_task(tmp_path / "t", "bad", call="jobs:fail", schedule={"every": "1s"})
    run_cli("apply", str(tmp_path / "t"))
    proc = daemon(DBCRON_METRICS_ADDRESS=f"127.0.0.1:{port}").start()

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }

    values = wait_for(
        lambda: (v := scrape()).get(("dbcron_runs_total", (("status", "succeeded"),
                                                            ("task", "m")))) and v, 15,
        "a counted run",
    )
    values = wait_for(lambda: (v := scrape())[("dbcron_runs_total", (("status", "succeeded"),
                                                                    ("task", "m")))] >= 3 and v,
                      15, "three counted runs")
    assert values[("dbcron_tasks_loaded", ())] == 2
    assert values[("dbcron_daemon_up", ())] == 1
    assert values[("dbcron_runs_total", (("status", "failed"), ("task", "bad")))] >= 1
    assert values[("dbcron_last_success_timestamp_seconds", (("task", "m"),))] > 1.7e9
    assert values[("dbcron_run_duration_seconds_count", (("task", "m"),))] >= 3
    assert ("dbcron_last_success_timestamp_seconds", (("task", "bad"),)) not in values
    assert proc.stop() == 0


def test_an_invalid_stored_task_is_reported_and_the_others_keep_running(
    run_cli: Cli, daemon: Any, tmp_path: Path, state_dir: Path
) -> None:
    out = tmp_path / "good.txt"
    run_cli("apply", str(append_task(tmp_path / "t", "good", out)))
    proc = daemon().start()
    # A definition that no longer validates (as after a downgrade, or a hand edit of the store).
    s = store_of(state_dir)
    s.tasks.upsert([{"name": "broken", "kind": "report", "schedule": {"every": "1s"}}],
                   datetime.now(UTC))
    s.close()
    proc.signal(signal.SIGHUP)
    wait_for(lambda: "task broken is invalid and was left out" in proc.log(), 5, "the report")
    # Counted only once `good` has written its file: under load the reload can come first.
    wait_for(lambda: lines(out) >= 1, 10, "good to run once")
    count = lines(out)
    wait_for(lambda: lines(out) >= count + 2, 10, "good to keep running")
    assert runs_of(state_dir, "broken") == []
    assert proc.stop() == 0


def test_two_daemons_on_one_postgresql_store_run_each_slot_once(
    run_cli: Cli, pg_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    store_env = {"DBCRON_STORE": pg_url}
    result = run_cli("apply", str(append_task(tmp_path / "t", "shared", out)), **store_env)
    assert result.exit_code == 0, result.output
    first = DaemonProcess(tmp_path / "host-a", **store_env).start()
    second = DaemonProcess(tmp_path / "host-b", **store_env).start()
    try:
        s = open_store(pg_url)
        wait_for(lambda: len(s.runs.history("shared", status="succeeded", limit=100)) >= 6, 20,
                 "six runs between the two daemons")
    finally:
        assert first.stop() == 0 and second.stop() == 0
    runs = s.runs.history("shared", limit=1000)
    s.close()
    slots = [r.scheduled_for for r in runs]
    assert len(slots) == len(set(slots)), "a slot ran twice"
    executions = len(out.read_text().splitlines())
    succeeded = len([r for r in runs if r.status == "succeeded"])
    interrupted = len([r for r in runs if r.status == "interrupted"])
    assert succeeded <= executions <= succeeded + interrupted
    assert {r.pid for r in runs} <= {first.proc.pid, second.proc.pid}  # type: ignore[union-attr]


def test_a_local_run_survives_a_daemon_starting_beside_it(
    run_cli: Cli, daemon: Any, tmp_path: Path, state_dir: Path
) -> None:
    import subprocess
    import sys

    write_task(tmp_path / "t", "local", call="jobs:sleep", args=[4],
               schedule={"every": "1h", "start": "2026-01-01T00:00:00+00:00"})
    run_cli("apply", str(tmp_path / "t"))
    env = DaemonProcess(state_dir).env
    cli = subprocess.Popen([sys.executable, "-c", "from dbcron.cli import main; main()", "run",
                            "local", "--local"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, cwd=tmp_path)
    wait_for(lambda: [r for r in runs_of(state_dir, "local") if r.started_at], 15, "the run")
    proc = daemon().start()
    out = cli.communicate(timeout=30)[0].decode()
    assert cli.returncode == 0, out
    (run,) = [r for r in runs_of(state_dir, "local") if r.trigger == "manual"]
    assert (run.status, run.attempt) == ("succeeded", 1), out
    assert proc.stop() == 0


def test_signal_handlers_only_set_flags_and_wake_the_loop(tmp_path: Path) -> None:
    import time

    from dbcron.daemon.lifecycle import Daemon
    from dbcron.settings import load_settings

    d = Daemon(load_settings(environ={"DBCRON_STATE_DIR": str(tmp_path)}, cwd=tmp_path), {})
    d.on_reload_signal()
    started = time.monotonic()
    d._sleep(5)
    assert d.reload_requested and time.monotonic() - started < 1
    d.on_stop_signal()
    assert d.stopping and not d.stop_now
    d.on_stop_signal()
    assert d.stop_now


def test_a_daemon_with_no_tasks_says_where_its_store_is(
    daemon: Any, state_dir: Path, run_cli: Cli, tmp_path: Path
) -> None:
    """Before: started in the wrong directory, it created an empty store and ran nothing,
    silently."""
    proc = daemon().start()
    expected = (
        f"WARNING dbcron.daemon: the store sqlite:///{state_dir / 'dbcron.db'} holds no tasks: "
        "nothing will run. Add tasks with 'manage-tasks apply DIR' using the same settings (run "
        f"where this daemon runs, or DBCRON_STATE_DIR={state_dir}), or start the daemon where "
        "the store with your tasks is"
    )
    wait_for(lambda: expected in proc.log(), 5, "the warning")
    assert proc.stop() == 0
    write_task(tmp_path / "t", "off", enabled=False)
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    again = daemon().start()
    wait_for(lambda: "holds 1 task(s), all disabled: nothing will run." in again.log(), 5,
             "the warning")
    assert again.stop() == 0


def test_a_reload_at_a_slots_edge_keeps_the_slot(run_cli: Cli, tmp_path: Path,
                                                 state_dir: Path) -> None:
    """A reload landing just after a slot is due, before APScheduler's thread fired it,
    must not move the job past that slot (issue 9, item 6). The daemon runs in-process
    here so the reload can be given the instant right after the slot."""
    from dbcron.daemon.lifecycle import Daemon
    from dbcron.settings import load_settings

    run_cli("apply", str(append_task(tmp_path / "t", "edge", tmp_path / "e.txt",
                                     schedule={"every": "1h"})))
    d = Daemon(load_settings(environ={"DBCRON_STATE_DIR": str(state_dir)}, cwd=tmp_path), {})
    d.start()
    try:
        pending = d.scheduler.get_job("edge").next_run_time
        s = store_of(state_dir)
        s.tasks.upsert([{"name": "edge", "kind": "call", "description": "changed",
                         "schedule": {"every": "1h"}, "call": "jobs:append",
                         "kwargs": {"path": str(tmp_path / "e.txt")}}], datetime.now(UTC))
        s.close()
        d.reload(pending + timedelta(milliseconds=2))
        assert d.tasks["edge"].task.description == "changed"
        assert d.scheduler.get_job("edge").next_run_time == pending
    finally:
        d.stop()
