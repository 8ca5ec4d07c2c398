"""Messages that say what happened: each checked by its exact text and exit code."""

from __future__ import annotations

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
        "timed_out, interrupted, skipped, missed\n"
    )
    since = run_cli("history", "--since", "last tuesday")
    assert since.exit_code == 2
    assert since.stderr.endswith(
        "Error: --since 'last tuesday': give an ISO time (2026-11-20, 2026-11-20T09:00+01:00) "
        "or a duration back from now (24h, 7d)\n"
    )
