"""Messages that say what happened: each checked by its exact text and exit code."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Cli, write_task
from dbcron.store import open_store
from dbcron.store.runs import Claim

SLOT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CAUSE = (
    "(sqlite3.OperationalError) no such column: regoin while running the query of "
    "daily-sales against sqlite:///var/sales.db"
)


@pytest.fixture
def failed_run(run_cli: Cli, tmp_path: Path, state_dir: Path) -> None:
    write_task(tmp_path / "t", "daily-sales")
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")
    store.runs.record("daily-sales", SLOT, "schedule", "failed", SLOT,
                      Claim("h", 1, None, None), error=CAUSE + "\n[SQL: SELECT regoin FROM s]")
    store.close()


def test_history_wraps_the_error_to_the_terminal_keeping_the_cause(
    run_cli: Cli, failed_run: None
) -> None:
    """Before, the error was cut at 80 characters whatever the terminal: the cause was lost."""
    result = run_cli("history", COLUMNS="100")
    assert result.exit_code == 0
    assert result.stdout == (
        "ID  TASK         SLOT                    STATUS  TOOK  ROWS  ERROR\n"
        "1   daily-sales  2026-11-20 09:00 +0000  failed  -     -     (sqlite3.OperationalError) "
        "no such\n"
        + " " * 61 + "column: regoin while running the query\n"
        + " " * 61 + "of daily-sales against\n"
        + " " * 61 + "sqlite:///var/sales.db\n"
    )
    wide = run_cli("history", COLUMNS="200")
    assert wide.stdout.splitlines()[1].endswith(CAUSE)


def test_history_with_a_bad_status_is_a_usage_error(run_cli: Cli, failed_run: None) -> None:
    result = run_cli("history", "--status", "bogus")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Invalid value for --status: 'bogus': use one of running, succeeded, failed, "
        "timed_out, interrupted, skipped, missed, waiting\n"
    )
    since = run_cli("history", "--since", "last tuesday")
    assert since.exit_code == 2
    assert since.stderr.endswith(
        "Error: --since 'last tuesday': give an ISO time (2026-11-20, 2026-11-20T09:00+01:00) "
        "or a duration back from now (24h, 7d)\n"
    )


def test_next_without_a_name_lists_every_tasks_fires(run_cli: Cli, tmp_path: Path) -> None:
    write_task(tmp_path / "t", "alpha", schedule={"cron": "0 9 * * *", "timezone": "Asia/Kolkata"})
    write_task(tmp_path / "t", "beta", schedule={"every": "12h"})
    write_task(tmp_path / "t", "gamma", enabled=False)
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    result = run_cli("next", "-n", "2", "--from", "2026-11-20T00:00+00:00")
    assert (result.exit_code, result.stdout) == (0,
        "2026-11-20T09:00:00+05:30  alpha\n"
        "2026-11-20T12:00:00+00:00  beta\n"
        "2026-11-21T00:00:00+00:00  beta\n"
        "2026-11-21T09:00:00+05:30  alpha\n"
    )  # fmt: skip


def test_status_shows_next_runs_in_each_tasks_zone(run_cli: Cli, tmp_path: Path) -> None:
    """Before, status showed them in UTC where list used each task's zone."""
    write_task(tmp_path / "t", "alpha", schedule={"cron": "0 9 * * *", "timezone": "Asia/Kolkata"})
    write_task(tmp_path / "t", "beta", schedule={"cron": "0 9 * * *", "timezone": "UTC"})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    lines = run_cli("status").stdout.splitlines()
    nexts = {line.split()[-1]: line.split()[-2] for line in lines[lines.index("next:") + 1:]}
    assert nexts == {"alpha": "+0530", "beta": "+0000"}
    listed = {line.split()[0]: line for line in run_cli("list").stdout.splitlines()[1:]}
    for name in ("alpha", "beta"):
        at = next(line for line in lines if line.endswith(name)).split()[:3]
        assert " ".join(at) in listed[name]


def _sales_task(directory: Path, name: str, query: str, **over: object) -> None:
    import sqlite3

    db = directory.parent / "sales.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS s (region TEXT, amount REAL)")
    write_task(directory, name, kind="report", call=None, source=f"sqlite:///{db}",
               query=query, **over)
    path = directory / f"{name}.yaml"
    path.write_text(path.read_text().replace("call: null\n", ""))


def test_run_says_run_number_whole_time_and_no_log_lines(run_cli: Cli, tmp_path: Path) -> None:
    """Before: 'run 2 of f: failed after 2 attempts in 0.0s' after a wait, with the runner's
    log lines ('run f attempt 1 failed: ...', 'run f failed: slot ...') between."""
    _sales_task(tmp_path / "t", "f", "SELECT regoin FROM s", policy={"retries": 1})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    result = run_cli("run", "f", "--local", DBCRON_RETRY_BACKOFF_SECONDS="1")
    assert result.exit_code == 1
    db = tmp_path / "sales.db"
    cause = f"query failed on sqlite {db}: OperationalError: no such column: regoin"
    assert result.stderr == (
        "running here\n"
        f"attempt 1 failed: {cause}; retrying in 1s\n"
        f"Error: {cause}\n"
    )
    took = re.fullmatch(r"run #1 of f: failed after 2 attempts in (\d+\.\d)s\n", result.stdout)
    assert took is not None and float(took[1]) >= 1.0, result.stdout


def test_run_says_an_if_rows_mail_was_not_sent(run_cli: Cli, tmp_path: Path) -> None:
    _sales_task(tmp_path / "t", "r", "SELECT region, amount FROM s",
                email={"to": ["a@example.com"], "send": "if_rows"}, export={"formats": ["csv"]})
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    result = run_cli("run", "r", "--local")
    assert result.exit_code == 0
    first = result.stdout.splitlines()[0]
    assert re.fullmatch(
        r"run #1 of r: succeeded in \d+\.\ds, 0 rows; no rows: mail not sent \(send: if_rows\)",
        first,
    ), first


def test_a_bad_as_of_is_a_usage_error(run_cli: Cli, tmp_path: Path) -> None:
    write_task(tmp_path / "t", "tick")
    assert run_cli("apply", str(tmp_path / "t")).exit_code == 0
    for as_of in ("tomorrow", "20261203"):  # date.fromisoformat would take the second
        result = run_cli("run", "tick", "--dry-run", "--as-of", as_of)
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-1] == (
            f"Error: Invalid value for --as-of: {as_of!r} is not a date; write it as YYYY-MM-DD"
        )
