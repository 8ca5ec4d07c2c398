"""The delivery ledger and `resend`: real runs through the CLI, real SMTP, a local webhook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from conftest import Cli
from smtp_server import SmtpTestServer
from test_pipeline import fill_sales
from webhook_server import WebhookServer


def apply_sales_report(run_cli: Cli, tmp_path: Path, smtp_server: SmtpTestServer,
                       monkeypatch: pytest.MonkeyPatch, deliver: list[dict[str, Any]]) -> Path:
    """Apply daily-sales (30 rows of a SQLite source, csv, mailed to anna, cc bo) with
    these deliver: entries; returns its task file (the database is sales.db beside it)."""
    monkeypatch.setenv("DBCRON_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("DBCRON_SMTP_PORT", str(smtp_server.port))
    db = tmp_path / "sales.db"
    fill_sales(f"sqlite:///{db}", rows=30)
    monkeypatch.setenv("DBCRON_SOURCE_SALES", f"sqlite:///{db}")
    task: dict[str, Any] = {
        "name": "daily-sales", "kind": "report", "schedule": {"cron": "0 9 * * *"},
        "source": "sales", "query": "SELECT id, region, amount FROM sales ORDER BY id",
        "export": {"formats": ["csv"]},
        "email": {"to": ["anna@example.com"], "cc": ["bo@example.com"]},
        "deliver": deliver,
    }
    path = tmp_path / "daily-sales.yaml"
    path.write_text(yaml.safe_dump(task))
    applied = run_cli("apply", str(path))
    assert applied.exit_code == 0, applied.output
    return path


@pytest.fixture
def setup(run_cli: Cli, tmp_path: Path, smtp_server: SmtpTestServer,
          webhook_server: WebhookServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DBCRON_SECRET_SLACK_HOOK", f"{webhook_server.url}/slack")
    monkeypatch.setenv("DBCRON_SECRET_ETL_HOOK", f"{webhook_server.url}/etl")
    apply_sales_report(run_cli, tmp_path, smtp_server, monkeypatch, [
        {"type": "slack", "url": "${DBCRON_SECRET_SLACK_HOOK}"},
        {"type": "webhook", "name": "etl", "url": "${DBCRON_SECRET_ETL_HOOK}", "retries": 0}])
    return tmp_path / "sales.db"


def _ledger(run_cli: Cli) -> list[dict[str, Any]]:
    (run,) = json.loads(run_cli("history", "--deliveries", "--json").stdout)
    return [{k: d[k] for k in ("channel", "recipient", "status", "resend")}
            for d in run["deliveries"]]


def test_ledger_rows_and_resend_without_the_query(
    setup: Path, run_cli: Cli, smtp_server: SmtpTestServer, webhook_server: WebhookServer,
) -> None:
    webhook_server.script["/etl"] = [503]
    ran = run_cli("run", "daily-sales", "--local")
    assert ran.exit_code == 1
    assert "delivery failed for etl: HTTP 503 Service Unavailable" in ran.stderr
    assert _ledger(run_cli) == [
        {"channel": "mail", "recipient": "anna@example.com", "status": "sent", "resend": False},
        {"channel": "mail", "recipient": "bo@example.com", "status": "sent", "resend": False},
        {"channel": "slack", "recipient": "${DBCRON_SECRET_SLACK_HOOK}", "status": "sent",
         "resend": False},
        {"channel": "etl", "recipient": "${DBCRON_SECRET_ETL_HOOK}", "status": "failed",
         "resend": False},
    ]
    text = run_cli("history", "--deliveries").stdout
    assert "etl      ${DBCRON_SECRET_ETL_HOOK}    failed  HTTP 503 Service Unavailable" in text
    shown = json.loads(run_cli("show", "daily-sales", "--json").stdout)
    assert len(shown["recent_runs"][0]["deliveries"]) == 4
    run_id = json.loads(run_cli("history", "--json").stdout)[0]["id"]
    (first_post,) = webhook_server.on("/etl")

    # The source is gone: a resend that re-ran the query would fail.
    engine = sa.create_engine(f"sqlite:///{setup}")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE sales"))
    engine.dispose()
    webhook_server.script["/etl"] = [200]
    again = run_cli("resend", str(run_id), "--failed-only")
    assert (again.exit_code, again.stdout) == (
        0, "etl ${DBCRON_SECRET_ETL_HOOK}: sent (resent: HTTP 200)\n")
    _, second_post = webhook_server.on("/etl")
    assert second_post.body == first_post.body
    assert second_post.headers["Idempotency-Key"] == first_post.headers["Idempotency-Key"]
    assert len(smtp_server.messages) == 1 and len(webhook_server.on("/slack")) == 1
    assert _ledger(run_cli)[-1] == {"channel": "etl", "recipient": "${DBCRON_SECRET_ETL_HOOK}",
                                    "status": "sent", "resend": True}

    nothing = run_cli("resend", str(run_id), "--failed-only")
    assert (nothing.exit_code, nothing.stderr) == (
        1, f"Error: run {run_id} of daily-sales has no failed deliveries to resend "
        "(see 'manage-tasks history daily-sales --deliveries')\n")

    everything = run_cli("resend", str(run_id), "--json")
    assert everything.exit_code == 0, everything.output
    assert [(i["channel"], i["status"]) for i in json.loads(everything.stdout)] == [
        ("mail", "sent"), ("mail", "sent"), ("slack", "sent"), ("etl", "sent")]
    original, resent = smtp_server.messages
    assert resent.message["Message-ID"] == original.message["Message-ID"]
    assert sorted(resent.rcpt_tos) == ["anna@example.com", "bo@example.com"]
    assert [a.get_filename() for a in resent.message.iter_attachments()] == [
        a.get_filename() for a in original.message.iter_attachments()]


def test_skipped_mail_is_in_the_ledger(setup: Path, run_cli: Cli, tmp_path: Path,
                                       smtp_server: SmtpTestServer) -> None:
    engine = sa.create_engine(f"sqlite:///{setup}")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM sales"))
    engine.dispose()
    task = yaml.safe_load((tmp_path / "daily-sales.yaml").read_text())
    task["email"]["send"] = "if_rows"
    task["deliver"] = [{"type": "slack", "url": "${DBCRON_SECRET_SLACK_HOOK}", "send": "if_rows"}]
    (tmp_path / "daily-sales.yaml").write_text(yaml.safe_dump(task))
    assert run_cli("apply", str(tmp_path / "daily-sales.yaml")).exit_code == 0
    assert run_cli("run", "daily-sales", "--local").exit_code == 0
    assert [(d["channel"], d["status"]) for d in _ledger_details(run_cli)] == [
        ("mail", "skipped"), ("mail", "skipped"), ("slack", "skipped")]
    assert smtp_server.messages == []


def _ledger_details(run_cli: Cli) -> list[dict[str, Any]]:
    (run,) = json.loads(run_cli("history", "--deliveries", "--json").stdout)
    return list(run["deliveries"])


def test_resend_refuses_unknown_runs(run_cli: Cli, setup: Path) -> None:
    result = run_cli("resend", "999")
    assert (result.exit_code, result.stderr) == (
        1, "Error: no run 999; 'manage-tasks history' lists runs\n")
