"""Dead-man's switch: monitor pings from real runs, and the expected/overdue gauges."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import Cli, write_task
from daemon_proc import DaemonProcess, wait_for
from dbcron.daemon.metrics import Metrics
from dbcron.daemon.overdue import watch
from dbcron.schedule import ScheduleSpec
from smtp_server import free_port
from webhook_server import WebhookServer

NINE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DAILY = ScheduleSpec.from_dict({"cron": "0 9 * * *"}, "UTC")


@pytest.mark.parametrize(("expected", "last", "now", "awaited", "overdue"), [
    (None, None, NINE - timedelta(hours=1), NINE, False),  # a fresh watch: the next slot
    (NINE, None, NINE + timedelta(seconds=30), NINE, False),  # late, within the minute
    (NINE, None, NINE + timedelta(minutes=2), NINE, True),  # no row two minutes on
    (NINE, NINE - timedelta(days=1), NINE + timedelta(minutes=2), NINE, True),  # yesterday's
    (NINE, NINE, NINE + timedelta(minutes=2), NINE + timedelta(days=1), False),  # it ran
    (NINE, NINE + timedelta(days=1), NINE + timedelta(days=1, minutes=5),
     NINE + timedelta(days=2), False),  # a later slot ran (catch-up: latest)
])
def test_overdue_watch(expected: datetime | None, last: datetime | None, now: datetime,
                       awaited: datetime, overdue: bool) -> None:
    assert watch(DAILY, expected, last, now) == (awaited, overdue)


def test_the_ping_url_is_a_secret() -> None:
    from dbcron.model import Monitor

    with pytest.raises(ValueError, match="give the ping URL as"):
        Monitor.model_validate({"url": "https://hc-ping.com/0f7c1a52-7d40-4f5d"})


def test_a_schedule_that_ended_is_never_overdue() -> None:
    once = ScheduleSpec.from_dict({"at": "2026-11-01T09:00:00+00:00"}, "UTC")
    assert watch(once, None, None, NINE) == (None, False)


def _scrape(metrics: Metrics) -> str:
    host, port = metrics.start_server("127.0.0.1:0")
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_gauges_follow_the_tasks_loaded() -> None:
    metrics = Metrics()
    try:
        metrics.set_expected({"a": (NINE, True), "b": (NINE + timedelta(hours=1), False)})
        metrics.set_expected({"a": (NINE, True)})  # b was disabled
        text = _scrape(metrics)
    finally:
        metrics.stop()
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, s.labels.get("task")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples
               if s.name.startswith("dbcron_task_")}
    assert samples == {("dbcron_task_overdue", "a"): 1.0,
                       ("dbcron_task_next_fire_timestamp_seconds", "a"): NINE.timestamp()}


def test_pings_start_success_and_masked_fail(run_cli: Cli, tmp_path: Path,
                                             webhook_server: WebhookServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBCRON_SECRET_HC_URL", f"{webhook_server.url}/hc/ok")
    monkeypatch.setenv("DBCRON_SECRET_HC_BAD", f"{webhook_server.url}/hc/bad")
    write_task(tmp_path / "t", "fine", call="jobs:succeed",
               monitor={"url": "${DBCRON_SECRET_HC_URL}"})
    write_task(tmp_path / "t", "broken", call="jobs:fail",
               args=["cannot reach postgresql://app:s3cret@db/prod"],
               monitor={"url": "${DBCRON_SECRET_HC_BAD}"})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    assert run_cli("run", "fine", "--local").exit_code == 0
    assert run_cli("run", "broken", "--local").exit_code == 1
    paths = [r.path.split("?")[0] for r in webhook_server.received]
    assert paths == ["/hc/ok/start", "/hc/ok", "/hc/bad/start", "/hc/bad/fail"]
    rids = [r.path.split("?rid=")[1] for r in webhook_server.received]
    assert rids[0] == rids[1] and rids[2] == rids[3] and rids[0] != rids[2]
    fail = webhook_server.received[3]
    assert fail.body.decode() == (
        "failed: RuntimeError: cannot reach postgresql://app:***@db/prod")
    assert webhook_server.received[1].body == b""


def test_daemon_exports_next_fire_and_overdue(tmp_path: Path, run_cli: Cli,
                                              state_dir: Path) -> None:
    write_task(tmp_path / "t", "daily", schedule={"cron": "0 9 * * *"})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    port = free_port()
    proc = DaemonProcess(state_dir, DBCRON_METRICS_ADDRESS=f"127.0.0.1:{port}").start()
    try:
        def scraped() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as a:
                text = str(a.read().decode())
            return text if 'dbcron_task_overdue{task="daily"} 0.0' in text else None

        text = wait_for(scraped, 15, "the overdue gauge")
        assert 'dbcron_task_next_fire_timestamp_seconds{task="daily"}' in text
    finally:
        assert proc.stop() == 0, proc.log()
