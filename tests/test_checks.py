"""test-email, test-source, prune and dry-run previews: real servers, real files, exact messages."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from conftest import make_settings
from dbcron.cli import Group
from dbcron.cli.app import App
from dbcron.cli.checks import COMMANDS
from dbcron.daemon.housekeeping import prune
from dbcron.model import Task
from dbcron.services.checks import CheckFailed, check_email, check_source
from dbcron.services.dry_run import NoSlot, dry_run, slot_for
from dbcron.store import Claim, Store, open_store
from dbcron.store.runs import FIRST_FENCE, Finished
from smtp_server import SmtpTestServer, free_port

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PASSWORD = "Sup3r-s3cret"


def test_email_arrives(tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp_server.port)
    assert check_email(settings, "me@example.com", NOW) == (
        f"test mail sent to me@example.com through 127.0.0.1:{smtp_server.port} (none)"
    )
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["me@example.com"]
    assert received.message["Subject"].startswith("dbcron test mail from ")


def test_email_without_smtp_host_goes_to_the_outbox(tmp_path: Path) -> None:
    message = check_email(make_settings(tmp_path), "me@example.com", NOW)
    assert message.startswith("no SMTP host is set (DBCRON_SMTP_HOST), so mail goes to the ")
    [eml] = (tmp_path / "outbox").glob("*.eml")
    assert message.endswith(f"the test mail to me@example.com is in {eml}")


def test_email_connection_refused_says_where(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port)
    with pytest.raises(CheckFailed) as caught:
        check_email(settings, "me@example.com", NOW)
    assert str(caught.value) == (
        f"test mail to me@example.com not sent: SMTP 127.0.0.1:{port}: connection refused; "
        "is an SMTP server listening there? (DBCRON_SMTP_HOST, _PORT)"
    )


def test_email_auth_failure_names_the_settings_not_the_password(tmp_path: Path) -> None:
    with SmtpTestServer(auth=("reports", "right")) as server:
        settings = make_settings(
            tmp_path, smtp_host="127.0.0.1", smtp_port=server.port,
            smtp_user="reports", smtp_password=PASSWORD,
        )  # fmt: skip
        with pytest.raises(CheckFailed) as caught:
            check_email(settings, "me@example.com", NOW)
    message = str(caught.value)
    assert "login as 'reports' refused: 535" in message
    assert message.endswith("; check DBCRON_SMTP_USER and DBCRON_SMTP_PASSWORD")
    assert PASSWORD not in message


def test_email_tls_mismatch_is_explained(tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    settings = make_settings(
        tmp_path, smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_security="ssl"
    )
    with pytest.raises(CheckFailed) as caught:
        check_email(settings, "me@example.com", NOW)
    assert "TLS failed" in str(caught.value)
    assert "465 usually means ssl, 587 starttls" in str(caught.value)


def test_email_bad_address(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="invalid e-mail address 'not an address'"):
        check_email(make_settings(tmp_path), "not an address", NOW)


@pytest.fixture
def sqlite_source(tmp_path: Path) -> str:
    import sqlite3

    path = tmp_path / "sales.db"
    sqlite3.connect(path).close()
    return f"sqlite:///{path}"


def test_source_sqlite(sqlite_source: str, tmp_path: Path) -> None:
    message = check_source(sqlite_source, make_settings(tmp_path))
    assert message.startswith(f"{sqlite_source}: connected to SQLite 3.")
    assert message.endswith(" ms")


def test_source_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(CheckFailed) as caught:
        check_source(f"sqlite:///{missing}", make_settings(tmp_path))
    assert str(caught.value) == f"no SQLite database at {missing}"
    assert not missing.exists()


def test_source_postgresql_and_mariadb(pg_url: str, mariadb_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert ": connected to PostgreSQL 1" in check_source(pg_url, settings)
    assert ": connected to MariaDB 1" in check_source(mariadb_url, settings)


def test_source_refused_masks_the_password(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{port}/sales"
    with pytest.raises(CheckFailed) as caught:
        check_source(url, make_settings(tmp_path))
    message = str(caught.value)
    assert PASSWORD not in message
    assert message.startswith(f"connecting failed on postgresql 127.0.0.1:{port}/sales: ")
    assert message.endswith("; is the database server running and listening there?")


def test_source_wrong_password_mariadb(mariadb_url: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = sa.make_url(mariadb_url).set(password=PASSWORD).render_as_string(hide_password=False)
    with pytest.raises(CheckFailed) as caught:
        check_source(url, make_settings(tmp_path))
    assert PASSWORD not in str(caught.value)
    assert str(caught.value).endswith("; check the user and password of the URL")


def test_source_from_a_task_expands_its_variable(
    sqlite_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBCRON_SOURCE_CHECK", sqlite_source)
    task = {"name": "daily", "kind": "report", "source": "${DBCRON_SOURCE_CHECK}"}
    assert "connected to SQLite" in check_source(task, make_settings(tmp_path))
    monkeypatch.delenv("DBCRON_SOURCE_CHECK")
    with pytest.raises(CheckFailed, match="DBCRON_SOURCE_CHECK, which is not set"):
        check_source(task, make_settings(tmp_path))
    with pytest.raises(CheckFailed, match=r"^nightly is a call task: it has no source$"):
        check_source({"name": "nightly", "kind": "call"}, make_settings(tmp_path))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def test_prune_removes_old_runs_and_files(store: Store, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, keep_history_days=90, keep_output_days=14)
    claim = Claim(host="h", pid=1, daemon_id=None, lease=None)
    for days, status in ((100, "succeeded"), (95, "failed"), (30, "succeeded")):
        when = NOW - timedelta(days=days)
        run_id = store.runs.claim("daily", when, "schedule", claim)
        assert run_id is not None
        done = Finished(status, when + timedelta(minutes=1))
        store.runs.update_many([(run_id, FIRST_FENCE, done)])
    running = store.runs.claim("daily", NOW - timedelta(days=200), "schedule", claim)

    out = tmp_path / "output" / "daily"
    out.mkdir(parents=True)
    for name, days in (("old.xlsx", 20), ("older.pdf", 40), ("new.xlsx", 3)):
        path = out / name
        path.write_bytes(b"x" * 1000)
        stamp = (NOW - timedelta(days=days)).timestamp()
        os.utime(path, (stamp, stamp))
    elsewhere = tmp_path / "keep-me.txt"
    elsewhere.write_text("not ours")
    os.utime(elsewhere, (0, 0))
    (out / "link").symlink_to(elsewhere)
    os.utime(out / "link", (0, 0), follow_symlinks=False)

    report = prune(store, settings, NOW)
    assert (report.runs, report.files, report.bytes) == (2, 2, 2000)
    assert report.describe() == (
        "removed 2 runs finished before 2025-12-02 10:00 UTC; 2 files (0.0 MB) older than "
        f"2026-02-16 10:00 UTC from {tmp_path / 'output'}"
    )
    assert sorted(p.name for p in out.iterdir()) == ["link", "new.xlsx"]
    assert elsewhere.exists()
    assert [r.id for r in store.runs.history(None, None, None, 10) if r.status == "running"] == [
        running
    ]


def test_prune_with_zero_days_keeps_everything(store: Store, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, keep_history_days=0, keep_output_days=0)
    assert prune(store, settings, NOW).describe() == (
        "run history kept (DBCRON_KEEP_HISTORY_DAYS=0); files kept (DBCRON_KEEP_OUTPUT_DAYS=0)"
    )


def report_task(source: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "daily-sales",
        "kind": "report",
        "schedule": {"cron": "0 9 * * mon-fri", "timezone": "Asia/Kolkata"},
        "source": source,
        "query": "SELECT :day AS day",
        "params": {"day": "{{ yesterday }}"},
        "export": {"formats": ["csv"], "filename": "day-{{ yesterday }}"},
        "email": {"to": ["manager@example.com"], "subject": "Sales {{ yesterday }}"},
    }
    data.update(over)
    return Task.model_validate(data).to_data()


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (None, NOW),
        (date(2026, 3, 2), datetime(2026, 3, 2, 3, 30, tzinfo=UTC)),  # Monday 09:00 IST
        (date(2026, 3, 6), datetime(2026, 3, 6, 3, 30, tzinfo=UTC)),  # Friday
    ],
)
def test_slot_for_as_of(as_of: date | None, expected: datetime) -> None:
    slot = slot_for(Task.model_validate(report_task("sqlite://")), "UTC", as_of, NOW)
    assert slot == expected
    assert slot.tzinfo is not None and slot.utcoffset() == timedelta(hours=5, minutes=30)


def test_slot_for_a_day_without_a_run_says_so() -> None:
    with pytest.raises(NoSlot) as caught:
        slot_for(Task.model_validate(report_task("sqlite://")), "UTC", date(2026, 3, 7), NOW)
    assert str(caught.value).startswith("daily-sales has no run on 2026-03-07 (Saturday) (")
    assert str(caught.value).endswith(
        "pick a date it runs on, or leave out --as-of to preview as of now"
    )


def test_dry_run_service_previews_the_slot_of_a_date(
    store: Store, sqlite_source: str, tmp_path: Path
) -> None:
    store.tasks.upsert([report_task(sqlite_source)], NOW)
    out = tmp_path / "preview"
    result = dry_run(store, make_settings(tmp_path), "daily-sales", "2026-03-03", str(out), (),
                     NOW)  # fmt: skip
    assert result.status == "succeeded", result.error
    assert result.result["subject"] == "Sales 2026-03-02"
    assert (out / "day-2026-03-02.csv").read_text(encoding="utf-8-sig").splitlines() == [
        "day", "2026-03-02"
    ]  # fmt: skip
    assert not (tmp_path / "outbox").exists()


def cli_group(tmp_path: Path) -> click.Group:
    @click.group(cls=Group)
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        ctx.obj = App({"store": f"sqlite:///{tmp_path / 'store.db'}", "state_dir": str(tmp_path)})

    for command in COMMANDS:
        cli.add_command(command)
    return cli


def test_cli_commands(
    tmp_path: Path, sqlite_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("DBCRON_")]:
        monkeypatch.delenv(key)
    runner = CliRunner()
    cli = cli_group(tmp_path)

    result = runner.invoke(cli, ["test-source", sqlite_source])
    assert result.exit_code == 0 and "connected to SQLite" in result.output

    monkeypatch.setenv("DBCRON_SOURCE_SALES", sqlite_source)
    result = runner.invoke(cli, ["test-source", "sales"])
    assert result.exit_code == 0 and "connected to SQLite" in result.output

    result = runner.invoke(cli, ["test-source", "daily-salse"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: no store at {tmp_path}/store.db: set DBCRON_STATE_DIR (or --state-dir) "
        "to where the daemon keeps it, or create one with 'manage-tasks apply'\n"
    )
    assert not (tmp_path / "store.db").exists()

    result = runner.invoke(cli, ["test-email", "me@example.com"])
    assert result.exit_code == 0, result.output
    assert "the test mail to me@example.com is in" in result.output

    started = time.monotonic()
    result = runner.invoke(cli, ["prune"])
    assert result.exit_code == 0
    assert result.output.startswith("removed 0 runs finished before ")
    assert time.monotonic() - started < 5

    for command in COMMANDS:
        assert command.help, f"{command.name} has no help"


def test_source_missing_role_names_the_user_not_the_database(pg_url: str, tmp_path: Path) -> None:
    """Before: '... role "nobody" does not exist; check the database name at the end of the URL'."""
    import sqlalchemy as sa

    url = sa.make_url(pg_url).set(username="nobody").render_as_string(hide_password=False)
    with pytest.raises(CheckFailed) as caught:
        check_source(url, make_settings(tmp_path))
    message = str(caught.value)
    assert 'role "nobody" does not exist' in message
    assert message.endswith(
        "; check the user name of the URL: the server has no such role (user)"
    )
