"""Ready signals: an ETL opens a task's data-ready gate over HTTP or with `manage-tasks ready`.

Each gate here looks again only every hour, so a run that goes on within seconds
of the signal went on because the signal woke the daemon.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli, write_task
from daemon_proc import DaemonProcess, wait_for
from dbcron.store import open_store
from http_daemon import ApiDaemon, start_api_daemon

GATE = {"signal": True, "every": "1h", "until": "2h"}


def _runs(state_dir: Path, task: str) -> list[Any]:
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    try:
        return list(reversed(store.runs.history(task=task, limit=1000)))
    finally:
        store.close()


def _waiting(state_dir: Path, task: str) -> Any:
    return wait_for(lambda: [r for r in _runs(state_dir, task) if r.status == "waiting"], 15,
                    f"a run of {task} waiting for its signal")[0]


def _today() -> date:
    return datetime.now(UTC).date()



@pytest.fixture
def api(tmp_path: Path) -> Any:
    tasks = [
        {"name": "gated", "kind": "call", "call": "jobs:succeed", "schedule": {"every": "2s"},
         "ready": GATE},
        {"name": "plain", "kind": "call", "call": "jobs:succeed", "schedule": {"every": "1d"}},
    ]
    daemon = start_api_daemon(tmp_path, tasks, DBCRON_HTTP_RATE_LIMIT="100000")
    yield daemon
    assert daemon.proc.stop() == 0, daemon.proc.log()


@pytest.mark.slow
def test_http_signal_opens_the_gate_at_once(api: ApiDaemon, tmp_path: Path,
                                            run_cli: Cli) -> None:
    state = api.proc.state_dir
    waiting = _waiting(state, "gated")
    today = _today()
    assert waiting.error.startswith(f"waiting for the ready signal for {today}; looking again at")
    shown = run_cli("history", "gated", "--status", "waiting", DBCRON_STATE_DIR=str(state))
    assert f"waiting for the ready signal for {today}" in shown.output
    path = "/api/v1/tasks/gated/ready"
    missing = api.call("POST", path)
    assert (missing.status, missing.json()["error"]) == (
        401, "missing token: send 'Authorization: Bearer <token>'")
    refused = api.call("POST", path, api.read_token)
    assert (refused.status, refused.json()) == (
        403, {"error": "token 'dashboard' has read scope; this needs a write token"})
    bad = api.call("POST", path, api.write_token, data=b'{"date": "2026-13-03"}')
    assert (bad.status, bad.json()) == (
        400, {"error": "date '2026-13-03' is not a date: write it as YYYY-MM-DD, e.g. 2026-12-03"})
    # date.fromisoformat reads these as 2026-12-03; the docs promise YYYY-MM-DD only
    for other_form in ("20261203", "2026-W49-4", 20261203):
        body = json.dumps({"date": other_form}).encode()
        assert api.call("POST", path, api.write_token, data=body).json() == {
            "error": f"date {other_form!r} is not a date: write it as YYYY-MM-DD, "
                     "e.g. 2026-12-03"}
    extra = api.call("POST", path, api.write_token, data=b'{"day": "2026-12-03"}')
    assert extra.status == 400 and extra.json()["error"].startswith('the body takes one field')
    assert api.call("POST", path, api.write_token, data=b"date=2026-12-03").status == 400
    assert api.call("POST", "/api/v1/tasks/gatd/ready", api.write_token).status == 404
    ungated = api.call("POST", "/api/v1/tasks/plain/ready", api.write_token)
    assert ungated.status == 409
    assert ungated.json()["error"].startswith("task 'plain' does not wait for a ready signal")
    # none of the refused calls opened anything
    assert [r.status for r in _runs(state, "gated") if r.id == waiting.id] == ["waiting"]
    other_day = api.call("POST", path, api.write_token, data=b'{"date": "2020-01-01"}')
    assert (other_day.status, other_day.json()["date"]) == (200, "2020-01-01")
    sent = api.call("POST", path, api.write_token, headers={"Content-Type": "application/json"})
    assert sent.status == 200
    assert sent.json()["task"] == "gated" and sent.json()["date"] == today.isoformat()
    done = wait_for(lambda: [r for r in _runs(state, "gated")
                             if r.id == waiting.id and r.status == "succeeded"], 15,
                    "the waiting run to go on after the signal")[0]
    assert done.error is None
    assert "ready signal for gated: waiting runs look at their gate now" in api.proc.log()


@pytest.mark.slow
def test_cli_signal_opens_the_gate_at_once(run_cli: Cli, state_dir: Path, tmp_path: Path
                                           ) -> None:
    write_task(tmp_path / "t", "gated", schedule={"every": "2s"}, ready=GATE,
               call="jobs:succeed")
    write_task(tmp_path / "t", "plain", call="jobs:succeed")
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    proc = DaemonProcess(state_dir).start()
    try:
        waiting = _waiting(state_dir, "gated")
        for bad_date in ("03/12/2026", "20261203"):
            bad = run_cli("ready", "gated", "--date", bad_date)
            assert bad.exit_code == 2
            assert bad.stderr.endswith(f"Error: Invalid value for --date: {bad_date!r} is not "
                                       "a date; write it as YYYY-MM-DD\n")
        ungated = run_cli("ready", "plain")
        assert ungated.exit_code == 1
        assert "task 'plain' does not wait for a ready signal" in ungated.output
        assert run_cli("ready", "nope").exit_code == 1
        assert [r.status for r in _runs(state_dir, "gated") if r.id == waiting.id] == [
            "waiting"]
        result = run_cli("ready", "gated")
        assert result.exit_code == 0, result.output
        assert f"ready signal for gated, {_today()}, recorded" in result.output
        # no SIGHUP: the daemon's tick looks while a run waits, so no reload per signal
        assert result.stderr == (f"the daemon (pid {proc.proc.pid}) sees it within about a "
                                 "second: a run waiting for it goes on then\n")
        wait_for(lambda: [r for r in _runs(state_dir, "gated")
                          if r.id == waiting.id and r.status == "succeeded"], 15,
                 "the waiting run to go on after the signal")
    finally:
        assert proc.stop() == 0, proc.log()


@pytest.mark.slow
def test_a_local_run_waiting_for_its_signal_goes_on_when_it_comes(
    run_cli: Cli, state_dir: Path, tmp_path: Path
) -> None:
    """`run --local` (no daemon) waits in the terminal; `ready` from another shell opens it."""
    import sys

    write_task(tmp_path / "t", "gated", ready=GATE, call="jobs:succeed")
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    command = [sys.executable, "-c", "from dbcron.cli import main; main()", "run", "gated",
               "--local"]
    local = DaemonProcess(state_dir, command).start(wait_ready=False)
    try:
        _waiting(state_dir, "gated")
        assert run_cli("ready", "gated").exit_code == 0
        assert local.wait() == 0, local.log()
    finally:
        local.stop()
    assert "run #1 of gated: succeeded" in local.log()


def test_dry_run_explains_the_signal(run_cli: Cli, tmp_path: Path) -> None:
    write_task(tmp_path / "t", "load", call="jobs:succeed")
    write_task(tmp_path / "t", "report", call="jobs:succeed",
               schedule={"cron": "0 7 * * *", "timezone": "Europe/London"},
               ready={"signal": True, "after": ["load"], "every": "10m", "until": "3h"})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    before = run_cli("run", "report", "--dry-run", "--as-of", "2026-12-03")
    assert before.output == (
        "ready: not yet (waiting for the ready signal for 2026-12-03 and for load to succeed "
        "for 2026-12-03); a scheduled run would wait, looking every 10m, until 2026-12-03 "
        "10:00 UTC, then skip; the signal is sent by 'manage-tasks ready report --date "
        "2026-12-03' or POST /api/v1/tasks/report/ready\n"
        "dry run: would call jobs:succeed\n")
    sent = run_cli("ready", "report", "--date", "2026-12-03")
    assert sent.exit_code == 0
    assert sent.stderr == (
        "no daemon is running here: a run waiting for this signal starts when a daemon on this "
        "store does (a daemon on another host sees it within about a second)\n")
    after = run_cli("run", "report", "--dry-run", "--as-of", "2026-12-03")
    assert after.output.startswith(
        "ready: not yet (waiting for load to succeed for 2026-12-03); ")


def test_signals_in_the_store_upgrade_prune_and_forget(store_url: str, tmp_path: Path) -> None:
    from datetime import timedelta

    from conftest import make_settings, reopened_from
    from dbcron.daemon.housekeeping import prune

    now = datetime(2026, 12, 3, 5, tzinfo=UTC)
    # A store from before ready signals.
    store = reopened_from(open_store(store_url), 5, "DROP TABLE ready_signals")
    try:
        day = date(2026, 12, 3)
        assert store.signals.first("sales", day) is None
        first = store.signals.record("sales", day, now, "cli")
        store.signals.record("sales", day, now + timedelta(minutes=1), "http token etl")
        store.signals.record("stock", date(2026, 8, 1), now - timedelta(days=100), "cli")
        assert store.signals.first("sales", day) == first
        asked = {("sales", day), ("sales", date(2026, 8, 1)), ("stock", date(2026, 8, 1)),
                 ("stock", day), ("none", day)}
        assert store.signals.present(asked) == {("sales", day), ("stock", date(2026, 8, 1))}
        assert store.signals.present(set()) == set()
        many = {(f"task-{i}", day) for i in range(1200)} | {("sales", day)}  # past a chunk
        assert store.signals.present(many) == {("sales", day)}
        prune(store, make_settings(tmp_path, keep_history_days=90), now)
        assert store.signals.present(asked) == {("sales", day)}  # 100 days old: pruned
        store.signals.forget("sales")
        assert store.signals.first("sales", day) is None
        assert store.signals.present(asked) == set()
    finally:
        store.close()


@pytest.mark.slow
def test_a_signal_whose_id_the_daemon_saw_before_still_opens_the_gate(
    run_cli: Cli, state_dir: Path, tmp_path: Path
) -> None:
    """A wake must not hang on signal ids. SQLite's ids are reused: deleting a task forgets
    its signals, the highest ids, and the next signal takes one of them again. The same
    holds for PostgreSQL, whose ids commit out of order (an id below one already seen
    commits later), and for a run that read "no signal" just before the signal
    committed: the daemon asks for the signals of the waiting runs' dates each tick."""
    write_task(tmp_path / "t", "old", ready=GATE, call="jobs:succeed")
    write_task(tmp_path / "t", "gated", schedule={"every": "2s"}, ready=GATE,
               call="jobs:succeed")
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    for _ in range(3):
        assert run_cli("ready", "old").exit_code == 0
    proc = DaemonProcess(state_dir).start()
    try:
        assert run_cli("delete", "old", "--yes").exit_code == 0  # its signals, ids 1-3, go
        waiting = _waiting(state_dir, "gated")
        assert run_cli("ready", "gated").exit_code == 0
        store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
        try:
            signal = store.signals.first("gated", _today())
        finally:
            store.close()
        assert signal is not None and signal.id == 1  # an id the daemon had seen
        wait_for(lambda: [r for r in _runs(state_dir, "gated")
                          if r.id == waiting.id and r.status == "succeeded"], 15,
                 "the waiting run to go on after the signal")
    finally:
        assert proc.stop() == 0, proc.log()


def test_a_signal_needs_the_store_and_never_creates_one(run_cli: Cli, state_dir: Path
                                                        ) -> None:
    """A wrong DBCRON_STATE_DIR must not leave an empty store and blame the task's name."""
    result = run_cli("ready", "gated")
    assert (result.exit_code, result.stderr) == (
        1, f"Error: no store at {state_dir}/dbcron.db: set DBCRON_STATE_DIR (or --state-dir) "
        "to where the daemon keeps it, or create one with 'manage-tasks apply'\n")
    assert not state_dir.exists()
