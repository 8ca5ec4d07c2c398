"""A last-business-day task through the real daemon, its wall clock set around a bank holiday."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Cli, write_task
from daemon_proc import DaemonProcess, wait_for
from dbcron.store import open_store

pytestmark = pytest.mark.slow


class ClockedDaemon(DaemonProcess):
    def __init__(self, state_dir: Path, start: str) -> None:
        super().__init__(state_dir)
        self.command = [sys.executable, "-m", "clocked_daemon", start]


def runs(state_dir: Path) -> list[tuple[datetime, str]]:
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    try:
        return [(r.scheduled_for, r.status) for r in store.runs.history(task="month-end")]
    finally:
        store.close()


def test_last_business_day_runs_before_the_bank_holiday_not_on_it(
    run_cli: Cli, tmp_path: Path, state_dir: Path
) -> None:
    out = tmp_path / "ran.txt"
    # 31 August 2026, the last day of the month, is the Late Summer Bank Holiday in
    # England: the last business day is Friday 28 August.
    write_task(tmp_path / "t", "month-end", call="jobs:append", kwargs={"path": str(out)},
               schedule={"cron": "0 18 * * *", "timezone": "Europe/London",
                         "business_day": -1,
                         "calendar": {"country": "GB", "subdivision": "ENG"}},
               policy={"catchup": "none"})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0

    friday = ClockedDaemon(state_dir, "2026-08-28T16:59:57+00:00").start()
    try:
        wait_for(lambda: [r for r in runs(state_dir) if r[1] == "succeeded"], 20,
                 "the Friday run")
    finally:
        assert friday.stop() == 0
    assert runs(state_dir) == [(datetime(2026, 8, 28, 17, tzinfo=UTC), "succeeded")]

    # On the holiday itself, 18:00 passes with no run.
    monday = ClockedDaemon(state_dir, "2026-08-31T16:59:57+00:00").start()
    try:
        time.sleep(5)
    finally:
        assert monday.stop() == 0
    assert runs(state_dir) == [(datetime(2026, 8, 28, 17, tzinfo=UTC), "succeeded")]
    assert len(out.read_text().splitlines()) == 1
