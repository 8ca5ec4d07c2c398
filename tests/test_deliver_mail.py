"""Mail entries of `deliver:`: a second mail of a run, with its own Message-ID, ledger rows
and resend; real runs through the CLI to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Cli
from dbcron.errors import InvalidTask
from dbcron.validation import not_allowed, parse_task
from smtp_server import SmtpTestServer
from test_ledger import apply_sales_report

SUMMARY = {"type": "mail", "name": "summary", "to": ["boss@example.com"],
           "subject": "Sales summary for {{ today }}: {{ rows }} orders",
           "body": "{{ rows }} orders today.", "attach": False}


@pytest.fixture
def applied(run_cli: Cli, tmp_path: Path, smtp_server: SmtpTestServer,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    return apply_sales_report(run_cli, tmp_path, smtp_server, monkeypatch, [SUMMARY])


def _ledger(run_cli: Cli) -> list[tuple[str, str, str, bool]]:
    (run,) = json.loads(run_cli("history", "--deliveries", "--json").stdout)
    return [(d["channel"], d["recipient"], d["status"], d["resend"]) for d in run["deliveries"]]


def test_email_and_a_deliver_mail_are_two_mails(applied: Path, run_cli: Cli,
                                                 smtp_server: SmtpTestServer) -> None:
    ran = run_cli("run", "daily-sales", "--local")
    assert ran.exit_code == 0, ran.output
    primary, summary = smtp_server.messages
    assert sorted(primary.rcpt_tos) == ["anna@example.com", "bo@example.com"]
    assert summary.rcpt_tos == ["boss@example.com"]
    assert primary.message["Message-ID"] != summary.message["Message-ID"]
    assert summary.message["Message-ID"].startswith("<dbcron.daily-sales.summary.")
    assert summary.message["Subject"].startswith("Sales summary for ")
    assert summary.message["Subject"].endswith(": 30 orders")
    assert summary.message.get_content().strip() == "30 orders today."
    assert [a.get_filename() for a in primary.message.iter_attachments()] != []
    assert list(summary.message.iter_attachments()) == []  # attach: false
    assert _ledger(run_cli) == [
        ("mail", "anna@example.com", "sent", False), ("mail", "bo@example.com", "sent", False),
        ("summary", "boss@example.com", "sent", False)]
    assert "summary  boss@example.com  sent" in run_cli("history", "--deliveries").stdout
    shown = json.loads(run_cli("show", "daily-sales", "--json").stdout)
    assert [d["channel"] for d in shown["recent_runs"][0]["deliveries"]] == [
        "mail", "mail", "summary"]

    # A resend sends the same two messages again: same Message-IDs, nothing rebuilt.
    run_id = json.loads(run_cli("history", "--json").stdout)[0]["id"]
    again = run_cli("resend", str(run_id))
    assert again.exit_code == 0, again.output
    assert "summary boss@example.com: sent (resent)" in again.stdout
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == 4 and ids[2:] == ids[:2]


def test_resend_failed_only_sends_only_the_failed_mail_entry(
    applied: Path, run_cli: Cli, smtp_server: SmtpTestServer
) -> None:
    smtp_server.refuse.add("boss@example.com")
    ran = run_cli("run", "daily-sales", "--local")
    assert ran.exit_code == 1
    assert "Error: delivery failed for summary: mail not sent: SMTP " in ran.stderr
    assert ": all recipients refused: boss@example.com (550 5.1.1 No such mailbox)" \
        in ran.stderr
    assert _ledger(run_cli) == [
        ("mail", "anna@example.com", "sent", False), ("mail", "bo@example.com", "sent", False),
        ("summary", "boss@example.com", "failed", False)]
    (primary,) = smtp_server.messages
    run_id = json.loads(run_cli("history", "--json").stdout)[0]["id"]

    smtp_server.refuse.clear()
    again = run_cli("resend", str(run_id), "--failed-only")
    assert (again.exit_code, again.stdout) == (
        0, "summary boss@example.com: sent (resent)\n")
    first, resent = smtp_server.messages
    assert first is primary and resent.rcpt_tos == ["boss@example.com"]
    assert resent.message["Message-ID"].startswith("<dbcron.daily-sales.summary.")
    assert _ledger(run_cli)[-1] == ("summary", "boss@example.com", "sent", True)


def test_a_mail_entry_without_email(applied: Path, run_cli: Cli,
                                    smtp_server: SmtpTestServer) -> None:
    task = yaml.safe_load(applied.read_text())
    del task["email"]
    task["deliver"] = [{"type": "mail", "to": ["boss@example.com"], "send": "if_rows"}]
    applied.write_text(yaml.safe_dump(task))
    assert run_cli("apply", str(applied)).exit_code == 0
    ran = run_cli("run", "daily-sales", "--local")
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.startswith("run #1 of daily-sales: succeeded in ")
    assert "mail not sent" not in ran.stdout
    (mail,) = smtp_server.messages
    assert mail.rcpt_tos == ["boss@example.com"]
    assert mail.message["Message-ID"].startswith("<dbcron.daily-sales.mail.")
    assert [a.get_filename() for a in mail.message.iter_attachments()] != []  # attach: true
    assert _ledger(run_cli) == [("mail", "boss@example.com", "sent", False)]
    again = run_cli("resend", "1")
    assert (again.exit_code, again.stdout) == (0, "mail boss@example.com: sent (resent)\n")


def test_dry_run_writes_the_mail_entry_and_sends_nothing(
    applied: Path, run_cli: Cli, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    out = tmp_path / "preview"
    result = run_cli("run", "daily-sales", "--dry-run", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "would have summary: mailed to 1 recipient (preview in " in result.output
    assert len(list(out.glob("*.eml"))) == 2 and smtp_server.messages == []


BASE = {"name": "r", "kind": "report", "schedule": {"every": "1h"}, "source": "s",
        "query": "SELECT 1", "email": {"to": ["a@example.com"]}}


@pytest.mark.parametrize(("deliver", "expected"), [
    ([{"type": "slack", "url": "${DBCRON_SECRET_S}"},
      {"type": "mail", "name": "boss", "to": ["boss example.com"]}],
     "deliver.1.to.0: 'boss example.com' is not one mail address: write it as "
     "name@example.com, one per list item"),
    ([{"type": "mail", "name": "boss", "to": []}], "deliver.0.to: give at least one address"),
    ([{"type": "mail", "name": "boss"}], "deliver.0.to: is required"),
    ([{"type": "mail", "name": "boss", "to": ["b@example.com"], "atach": False}],
     "deliver.0.atach: unknown field 'atach'; did you mean 'attach'? valid fields: type, name, "
     "to, cc, bcc, subject, body, send, attach"),
    ([{"type": "mail", "to": ["b@example.com"]}],
     "(task): deliver.0: 'mail' is what history and resend call the task's email:; give this "
     "mail a name of its own, e.g. name: summary"),
    ([{"type": "email", "to": ["b@example.com"]}],
     "deliver.0.type: 'email' is not one of webhook, slack, teams, mail"),
    ([{"to": ["b@example.com"]}], "deliver.0.type: is required: one of webhook, slack, teams, "
     "mail"),
])
def test_bad_mail_entries_are_named(deliver: list[dict[str, Any]], expected: str) -> None:
    with pytest.raises(InvalidTask) as info:
        parse_task({**BASE, "deliver": deliver}, "t.yaml")
    assert info.value.problems == [f"t.yaml: task 'r': {expected}"]


@pytest.mark.parametrize("entry", [
    {"type": "mail", "name": "summary", "to": ["b@example.com"]},
    {"type": "webhook", "url": "https://hooks.example.com/in"},
])
def test_deliver_does_not_go_with_burst(entry: dict[str, Any]) -> None:
    data = {**BASE, "email": {"subject": "yours"}, "burst": {"column": "owner"},
            "deliver": [entry]}
    # The model takes it (a task stored before the rule still loads); apply refuses it.
    task = parse_task(data, "t.yaml")
    assert not_allowed([("t.yaml", data)], [task], (), ()) == [
        f"t.yaml: task 'r': deliver.0: a {entry['type']} entry does not go with burst (each "
        "recipient gets only their rows); put the extra addresses in the result column, or "
        "deliver from a second task"]


@pytest.mark.parametrize("entry", [
    {"type": "mail", "name": "summary", "to": ["b@example.com"], "send": "if_changed"},
    {"type": "webhook", "url": "https://hooks.example.com/in", "send": "if_changed"},
])
def test_if_changed_is_for_email_alone(entry: dict[str, Any]) -> None:
    # A channel's send rule never looked at if_changed: it posted every run.
    data = {**BASE, "deliver": [entry]}
    task = parse_task(data, "t.yaml")
    assert not_allowed([("t.yaml", data)], [task], (), ()) == [
        "t.yaml: task 'r': deliver.0.send: 'if_changed' compares with the task's last mail, "
        "so it is for email: alone; use always, if_rows or if_empty"]


@pytest.mark.parametrize("name", ["mail-part2", "dry-run"])
def test_a_mail_entry_cannot_take_the_names_of_the_tasks_own_mail(name: str) -> None:
    # mail-part2.eml is a split mail's kept part 2; <task>.dry-run the previews' Message-ID.
    with pytest.raises(InvalidTask) as info:
        parse_task({**BASE, "deliver": [{"type": "mail", "name": name,
                                         "to": ["b@example.com"]}]}, "t.yaml")
    assert info.value.problems == [
        f"t.yaml: task 'r': (task): deliver.0: the name '{name}' is taken by the task's own "
        "mail (its parts or dry-run previews); give this mail another name, e.g. name: "
        "summary"]

def test_resend_keeps_bcc_recipients_hidden(applied: Path, run_cli: Cli,
                                            smtp_server: SmtpTestServer) -> None:
    task = yaml.safe_load(applied.read_text())
    task["email"]["bcc"] = ["audit@example.com"]
    applied.write_text(yaml.safe_dump(task))
    assert run_cli("apply", str(applied)).exit_code == 0
    assert run_cli("run", "daily-sales", "--local").exit_code == 0
    again = run_cli("resend", "1")
    assert again.exit_code == 0, again.output
    resent = smtp_server.messages[2]  # the primary mail, again (after it and the summary)
    assert sorted(resent.rcpt_tos) == ["anna@example.com", "audit@example.com",
                                       "bo@example.com"]
    assert (resent.message["To"], resent.message["Cc"]) == ("anna@example.com",
                                                            "bo@example.com")
    assert "audit@example.com" not in resent.message.as_string()
