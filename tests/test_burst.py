"""Bursting: one mail and file set per address, from a real PostgreSQL table, to aiosmtpd."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import make_settings
from dbcron.jobs import execute
from dbcron.jobs.types import JobRequest, JobResult
from dbcron.model import Task
from dbcron.settings import Settings
from dbcron.validation import not_allowed
from smtp_server import SmtpTestServer

SLOT = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
MANAGERS = [f"manager{i:02d}@example.com" for i in range(50)]
BAD = ["not-an-address", None, "two@example.com, three@example.com"]




def fill_orders(url: str) -> int:
    """Rows for 50 managers (i % 50, so they interleave) plus rows with bad addresses."""
    rows = [{"id": i, "manager_email": MANAGERS[i % 50], "amount": i * 3}
            for i in range(1, 201)]
    rows += [{"id": 1000 + i, "manager_email": bad, "amount": 0} for i, bad in enumerate(BAD)]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY, "
                             "manager_email VARCHAR(200), amount INTEGER)"))
        conn.execute(sa.text("INSERT INTO orders VALUES (:id, :manager_email, :amount)"), rows)
    engine.dispose()
    return len(rows)


def burst_task(source: str, **burst: Any) -> Task:
    return Task.model_validate({
        "name": "team-orders", "kind": "report", "schedule": {"cron": "0 8 * * *"},
        "source": source,
        "query": "SELECT id, manager_email, amount FROM orders ORDER BY id",
        "export": {"formats": ["csv"], "filename": "orders-{{ today }}"},
        "email": {"subject": "Your orders: {{ rows }} rows for {{ recipient }}"},
        "burst": {"column": "manager_email", **burst},
    })


def run(task: Task, settings: Settings) -> JobResult:
    return execute(JobRequest(task=task, slot=SLOT, settings=settings, timeout=30, run_id=1))


def _csv_rows(message: Any) -> list[dict[str, str]]:
    (part,) = list(message.iter_attachments())
    text = part.get_payload(decode=True).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_burst_of_50_from_postgresql_with_no_crossed_rows(
    pg_url: str, settings: Settings, smtp_server: SmtpTestServer
) -> None:
    total = fill_orders(pg_url)
    result = run(burst_task(pg_url), settings)
    assert result.status == "succeeded", result.error
    assert result.rows == total
    assert result.summary == ("burst 203 rows to 50 recipients; mailed 50; "
                              "3 values refused (see the ledger)")
    assert len(smtp_server.messages) == 50
    crossed = 0
    seen: set[str] = set()
    for received in smtp_server.messages:
        (to,) = received.rcpt_tos
        assert str(received.message["To"]) == to and received.message["Cc"] is None
        rows = _csv_rows(received.message)
        crossed += sum(1 for r in rows if r["manager_email"] != to)
        assert len(rows) == 4  # 200 rows over 50 managers
        assert received.message["Subject"] == f"Your orders: 4 rows for {to}"
        seen.update(r["id"] for r in rows)
    assert crossed == 0
    assert len(seen) == 200  # every good row reached exactly its one manager
    ids = {str(m.message["Message-ID"]) for m in smtp_server.messages}
    assert len(ids) == 50
    ledger = {(d["recipient"], d["status"], d["detail"]) for d in result.deliveries}
    assert len([d for d in result.deliveries if d["status"] == "sent"]) == 50
    assert ("not-an-address", "failed", "not a valid address") in ledger
    assert ("(empty)", "failed", "no address (empty)") in ledger
    assert ("two@example.com, three@example.com", "failed", "not a valid address") in ledger


def test_burst_cap_fails_the_rest(tmp_path: Path, settings: Settings,
                                  smtp_server: SmtpTestServer) -> None:
    fill_orders(f"sqlite:///{tmp_path / 'orders.db'}")
    result = run(burst_task(f"sqlite:///{tmp_path / 'orders.db'}", max=10), settings)
    assert result.status == "succeeded", result.error
    assert len(smtp_server.messages) == 10
    over = [d for d in result.deliveries if d["detail"].startswith("over burst.max")]
    assert len(over) == 40 and over[0]["detail"] == "over burst.max (10 recipients per run)"


def test_a_refused_mail_fails_only_its_row(tmp_path: Path, smtp_server: SmtpTestServer
                                           ) -> None:
    fill_orders(f"sqlite:///{tmp_path / 'orders.db'}")
    smtp_server.fail_first = 1
    smtp_server.fail_reply = "550 5.1.1 No such user"
    settings = make_settings(tmp_path, smtp_server)
    result = run(burst_task(f"sqlite:///{tmp_path / 'orders.db'}", max=3), settings)
    assert (result.status, result.retryable) == ("failed", False)
    assert result.error == "burst: 1 of 3 mails not sent (see the ledger)"
    assert [d["status"] for d in result.deliveries if "@" in d["recipient"]
            and "," not in d["recipient"]].count("sent") == 2


def test_missing_column_is_a_clear_error(tmp_path: Path, settings: Settings) -> None:
    fill_orders(f"sqlite:///{tmp_path / 'orders.db'}")
    task = burst_task(f"sqlite:///{tmp_path / 'orders.db'}").model_copy(
        update={"burst": burst_task("x", column="owner").burst})
    result = run(task, settings)
    assert result.error == ("burst: the result has no column 'owner'; its columns are id, "
                            "manager_email, amount")


def test_burst_keeps_everyone_else_out_of_the_mail() -> None:
    with pytest.raises(ValueError, match=re.escape(
            "burst: each mail goes only to the address in column 'manager_email'; leave out "
            "email.to, cc and bcc")):
        Task.model_validate({
            "name": "t", "kind": "report", "schedule": {"every": "1h"}, "source": "sqlite://",
            "query": "SELECT 1", "email": {"cc": ["boss@example.com"]},
            "burst": {"column": "manager_email"}})


@pytest.mark.parametrize("email", [
    {"send": "if_changed"},
    {"only_new": {"key": ["id"]}},
    {"send": "if_changed", "changes": {"key": ["id"]}},
])
def test_burst_refuses_change_aware_sending(email: dict[str, object]) -> None:
    # A burst mails each recipient their own rows; a task-wide "last mail" cannot decide it.
    # Refused where definitions come in; a task stored before still loads (and warns).
    data = {"name": "t", "kind": "report", "schedule": {"every": "1h"}, "source": "sqlite://",
            "query": "SELECT 1", "email": email, "burst": {"column": "manager_email"}}
    task = Task.model_validate(data)
    assert not_allowed([("t.yaml", data)], [task], (), ()) == [
        "t.yaml: task 't': burst: send: if_changed, only_new and changes compare a task's "
        "whole result with its last mail, which a burst does not send; leave them out, or "
        "drop burst"]
