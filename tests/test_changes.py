"""Change-aware delivery: `send: if_changed` and `only_new`, with a real SMTP server and store.

In-process runs go through `execute` (as a worker does); the if_changed case
also runs through the real daemon. The store side is tested on SQLite and
PostgreSQL, including the upgrade of a version-2 store.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import text

from conftest import Cli, make_settings, reopened_from, write_task
from daemon_proc import DaemonProcess, wait_for
from dbcron.errors import InvalidTask
from dbcron.jobs import execute
from dbcron.jobs.changes import (
    RowChanges,
    count_changes,
    describe_changes,
    fingerprint,
    key_hash,
    row_hash,
    short_hash,
)
from dbcron.jobs.types import JobRequest, JobResult
from dbcron.model import Task
from dbcron.settings import Settings
from dbcron.store import Store, open_store
from dbcron.validation import parse_task
from smtp_server import SmtpTestServer

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)



def test_fingerprint_ignores_row_order_but_not_content() -> None:
    def digest(rows: list[tuple[Any, ...]]) -> str:
        return fingerprint(["a", "b"], sum(row_hash(r) for r in rows) % 2**128, len(rows))

    rows = [(1, "x"), (2, "y"), (2, "y")]
    assert digest(rows) == digest(list(reversed(rows)))
    assert digest(rows) != digest(rows[:2])  # a duplicate row counts
    assert digest([(1, "x")]) != digest([("1", "x")])
    assert fingerprint(["a"], 0, 0) != fingerprint(["b"], 0, 0)
    assert key_hash([7]) == key_hash((7,)) and -(2**63) <= key_hash([7]) < 2**63


def test_only_new_key_is_validated() -> None:
    base = {"name": "orders", "kind": "report", "schedule": {"every": "1h"},
            "source": "sqlite:///x.db", "query": "SELECT 1"}
    with pytest.raises(InvalidTask) as info:
        parse_task({**base, "email": {"to": ["a@example.com"], "only_new": {"key": []}}}, "t.yaml")
    assert info.value.problems == [
        "t.yaml: task 'orders': email.only_new.key: List should have at least 1 item after "
        "validation, not 0 (got [])"]
    with pytest.raises(InvalidTask) as info:
        parse_task({**base, "email": {"to": ["a@example.com"], "send": "if_new"}}, "t.yaml")
    assert info.value.problems == [
        "t.yaml: task 'orders': email.send: Input should be 'always', 'if_rows', 'if_empty' or "
        "'if_changed' (got 'if_new')"]


def orders_db(path: Path, rows: list[tuple[int, str, int]]) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, "
                          "customer TEXT, amount INTEGER)"))
        conn.execute(text("INSERT INTO orders VALUES (:i, :c, :a)"),
                     [{"i": i, "c": c, "a": a} for i, c, a in rows])
    engine.dispose()
    return url


def orders_task(source: str, **email: Any) -> Task:
    return Task.model_validate({
        "name": "orders", "kind": "report", "schedule": {"every": "1h"}, "source": source,
        "query": "SELECT id, customer, amount FROM orders ORDER BY id",
        "export": {"formats": ["csv"]},
        "email": {"to": ["sales@example.com"], **email},
    })


def run(task: Task, settings: Settings, slot: datetime, **kw: Any) -> JobResult:
    return execute(JobRequest(task=task, slot=slot, settings=settings, timeout=10, **kw))


def test_only_new_mails_each_order_once_with_the_count_in_the_subject(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    db = tmp_path / "orders.db"
    source = orders_db(db, [(1, "ann", 10), (2, "bob", 20)])
    settings = make_settings(tmp_path, smtp_server)
    task = orders_task(source, only_new={"key": ["id"]},
                       subject="{{ new_rows }} new of {{ total_rows }} orders")
    first = run(task, settings, NOW)
    assert first.status == "succeeded", first.error
    assert (first.rows, first.summary) == (2, "mailed 1 file to 1 recipient")
    orders_db(db, [(3, "cy", 30)])
    second = run(task, settings, NOW + timedelta(hours=1))
    assert second.rows == 1
    quiet = run(task, settings, NOW + timedelta(hours=2))
    assert quiet.summary == "wrote 1 file (0 rows), no new rows (of 3): nothing sent (only_new)"
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert subjects == ["2 new of 2 orders", "1 new of 3 orders"]
    (csv_part,) = list(smtp_server.messages[1].message.iter_attachments())
    assert csv_part.get_content().splitlines()[1:] == ["3,cy,30"]

    # A dry run reads what was delivered and changes nothing.
    orders_db(db, [(4, "di", 40)])
    dry = run(task, settings, NOW + timedelta(hours=3), dry_run=True, out_dir=tmp_path / "dry")
    assert dry.rows == 1 and dry.summary.startswith("dry run; would have mailed")
    assert run(task, settings, NOW + timedelta(hours=4)).rows == 1

    bad = run(orders_task(source, only_new={"key": ["order_id"]}), settings, NOW)
    assert (bad.status, bad.retryable) == ("failed", False)
    assert bad.error == ("email.only_new.key names 'order_id', which the query does not "
                         "return (its columns: id, customer, amount)")


def test_if_changed_in_process_and_a_failed_mail_is_not_remembered(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    db = tmp_path / "orders.db"
    source = orders_db(db, [(1, "ann", 10)])
    settings = make_settings(tmp_path, smtp_server)
    task = orders_task(source, send="if_changed",
                       subject="{{ rows }} orders, were {{ previous_rows }}")
    smtp_server.fail_first = 10_000
    assert run(task, settings, NOW).status == "failed"
    smtp_server.fail_first = smtp_server.transactions
    assert run(task, settings, NOW + timedelta(hours=1)).summary == "mailed 1 file to 1 recipient"
    same = run(task, settings, NOW + timedelta(hours=2))
    assert same.summary == ("wrote 1 file (1 rows), same result as the mail for 2026-03-02 "
                            "10:00 UTC: nothing sent (send: if_changed)")
    orders_db(db, [(2, "bob", 20)])
    assert run(task, settings, NOW + timedelta(hours=3)).summary == (
        "since the mail for 2026-03-02 10:00 UTC: 1 row added, 0 removed; mailed 1 file to "
        "1 recipient")
    assert [m.message["Subject"] for m in smtp_server.messages] == [
        "1 orders, were None", "2 orders, were 1"]


def test_sent_results_store_contract(store: Store) -> None:
    assert store.sent.last("a") is None
    store.sent.record("a", "f1", 3, NOW, NOW)
    store.sent.record("a", "f2", 4, NOW + timedelta(hours=1), NOW + timedelta(hours=1))
    last = store.sent.last("a")
    assert last is not None and (last.fingerprint, last.rows) == ("f2", 4)
    assert last.scheduled_for == NOW + timedelta(hours=1)
    store.sent.add_keys("a", [key_hash([i]) for i in range(12_000)], NOW)
    store.sent.add_keys("a", [-(2**63), 2**63 - 1], NOW + timedelta(days=40))
    assert len(store.sent.known_keys("a")) == 12_002
    assert store.sent.prune(NOW + timedelta(days=1)) == 12_000
    assert store.sent.known_keys("a") == {-(2**63), 2**63 - 1}
    store.sent.forget("a")
    assert store.sent.last("a") is None and store.sent.known_keys("a") == set()


def test_upgrade_from_v3_adds_the_sent_result_tables(store_url: str) -> None:
    s = open_store(store_url)
    s.tasks.upsert([{"name": "a", "kind": "call", "schedule": {"every": "1m"},
                     "call": "m:f"}], NOW)
    upgraded = reopened_from(s, 3, "DROP TABLE sent_keys", "DROP TABLE sent_results")
    try:
        assert upgraded.tasks.names() == ["a"]
        upgraded.sent.record("a", "f", 1, NOW, NOW)
        upgraded.sent.add_keys("a", [1], NOW)
        assert upgraded.sent.known_keys("a") == {1}
    finally:
        upgraded.close()


@pytest.mark.slow
def test_if_changed_through_the_daemon_sends_once_then_again_after_a_change(
    run_cli: Cli, state_dir: Path, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    db = tmp_path / "orders.db"
    source = orders_db(db, [(1, "ann", 10), (2, "bob", 20)])
    path = write_task(
        tmp_path / "t", "orders", kind="report", call=None, schedule={"every": "2s"},
        source="orders", query="SELECT customer, amount FROM orders",
        export={"formats": ["csv"]},
        email={"to": ["sales@example.com"], "send": "if_changed",
               "subject": "Orders: {{ rows }}"},
    )
    path.write_text(path.read_text().replace("call: null\n", ""))
    assert run_cli("apply", str(path), DBCRON_SOURCE_ORDERS=source).exit_code == 0
    proc = DaemonProcess(state_dir, DBCRON_SOURCE_ORDERS=source, DBCRON_SMTP_HOST="127.0.0.1",
                         DBCRON_SMTP_PORT=str(smtp_server.port)).start()
    try:
        store = open_store(f"sqlite:///{state_dir / 'dbcron.db'}")

        def succeeded() -> list[Any]:
            return [r for r in store.runs.history("orders", limit=100)
                    if r.status == "succeeded"]

        wait_for(lambda: len(succeeded()) >= 3, 30, "three runs of an unchanged result")
        assert len(smtp_server.messages) == 1
        orders_db(db, [(3, "cy", 30)])
        wait_for(lambda: len(smtp_server.messages) >= 2, 20, "the mail after the change")
        seen = len(succeeded())
        wait_for(lambda: len(succeeded()) >= seen + 2, 20, "two more unchanged runs")
        time.sleep(0.5)  # a third mail would be on its way by now
        store.close()
    finally:
        assert proc.stop() == 0
    assert [m.message["Subject"] for m in smtp_server.messages] == ["Orders: 2", "Orders: 3"]
    assert "nothing sent (send: if_changed)" in proc.log()


def orders_report(tmp_path: Path, **email: Any) -> Path:
    """An if_changed report of the named source `orders`, mailed with the default body."""
    path = write_task(
        tmp_path / "t", "orders", kind="report", call=None, schedule={"every": "1h"},
        source="orders", query="SELECT id, customer, amount FROM orders ORDER BY id",
        email={"to": ["sales@example.com"], "send": "if_changed",
               "subject": "Orders +{{ rows_added }} -{{ rows_removed }} ~{{ rows_changed }}",
               **email},
    )
    path.write_text(path.read_text().replace("call: null\n", ""))
    return path


def change_orders(url: str) -> None:
    """Two orders added, one removed, one whose amount moved."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO orders VALUES (4, 'di', 40), (5, 'ed', 50)"))
        conn.execute(text("DELETE FROM orders WHERE id = 1"))
        conn.execute(text("UPDATE orders SET amount = 25 WHERE id = 2"))
    engine.dispose()


def parts(received: Any) -> tuple[str, str]:
    message = received.message
    return (message.get_body(("plain",)).get_content(),
            message.get_body(("html",)).get_content())


SINCE = r"Since the mail for \d{4}-\d\d-\d\d \d\d:\d\d UTC: "


def test_the_mail_says_what_changed_by_key(
    run_cli: Cli, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    source = orders_db(tmp_path / "orders.db", [(1, "ann", 10), (2, "bob", 20), (3, "cy", 30)])
    env = {"DBCRON_SOURCE_ORDERS": source, "DBCRON_SMTP_HOST": "127.0.0.1",
           "DBCRON_SMTP_PORT": str(smtp_server.port)}
    task = orders_report(tmp_path, changes={"key": ["id"]})
    assert run_cli("apply", str(task), **env).exit_code == 0
    assert run_cli("run", "orders", "--local", **env).exit_code == 0
    assert run_cli("run", "orders", "--local", **env).exit_code == 0  # the same: not sent
    (first,) = smtp_server.messages
    assert first.message["Subject"] == "Orders +None -None ~None"
    assert "Since the mail" not in first.raw.decode()

    change_orders(source)
    # The dry run shows the counts and records nothing: the real run counts the same.
    dry = run_cli("run", "orders", "--dry-run", "--out", str(tmp_path / "dry"), **env)
    assert dry.exit_code == 0, dry.output
    assert re.search("since" + SINCE[5:] + "2 rows added, 1 removed, 1 changed; would have "
                     "mailed", dry.output), dry.output
    assert run_cli("run", "orders", "--local", **env).exit_code == 0
    assert len(smtp_server.messages) == 2
    second = smtp_server.messages[1]
    assert second.message["Subject"] == "Orders +2 -1 ~1"
    plain, html = parts(second)
    line = SINCE + "2 rows added, 1 removed, 1 changed."
    assert re.search(rf"^{line}$", plain, re.MULTILINE), plain
    assert re.search(rf"<p[^>]*>{line}</p>", html), html

    # The key must be a column of the result, like only_new's.
    bad = orders_report(tmp_path, changes={"key": ["order_id"]})
    assert run_cli("apply", str(bad), **env).exit_code == 0
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        conn.execute(text("UPDATE orders SET amount = amount + 1"))
    engine.dispose()
    failed = run_cli("run", "orders", "--local", **env)
    assert failed.exit_code == 1
    assert ("email.changes.key names 'order_id', which the query does not return (its "
            "columns: id, customer, amount)") in failed.output


def test_without_a_key_a_moved_row_is_removed_and_added(
    run_cli: Cli, tmp_path: Path, smtp_server: SmtpTestServer, pg_url: str
) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, "
                          "amount NUMERIC(10, 2))"))
        conn.execute(text("INSERT INTO orders VALUES (1, 'ann', 10), (2, 'bob', 20), "
                          "(3, 'cy', 30)"))
    engine.dispose()
    env = {"DBCRON_SOURCE_ORDERS": pg_url, "DBCRON_SMTP_HOST": "127.0.0.1",
           "DBCRON_SMTP_PORT": str(smtp_server.port)}
    assert run_cli("apply", str(orders_report(tmp_path)), **env).exit_code == 0
    assert run_cli("run", "orders", "--local", **env).exit_code == 0
    change_orders(pg_url)
    assert run_cli("run", "orders", "--local", **env).exit_code == 0
    assert run_cli("run", "orders", "--local", **env).exit_code == 0  # the same: not sent
    assert [m.message["Subject"] for m in smtp_server.messages] == [
        "Orders +None -None ~None", "Orders +3 -2 ~None"]
    plain, html = parts(smtp_server.messages[1])
    assert re.search(rf"^{SINCE}3 rows added, 2 removed\.$", plain, re.MULTILINE), plain
    assert re.search(rf">{SINCE}3 rows added, 2 removed\.<", html), html


def test_over_the_row_limit_the_mail_says_changed_without_counts(
    tmp_path: Path, smtp_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbcron.jobs import changes

    # The limit is 100,000 rows; three keep the test small (the code path is the same).
    monkeypatch.setattr(changes, "MAX_TRACKED_ROWS", 3)
    db = tmp_path / "orders.db"
    source = orders_db(db, [(1, "ann", 10), (2, "bob", 20)])
    settings = make_settings(tmp_path, smtp_server)
    task = orders_task(source, send="if_changed", changes={"key": ["id"]},
                       subject="{{ rows_added }} {{ rows_removed }} {{ rows_changed }}")
    assert run(task, settings, NOW).status == "succeeded"
    orders_db(db, [(3, "cy", 30), (4, "di", 40)])  # 4 rows: over the limit
    over = run(task, settings, NOW + timedelta(hours=1))
    assert over.summary.startswith("since the mail for 2026-03-02 09:00 UTC: the result "
                                   "changed (over 3 rows, not counted row by row); mailed")
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM orders WHERE id > 2"))
    engine.dispose()
    back = run(task, settings, NOW + timedelta(hours=2))  # the last mail was over it
    assert "the result changed (over 3 rows" in back.summary
    orders_db(db, [(3, "cy", 30)])
    counted = run(task, settings, NOW + timedelta(hours=3))
    assert "11:00 UTC: 1 row added, 0 removed, 0 changed; mailed" in counted.summary
    assert [m.message["Subject"] for m in smtp_server.messages] == [
        "None None None", "None None None", "None None None", "1 0 0"]
    store = open_store(settings.store)
    try:
        assert store.sent.last_rows("orders") is not None
    finally:
        store.close()


def test_changes_need_send_if_changed() -> None:
    base = {"name": "orders", "kind": "report", "schedule": {"every": "1h"},
            "source": "sqlite:///x.db", "query": "SELECT 1"}
    with pytest.raises(InvalidTask) as info:
        parse_task({**base, "email": {"to": ["a@example.com"], "changes": {"key": ["id"]}}},
                   "t.yaml")
    assert info.value.problems == [
        "t.yaml: task 'orders': email: 'changes' counts what changed since the last mail of "
        "send: if_changed, but send is 'always': set send: if_changed, or leave 'changes' out"]
    with pytest.raises(InvalidTask) as info:
        parse_task({**base, "email": {"to": ["a@example.com"], "send": "if_changed",
                                      "changes": {"keys": ["id"]}}}, "t.yaml")
    assert info.value.problems[-1] == (
        "t.yaml: task 'orders': email.changes.keys: unknown field 'keys'; did you mean 'key'? "
        "valid fields: key")


def test_count_changes_as_multisets_and_by_key() -> None:
    def rows(*items: tuple[int, int | None, int]) -> dict[int, tuple[int | None, int]]:
        return {h: (k, n) for h, k, n in items}

    before = rows((1, 10, 1), (2, 20, 2), (3, 30, 1))
    now = rows((1, 10, 1), (2, 20, 1), (4, 30, 1), (5, 50, 1))
    # One copy of row 2 gone, row 3 became row 4 (same key 30), row 5 is new.
    assert count_changes(before, now, keyed=True) == RowChanges(1, 1, 1)
    assert count_changes(before, now, keyed=False) == RowChanges(2, 2, None)
    assert count_changes(before, before, keyed=True) == RowChanges(0, 0, 0)
    # A last mail made without a key (key None) pairs with nothing.
    assert count_changes(rows((3, None, 1)), rows((4, 30, 1)), keyed=True) == (
        RowChanges(1, 1, 0))
    assert describe_changes(RowChanges(1, 0, None), 1, 0) == "1 row added, 0 removed"
    assert describe_changes(RowChanges(0, 0, 0), 2, 2) == (
        "the same rows under other column names")
    assert describe_changes(None, 5, 5) == "the result changed"
    assert -(2**63) <= short_hash(row_hash((1, "x"))) < 2**63
    assert short_hash(2**128 - 1) == -1 and short_hash(2**64) == 1


def test_sent_rows_store_contract(store: Store) -> None:
    assert store.sent.last_rows("a") is None
    extremes = {-(2**63): (None, 1), 2**63 - 1: (2**63 - 1, 2), 0: (-(2**63), 1)}
    store.sent.record("a", "f1", 4, NOW, NOW, extremes)
    assert store.sent.last_rows("a") == extremes
    many = {h: (h % 7, 1) for h in range(12_000)}
    store.sent.record("a", "f2", 12_000, NOW, NOW, many)  # replaces the rows of f1
    assert store.sent.last_rows("a") == many
    store.sent.record("a", "f3", 0, NOW, NOW, {})
    assert store.sent.last_rows("a") == {}
    store.sent.record("a", "f4", 200_000, NOW, NOW, None)  # too many to keep one by one
    assert store.sent.last_rows("a") is None
    store.sent.record("a", "f5", 1, NOW, NOW, {5: (None, 1)})
    store.sent.record("b", "g", 1, NOW, NOW, {5: (None, 1)})
    store.sent.forget("a")
    assert store.sent.last_rows("a") is None and store.sent.last("a") is None
    assert store.sent.last_rows("b") == {5: (None, 1)}


def test_upgrade_from_v5_adds_sent_rows_and_counts_nothing_for_older_mails(
    store_url: str
) -> None:
    s = open_store(store_url)
    s.sent.record("a", "f", 3, NOW, NOW)  # mailed before v6: no rows kept
    upgraded = reopened_from(s, 5, "DROP TABLE sent_rows")
    try:
        assert upgraded.sent.last_rows("a") is None
        upgraded.sent.record("a", "g", 1, NOW, NOW, {7: (None, 1)})
        assert upgraded.sent.last_rows("a") == {7: (None, 1)}
    finally:
        upgraded.close()
