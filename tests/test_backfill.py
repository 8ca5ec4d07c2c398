"""`manage-tasks backfill`: past slots without a successful run, through the real daemon."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Cli, write_task
from daemon_proc import DaemonProcess
from dbcron.store import Claim, open_store
from smtp_server import SmtpTestServer
from test_changes import orders_db

DAY = "0 9 * * *"
TESTS = Path(__file__).parent


def report_task(tmp_path: Path, source: str) -> Path:
    path = write_task(
        tmp_path / "t", "daily", kind="report", call=None,
        schedule={"cron": DAY, "timezone": "UTC"}, source="orders",
        query="SELECT customer, amount FROM orders", export={"formats": ["csv"]},
        email={"to": ["sales@example.com"], "subject": "Orders {{ today }}"},
    )
    path.write_text(path.read_text().replace("call: null\n", ""))
    return path


def test_dry_run_lists_slots_and_bad_ranges_are_refused(run_cli: Cli, tmp_path: Path) -> None:
    source = orders_db(tmp_path / "o.db", [(1, "ann", 10)])
    run_cli("apply", str(report_task(tmp_path, source)), DBCRON_SOURCE_ORDERS=source)
    result = run_cli("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03",
                     "--dry-run")
    assert result.exit_code == 0
    assert result.output == (
        "backfill of daily: 3 slots to run, 0 already succeeded\n"
        "  would run 2026-11-01T09:00:00+00:00\n"
        "  would run 2026-11-02T09:00:00+00:00\n"
        "  would run 2026-11-03T09:00:00+00:00\n"
    )
    result = run_cli("backfill", "daily", "--from", "2026-11-03", "--to", "2026-11-01")
    assert (result.exit_code, result.output) == (1, "Error: --to 2026-11-01 is before --from "
                                                    "2026-11-03\n")
    result = run_cli("backfill", "daily", "--from", "2026-11", "--to", "2026-11-30")
    assert result.exit_code == 2
    assert "Invalid value for --from: '2026-11' is not a date; write it as YYYY-MM-DD" in (
        result.output)
    result = run_cli("backfill", "daily", "--from", "2020-01-01", "--to", "2026-11-30")
    assert result.output == ("Error: daily has more than 1000 slots from 2020-01-01 to "
                             "2026-11-30; backfill a shorter range at a time\n")
    result = run_cli("backfill", "daly", "--from", "2026-11-01", "--to", "2026-11-30")
    assert result.exit_code == 1 and "no task named 'daly'" in result.output.lower()


@pytest.mark.slow
def test_backfill_runs_the_20_missing_slots_of_30_and_mails_none_twice(
    run_cli: Cli, state_dir: Path, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    source = orders_db(tmp_path / "o.db", [(1, "ann", 10)])
    env = {"DBCRON_SOURCE_ORDERS": source, "DBCRON_SMTP_HOST": "127.0.0.1",
           "DBCRON_SMTP_PORT": str(smtp_server.port)}
    assert run_cli("apply", str(report_task(tmp_path, source)), **env).exit_code == 0
    # Ten slots succeed first (in this process: no daemon yet), each with its mail.
    result = run_cli("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-10", **env)
    assert result.exit_code == 0, result.output
    assert len(smtp_server.messages) == 10
    # An earlier failure on the 15th is run again in place, not skipped.
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    failed_slot = datetime(2026, 11, 15, 9, tzinfo=UTC)
    store.runs.record("daily", failed_slot, "schedule", "failed", failed_slot,
                      Claim("h", 1, None, None), "source down")

    proc = DaemonProcess(state_dir, **env).start()
    try:
        result = run_cli("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-30",
                         **env)
    finally:
        assert proc.stop() == 0
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "backfill of daily: 20 slots to run, 10 already succeeded"
    assert lines[1].startswith("[1/20] 2026-11-11T09:00:00+00:00 succeeded in ")
    assert lines[-1] == "backfill of daily: 20 succeeded, 0 failed"
    assert proc.log().count("run daily succeeded") == 20

    ids = Counter(m.message["Message-ID"] for m in smtp_server.messages)
    assert len(ids) == 30 and set(ids.values()) == {1}, ids
    subjects = sorted(m.message["Subject"] for m in smtp_server.messages)
    assert subjects == [f"Orders 2026-11-{d:02d}" for d in range(1, 31)]
    # (The daemon may also have recorded today's slot; only November is asked about.)
    runs = [r for r in store.runs.history("daily", limit=100) if r.scheduled_for.month == 11]
    assert len(runs) == 30 and {r.status for r in runs} == {"succeeded"}
    assert {r.trigger for r in runs} == {"backfill"}
    history = run_cli("history", "daily", "--status", "succeeded", "--limit", "1").output
    assert "succeeded (backfill)" in history
    # Nothing left to do: a second backfill runs nothing and mails nothing.
    again = run_cli("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-30", **env)
    assert again.output == "backfill of daily: 0 slots to run, 30 already succeeded\n"
    assert len(smtp_server.messages) == 30
    store.close()


def on_a_terminal(*args: str) -> tuple[int, str]:
    """manage-tasks ARGS with a pty as its terminal: exit code and all it wrote."""
    main, child = os.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", "from dbcron.cli import main; main()",
                             *args], stdin=child, stdout=child, stderr=child, env=env,
                            close_fds=True)
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([main], [], [], 0.1)[0]:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # Linux: EIO once the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    os.close(main)
    return proc.wait(timeout=20), seen.decode()


def test_backfill_on_a_terminal_draws_a_bar_and_lists_failed_slots(
    run_cli: Cli, tmp_path: Path
) -> None:
    for name, call in (("fine", "jobs:succeed"), ("broken", "jobs:fail")):
        path = write_task(tmp_path / "t", name, schedule={"cron": DAY, "timezone": "UTC"},
                          call=call)
        assert run_cli("apply", str(path)).exit_code == 0
    code, shown = on_a_terminal("backfill", "fine", "--from", "2026-11-01", "--to",
                                "2026-11-03", "--local")
    assert code == 0, shown
    assert "backfill of fine  [" in shown and "3/3" in shown, shown
    assert "2026-11-03 09:00 succeeded" in shown  # beside the bar: the last slot
    assert "[1/3]" not in shown  # no line per slot on a terminal
    assert shown.splitlines()[-1] == "backfill of fine: 3 succeeded, 0 failed"

    code, shown = on_a_terminal("backfill", "broken", "--from", "2026-11-01", "--to",
                                "2026-11-02", "--local")
    assert code == 1, shown
    lines = shown.splitlines()
    assert lines[-4].startswith("[1/2] 2026-11-01T09:00:00+00:00 failed in "), shown
    assert lines[-4].endswith(": boom")
    assert lines[-3].startswith("[2/2] 2026-11-02T09:00:00+00:00 failed in ")
    assert lines[-2] == "backfill of broken: 0 succeeded, 2 failed"

    # Not on a terminal (a log): a line per slot as it ends, as before.
    logged = run_cli("backfill", "broken", "--from", "2026-11-03", "--to", "2026-11-03",
                     "--local")
    assert logged.exit_code == 1
    lines = logged.output.splitlines()
    assert lines[0] == "backfill of broken: 1 slot to run, 0 already succeeded"
    assert lines[1].startswith("[1/1] 2026-11-03T09:00:00+00:00 failed in ")
    assert lines[1].endswith(": boom") and "\r" not in logged.output
    assert lines[2] == "backfill of broken: 0 succeeded, 1 failed"
