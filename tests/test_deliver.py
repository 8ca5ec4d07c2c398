"""Webhook, Slack and Teams deliveries against a local HTTP server, from real report runs."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from conftest import make_settings
from dbcron.jobs.deliver import RunFacts, deliver_all, idempotency_key
from dbcron.model import Task
from dbcron.settings import Settings
from smtp_server import SmtpTestServer
from test_pipeline import ROWS, SLOT, fill_sales, report, run
from webhook_server import WebhookServer

SECRET = "hmac-secret-0123456789"




@pytest.fixture
def hooks(webhook_server: WebhookServer, monkeypatch: pytest.MonkeyPatch) -> WebhookServer:
    """The receivers' URLs and credentials live in the environment, as in production."""
    monkeypatch.setenv("DBCRON_SECRET_SLACK_HOOK", f"{webhook_server.url}/slack/T000/B000/XXXX")
    monkeypatch.setenv("DBCRON_SECRET_TEAMS_HOOK", f"{webhook_server.url}/teams/workflow")
    monkeypatch.setenv("DBCRON_SECRET_ETL_TOKEN", "etl-token-42")
    monkeypatch.setenv("DBCRON_SECRET_ETL_HMAC", SECRET)
    return webhook_server


CHANNELS: list[dict[str, Any]] = [
    {"type": "slack", "url": "${DBCRON_SECRET_SLACK_HOOK}"},
    {"type": "teams", "url": "${DBCRON_SECRET_TEAMS_HOOK}", "rows": 5},
    {"type": "webhook", "name": "etl", "url": "${DBCRON_SECRET_ETL_URL}",
     "headers": {"Authorization": "Bearer ${DBCRON_SECRET_ETL_TOKEN}", "X-Source": "dbcron"},
     "sign": {"secret": "${DBCRON_SECRET_ETL_HMAC}"},
     "body": '{"report": {{ task | tojson }}, "day": {{ yesterday | tojson }}, '
             '"rows": {{ rows }}, "first": {{ first_rows[0] | tojson }}}'},
]


def _report(tmp_path: Path, hooks: WebhookServer, monkeypatch: pytest.MonkeyPatch,
            channels: list[dict[str, Any]] = CHANNELS, **over: Any) -> Task:
    monkeypatch.setenv("DBCRON_SECRET_ETL_URL", f"{hooks.url}/etl")
    return report(fill_sales(f"sqlite:///{tmp_path / 'sales.db'}"), deliver=channels, **over)


def test_slack_teams_and_webhook_after_the_mail(
    tmp_path: Path, settings: Settings, hooks: WebhookServer, smtp_server: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = run(_report(tmp_path, hooks, monkeypatch), settings, run_id=7)
    assert result.status == "succeeded", result.error
    assert result.summary == "mailed 3 files to 2 recipients; posted to slack, teams, etl"
    assert len(smtp_server.messages) == 1
    assert [(d["channel"], d["recipient"], d["status"], d["detail"])
            for d in result.deliveries] == [
        ("mail", "manager@example.com", "sent", "accepted"),
        ("mail", "boss@example.com", "sent", "accepted"),
        ("slack", "${DBCRON_SECRET_SLACK_HOOK}", "sent", "HTTP 200"),
        ("teams", "${DBCRON_SECRET_TEAMS_HOOK}", "sent", "HTTP 200"),
        ("etl", "${DBCRON_SECRET_ETL_URL}", "sent", "HTTP 200"),
    ]

    (slack,) = hooks.on("/slack/T000/B000/XXXX")
    _check_slack(slack.json())
    (teams,) = hooks.on("/teams/workflow")
    _check_teams(teams.json(), shown=5)

    (etl,) = hooks.on("/etl")
    assert etl.json() == {"report": "daily-sales", "day": "2026-03-01", "rows": ROWS,
                          "first": [1, "Zürich", 10.25, "2026-02-02"]}
    assert etl.headers["Authorization"] == "Bearer etl-token-42"
    assert etl.headers["X-Source"] == "dbcron"
    assert etl.headers["Content-Type"] == "application/json; charset=utf-8"
    key = idempotency_key("daily-sales", SLOT, "etl")
    assert etl.headers["Idempotency-Key"] == key and len(key) == 32
    assert key != idempotency_key("daily-sales", SLOT, "slack")
    assert slack.headers["Idempotency-Key"] == idempotency_key("daily-sales", SLOT, "slack")
    # The receiver checks the signature with the shared secret over "<t>.<body>".
    stamp, mac = etl.headers["X-Dbcron-Signature"].split(",")
    t = stamp.removeprefix("t=")
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + etl.body, hashlib.sha256)
    assert mac == f"sha256={expected.hexdigest()}"


def _check_slack(payload: dict[str, Any]) -> None:
    """Block Kit as documented for incoming webhooks, within its limits."""
    assert set(payload) == {"text", "blocks"}
    assert payload["text"].startswith("Sales report 2026-03-01: 120 rows: 120 rows")
    blocks = payload["blocks"]
    assert 1 <= len(blocks) <= 50
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    header = blocks[0]["text"]
    assert header["type"] == "plain_text" and len(header["text"]) <= 150
    assert header["text"] == "Sales report 2026-03-01: 120 rows"
    for block in blocks[1:3]:
        assert block["text"]["type"] == "mrkdwn" and len(block["text"]["text"]) <= 3000
    assert blocks[1]["text"]["text"] == (
        "120 rows, first 10 below · scheduled 2026-03-02 09:00 GMT")
    table = blocks[2]["text"]["text"]
    assert table.startswith("```") and table.endswith("```")
    lines = table.strip("`").splitlines()
    assert lines[0].split() == ["id", "region", "amount", "sold_on"]
    assert lines[2].split() == ["1", "Zürich", "10.25", "2026-02-02"]
    assert len(lines) == 2 + 10
    note = blocks[3]["elements"][0]
    assert note["type"] == "mrkdwn"
    assert note["text"].startswith("Files: sales-2026-03-01.xlsx, sales-2026-03-01.pdf, "
                                   "sales-2026-03-01.csv (in ")
    assert note["text"].endswith("and mailed to 2 recipients)")


def _check_teams(payload: dict[str, Any], shown: int) -> None:
    """A message with one Adaptive Card, as Teams incoming webhooks and Workflows take it."""
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, summary, table, note = card["body"]
    assert (title["type"], title["text"], title["weight"]) == (
        "TextBlock", "Sales report 2026-03-01: 120 rows", "Bolder")
    assert summary["text"] == "120 rows, first 5 below · scheduled 2026-03-02 09:00 GMT"
    assert table["type"] == "Table" and table["firstRowAsHeader"] is True
    assert len(table["columns"]) == 4
    rows = table["rows"]
    assert len(rows) == 1 + shown
    for row in rows:
        assert row["type"] == "TableRow" and len(row["cells"]) == 4
        for cell in row["cells"]:
            assert cell["type"] == "TableCell" and cell["items"][0]["type"] == "TextBlock"
    assert [c["items"][0]["text"] for c in rows[1]["cells"]] == ["1", "Zürich", "10.25",
                                                                 "2026-02-02"]
    assert note["text"].startswith("Files: sales-2026-03-01.xlsx")


def test_a_failing_channel_fails_the_run_without_a_retry_and_others_still_go(
    tmp_path: Path, settings: Settings, hooks: WebhookServer, smtp_server: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hooks.script["/teams/workflow"] = [404]
    result = run(_report(tmp_path, hooks, monkeypatch), settings)
    assert result.status == "failed" and result.retryable is False
    assert result.error == "delivery failed for teams: HTTP 404 Not Found"
    assert result.rows == ROWS and len(result.artifacts) == 3  # the files are kept
    assert len(smtp_server.messages) == 1
    assert len(hooks.on("/teams/workflow")) == 1  # a 404 is not retried
    assert len(hooks.on("/slack/T000/B000/XXXX")) == len(hooks.on("/etl")) == 1
    assert "T000" not in (result.error or "") + result.summary


def _facts(task: Task, tmp_path: Path, rows: int = 3) -> RunFacts:
    return RunFacts(
        task=task, slot=SLOT.astimezone(UTC), local=SLOT, env={"task": task.name}, rows=rows,
        columns=["a"], preview=[(i,) for i in range(rows)], files=[], out_dir=tmp_path,
        reason=None, holds=None, mailed_to=0, run_id=1, attempt=1,
    )


def _hook_task(url: str, **channel: Any) -> Task:
    return Task.model_validate({
        "name": "t", "kind": "report", "schedule": {"every": "1h"}, "source": "sqlite://",
        "query": "SELECT 1", "deliver": [{"type": "webhook", "url": url, **channel}]})


def test_only_the_post_is_retried_with_backoff(tmp_path: Path, webhook_server: WebhookServer
                                               ) -> None:
    webhook_server.script["/h"] = [503, 429, 200]
    waits: list[float] = []
    (delivery,) = deliver_all(_facts(_hook_task(f"{webhook_server.url}/h"), tmp_path), {},
                              sleep=waits.append)
    assert (delivery.status, delivery.detail) == ("sent", "HTTP 200 after 3 attempts")
    assert waits == [1.0, 1.0]  # our backoff, then the receiver's Retry-After
    keys = {r.headers["Idempotency-Key"] for r in webhook_server.on("/h")}
    assert len(keys) == 1  # every attempt carries the same key


def test_retries_run_out(tmp_path: Path, webhook_server: WebhookServer) -> None:
    webhook_server.script["/h"] = [500]
    waits: list[float] = []
    (delivery,) = deliver_all(_facts(_hook_task(f"{webhook_server.url}/h", retries=2),
                                     tmp_path), {}, sleep=waits.append)
    assert (delivery.status, delivery.detail) == (
        "failed", "HTTP 500 Internal Server Error after 3 attempts")
    assert waits == [1.0, 2.0]


def test_a_slow_receiver_times_out(tmp_path: Path, webhook_server: WebhookServer) -> None:
    webhook_server.script["/slow"] = [3.0]
    (delivery,) = deliver_all(_facts(_hook_task(f"{webhook_server.url}/slow", timeout="1s",
                                                retries=0), tmp_path), {})
    assert (delivery.status, delivery.detail) == ("failed", "no answer within 1s")


def test_a_missing_secret_is_a_failed_delivery_naming_it(tmp_path: Path) -> None:
    task = _hook_task("${DBCRON_SECRET_NOT_SET_HOOK}")
    (delivery,) = deliver_all(_facts(task, tmp_path), {})
    assert (delivery.status, delivery.detail) == (
        "failed",
        "url needs ${DBCRON_SECRET_NOT_SET_HOOK}, which is not set in the daemon's environment")


def test_a_body_that_is_not_json_fails_before_posting(tmp_path: Path,
                                                      webhook_server: WebhookServer) -> None:
    task = _hook_task(f"{webhook_server.url}/h", body="rows: {{ rows }}")
    (delivery,) = deliver_all(_facts(task, tmp_path), {})
    assert delivery.status == "failed"
    assert delivery.detail.startswith("body is not JSON (Expecting value: line 1 column 1")
    assert webhook_server.received == []


def test_send_rules_and_alerts_skip_channels(tmp_path: Path) -> None:
    task = _hook_task("http://127.0.0.1:9/never", send="if_rows")
    (delivery,) = deliver_all(_facts(task, tmp_path, rows=0), {})
    assert (delivery.status, delivery.detail) == ("skipped", "no rows (send: if_rows)")
    quiet = RunFacts(**{**_facts(task, tmp_path).__dict__, "holds": False, "reason": "x"})
    assert deliver_all(quiet, {})[0].detail == "condition did not hold"


def test_default_webhook_document(tmp_path: Path, webhook_server: WebhookServer) -> None:
    (delivery,) = deliver_all(_facts(_hook_task(f"{webhook_server.url}/h"), tmp_path), {})
    assert delivery.status == "sent"
    (got,) = webhook_server.received
    document = got.json()
    assert document == {
        "task": "t", "title": "t (2026-03-02)", "slot": "2026-03-02T09:00:00+00:00",
        "run_id": 1, "attempt": 1, "rows": 3, "columns": ["a"], "first_rows": [[0], [1], [2]],
        "files": [], "output_dir": str(tmp_path), "reason": None,
        "idempotency_key": got.headers["Idempotency-Key"],
    }


@pytest.mark.parametrize(("channel", "message"), [
    ({"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"},
     "url: give the slack webhook URL as ${VAR}: the URL itself is the secret"),
    ({"type": "webhook", "url": "https://u:pw@etl.example/h"},
     "url: use ${VAR}, or an http(s) URL without a user, password or query string"),
    ({"type": "webhook", "url": "https://etl.example/h?token=abc"},
     "(a token in the URL belongs in ${VAR})"),
    ({"type": "webhook", "url": "https://etl.example/h",
      "headers": {"Authorization": "Bearer abc"}},
     "headers.Authorization: a credential must come from ${VAR}"),
    ({"type": "webhook", "url": "https://etl.example/h", "sign": {"secret": "abc"}},
     "give the secret as ${VAR}; secrets never enter the store"),
    ({"type": "webhook", "url": "https://etl.example/h",
      "headers": {"X-Leak": "${DBCRON_SMTP_PASSWORD}"}},
     "${DBCRON_SMTP_PASSWORD} cannot be read here: webhook and monitor secrets come only from "
     "DBCRON_SECRET_* variables"),
    ({"type": "slack", "url": "${DBCRON_SOURCE_SALES}"},
     "${DBCRON_SOURCE_SALES} cannot be read here"),
    ({"type": "webhook", "url": "https://etl.example/h", "sign": {"secret": "${HOME}"}},
     "name it e.g. DBCRON_SECRET_HOME"),
    ({"type": "teams", "url": "${T}", "body": "{}"}, "'body' is for type webhook, not teams"),
    ({"type": "chat", "url": "${T}"},
     "deliver.0.type: 'chat' is not one of webhook, slack, teams, mail"),
])
def test_channel_definitions_are_checked(channel: dict[str, Any], message: str) -> None:
    from dbcron.errors import InvalidTask
    from dbcron.validation import parse_tasks

    data = {"name": "t", "kind": "report", "schedule": {"every": "1h"}, "source": "sqlite://",
            "query": "SELECT 1", "deliver": [channel]}
    with pytest.raises(InvalidTask) as caught:
        parse_tasks([("tasks/t.yaml", data)])
    assert message in str(caught.value)
    assert "tasks/t.yaml" in str(caught.value)


def test_a_stored_channel_never_posts_another_setting(
    tmp_path: Path, settings: Settings, hooks: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task stored before the DBCRON_SECRET_* rule (written past validation) still
    cannot post the SMTP password: the worker checks the reference again."""
    task = _report(tmp_path, hooks, monkeypatch)
    leaky = task.deliver[2].model_copy(
        update={"headers": {"X-Leak": "${DBCRON_SMTP_PASSWORD}"}, "sign": None})
    monkeypatch.setenv("DBCRON_SMTP_PASSWORD", "Smtp-Pa55-word")
    result = run(task.model_copy(update={"deliver": [leaky]}), settings)
    assert [(d["status"], d["detail"]) for d in result.deliveries if d["channel"] == "etl"] == [(
        "failed", "headers.X-Leak: ${DBCRON_SMTP_PASSWORD} cannot be read here: webhook and "
        "monitor secrets come only from DBCRON_SECRET_* variables, so a task cannot post the "
        "daemon's other settings to a URL of its choosing; name it e.g. "
        "DBCRON_SECRET_DBCRON_SMTP_PASSWORD")]
    assert hooks.received == []


def test_two_channels_need_names() -> None:
    with pytest.raises(ValueError, match="two channels are called slack: give each a 'name'"):
        Task.model_validate({"name": "t", "kind": "report", "schedule": {"every": "1h"},
                             "source": "sqlite://", "query": "SELECT 1",
                             "deliver": [{"type": "slack", "url": "${DBCRON_SECRET_A}"},
                                         {"type": "slack", "url": "${DBCRON_SECRET_B}"}]})


def test_dry_run_posts_nothing(tmp_path: Path, settings: Settings, hooks: WebhookServer,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(_report(tmp_path, hooks, monkeypatch), settings, dry_run=True,
                 out_dir=tmp_path / "dry")
    assert result.status == "succeeded", result.error
    assert "would post to slack, teams, etl" in result.summary
    assert hooks.received == []


def test_the_stored_task_keeps_references_not_secrets(tmp_path: Path, hooks: WebhookServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    stored = json.dumps(_report(tmp_path, hooks, monkeypatch).to_data())
    assert "${DBCRON_SECRET_SLACK_HOOK}" in stored
    assert "T000" not in stored and "etl-token-42" not in stored


def test_files_too_large_to_mail_are_published(tmp_path: Path, smtp_server: SmtpTestServer
                                               ) -> None:
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=0.001,
                             publish_dir=tmp_path / "pub",
                             publish_url="https://files.example/reports")
    task = report(fill_sales(f"sqlite:///{tmp_path / 'sales.db'}"))
    result = run(task, settings)
    assert result.status == "succeeded", result.error
    (received,) = smtp_server.messages
    assert list(received.message.iter_attachments()) == []
    body = received.message.get_body(("plain",))
    assert body is not None
    assert "They are in https://files.example/reports/daily-sales/2026-03-02T0900/." in \
        body.get_content()
    published = sorted(p.name for p in (tmp_path / "pub" / "daily-sales" /
                                        "2026-03-02T0900").iterdir())
    assert published == ["sales-2026-03-01.csv", "sales-2026-03-01.pdf",
                         "sales-2026-03-01.xlsx"]


def test_files_that_fit_are_not_published(tmp_path: Path, settings: Settings,
                                          smtp_server: SmtpTestServer) -> None:
    from dataclasses import replace

    task = report(fill_sales(f"sqlite:///{tmp_path / 'sales.db'}"))
    result = run(task, replace(settings, publish_dir=tmp_path / "pub"))
    assert result.status == "succeeded", result.error
    assert not (tmp_path / "pub").exists()
    assert len(list(smtp_server.messages[0].message.iter_attachments())) == 3


def test_files_no_mail_carries_are_not_published(tmp_path: Path, smtp_server: SmtpTestServer
                                                 ) -> None:
    # The primary mail is not sent (send: if_empty, and there are rows) and the only mail
    # entry goes without files: nothing may land in the web-exposed publish directory.
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=0.001,
                             publish_dir=tmp_path / "pub")
    task = report(fill_sales(f"sqlite:///{tmp_path / 'sales.db'}"))
    assert task.email is not None
    task = task.model_copy(update={
        "email": task.email.model_copy(update={"send": "if_empty"}),
        "deliver": [Task.model_validate({**task.to_data(), "deliver": [
            {"type": "mail", "name": "heads-up", "to": ["ceo@example.com"],
             "attach": False}]}).deliver[0]]})
    result = run(task, settings)
    assert result.status == "succeeded", result.error
    (received,) = smtp_server.messages
    assert received.rcpt_tos == ["ceo@example.com"]
    assert not (tmp_path / "pub").exists()


def test_a_task_whose_mail_is_an_entry_does_not_say_no_email(
        tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    settings = make_settings(tmp_path, smtp_server)
    data = report(fill_sales(f"sqlite:///{tmp_path / 'sales.db'}")).to_data()
    del data["email"]
    data["deliver"] = [{"type": "mail", "name": "director", "to": ["d@example.com"]}]
    result = run(Task.model_validate(data), settings)
    assert result.status == "succeeded", result.error
    assert result.summary == "director: mailed 3 files to 1 recipient"
