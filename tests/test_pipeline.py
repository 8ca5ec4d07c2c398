"""Runs end to end through `execute`: real databases, real files, a real SMTP server.

What arrives at aiosmtpd is parsed; the xlsx is opened with openpyxl, the pdf
read with pypdf, the csv read back with the csv module.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pypdf
import pytest
import sqlalchemy as sa

from conftest import make_settings
from dbcron.jobs import execute
from dbcron.jobs.mail.delivery import notify_failure
from dbcron.jobs.mail.send import make_message_id
from dbcron.jobs.types import JobRequest, JobResult
from dbcron.model import Task
from dbcron.settings import Settings
from smtp_server import SmtpTestServer, free_port

LONDON = ZoneInfo("Europe/London")
SLOT = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)  # today 2026-03-02, yesterday 2026-03-01
REGIONS = ["London", "Zürich", "Москва", "Αθήνα"]
ROWS = 120
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"




def fill_sales(url: str, rows: int = ROWS) -> str:
    # sqlite3 binds neither Decimal nor date: give it what it stores.
    lite = url.startswith("sqlite")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE sales (id INTEGER PRIMARY KEY, region VARCHAR(40), "
            "amount NUMERIC(12, 2), sold_on DATE)"
        ))  # fmt: skip
        conn.execute(
            sa.text("INSERT INTO sales VALUES (:id, :region, :amount, :sold_on)"),
            [
                {
                    "id": i,
                    "region": REGIONS[i % len(REGIONS)],
                    "amount": (float if lite else Decimal)(f"{i * 10}.25"),
                    "sold_on": _iso_if(lite, date(2026, 2, 1) + timedelta(days=i % 28)),
                }
                for i in range(1, rows + 1)
            ],
        )
    engine.dispose()
    return url


def _iso_if(lite: bool, day: date) -> date | str:
    return day.isoformat() if lite else day


@pytest.fixture
def sqlite_sales(tmp_path: Path) -> str:
    return fill_sales(f"sqlite:///{tmp_path / 'sales.db'}")


def report(source: str, **over: Any) -> Task:
    data: dict[str, Any] = {
        "name": "daily-sales",
        "description": "Sales by region",
        "kind": "report",
        "schedule": {"cron": "0 9 * * *", "timezone": "Europe/London"},
        "source": source,
        "query": "SELECT id, region, amount, sold_on FROM sales WHERE sold_on <= :day "
        "ORDER BY id",
        "params": {"day": "{{ yesterday }}"},
        "export": {"formats": ["xlsx", "pdf", "csv"], "filename": "sales-{{ yesterday }}",
                   "title": "Sales until {{ yesterday }}"},
        "email": {"to": ["manager@example.com"], "cc": ["boss@example.com"],
                  "subject": "Sales report {{ yesterday }}: {{ rows }} rows"},
    }  # fmt: skip
    data.update(over)
    return Task.model_validate(data)


def run(task: Task, settings: Settings, slot: datetime = SLOT, **kw: Any) -> JobResult:
    return execute(JobRequest(task=task, slot=slot, settings=settings, timeout=10, **kw))


def attachments(msg: EmailMessage) -> dict[str, tuple[str, bytes]]:
    found = {}
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[part.get_filename() or ""] = (part.get_content_type(), payload)
    return found


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def sales_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return fill_sales(f"sqlite:///{tmp_path / 'sales.db'}")
    fixture = "pg_url" if request.param == "postgresql" else "mariadb_url"
    return fill_sales(str(request.getfixturevalue(fixture)))


def test_report_mails_xlsx_pdf_csv(
    sales_url: str, settings: Settings, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    result = run(report(sales_url), settings)
    assert result.status == "succeeded", result.error
    # sold_on <= 2026-03-01 keeps every row (the dates run from 02-01 to 02-28).
    assert result.rows == ROWS
    assert result.summary == "mailed 3 files to 2 recipients"
    out = tmp_path / "output" / "daily-sales"
    names = ["sales-2026-03-01.xlsx", "sales-2026-03-01.pdf", "sales-2026-03-01.csv"]
    assert result.artifacts == [str(out / n) for n in names]
    assert result.bytes == sum((out / n).stat().st_size for n in names)

    [received] = smtp_server.messages
    msg = received.message
    assert sorted(received.rcpt_tos) == ["boss@example.com", "manager@example.com"]
    assert msg["Subject"] == f"Sales report 2026-03-01: {ROWS} rows"
    assert msg["Message-ID"] == make_message_id("daily-sales", SLOT, "example.com")
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Scheduled for: 2026-03-02 09:00 GMT" in text
    assert f"First 20 of {ROWS} rows" in text
    files = attachments(msg)
    assert list(files) == names
    assert files["sales-2026-03-01.xlsx"][0] == XLSX

    last_region = REGIONS[ROWS % len(REGIONS)]
    ws = openpyxl.load_workbook(io.BytesIO(files["sales-2026-03-01.xlsx"][1])).active
    assert ws is not None
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("id", "region", "amount", "sold_on")
    assert len(rows) == ROWS + 1
    assert rows[1][:3] == (1, "Zürich", 10.25)
    assert rows[-1][:3] == (ROWS, last_region, ROWS * 10 + 0.25)
    if not sales_url.startswith("sqlite"):  # SQLite has no date type: text stays text
        assert rows[1][3] == datetime(2026, 2, 2)
        assert ws["D2"].is_date

    reader = pypdf.PdfReader(io.BytesIO(files["sales-2026-03-01.pdf"][1]))
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 2
    assert pages[0].startswith("Sales until 2026-03-01\nScheduled for 2026-03-02 09:00 GMT\n"
                               "id region amount sold_on")  # fmt: skip
    assert "1 Zürich 10.25 2026-02-02" in pages[0]
    assert "2 Москва 20.25 2026-02-03" in pages[0]
    assert "3 Αθήνα 30.25" in pages[0]
    assert f"{ROWS} {last_region} {ROWS * 10}.25" in pages[-1]
    assert re.search(rf"Page {len(pages)} of\s*{len(pages)}\s*$", pages[-1])

    lines = list(csv.reader(io.StringIO(files["sales-2026-03-01.csv"][1].decode("utf-8-sig"))))
    assert lines[0] == ["id", "region", "amount", "sold_on"]
    assert lines[1] == ["1", "Zürich", "10.25", "2026-02-02"]
    assert lines[-1][:3] == [str(ROWS), last_region, f"{ROWS * 10}.25"]
    assert len(lines) == ROWS + 1


def test_if_rows_with_no_rows_sends_nothing(
    sqlite_sales: str, settings: Settings, smtp_server: SmtpTestServer
) -> None:
    task = report(
        sqlite_sales,
        params={"day": "1999-01-01"},
        email={"to": ["manager@example.com"], "send": "if_rows"},
    )
    result = run(task, settings)
    assert result.status == "succeeded"
    assert result.rows == 0
    assert result.summary == "wrote 3 files (0 rows), no rows: nothing sent (send: if_rows)"
    assert smtp_server.messages == []


def test_if_empty_sends_only_when_empty(
    sqlite_sales: str, settings: Settings, smtp_server: SmtpTestServer
) -> None:
    email = {"to": ["manager@example.com"], "send": "if_empty"}
    assert run(report(sqlite_sales, email=email), settings).summary.endswith(
        f"{ROWS} rows: nothing sent (send: if_empty)"
    )
    result = run(report(sqlite_sales, email=email, params={"day": "1999-01-01"}), settings)
    assert result.summary == "mailed 3 files to 1 recipient"
    [received] = smtp_server.messages
    assert "The query returned no rows." in received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def alert(source: str, condition: str = "total > 1000", **over: Any) -> Task:
    data: dict[str, Any] = {
        "name": "big-region",
        "kind": "alert",
        "schedule": {"cron": "0 8 * * *", "timezone": "Europe/London"},
        "source": source,
        "query": "SELECT region, SUM(amount) AS total FROM sales WHERE sold_on >= :since "
        "GROUP BY region ORDER BY region",
        "params": {"since": "{{ days_ago(7) }}"},
        "condition": condition,
        "email": {"to": ["kitchen@example.com"],
                  "subject": "{{ rows }} regions; {{ reason }}"},
    }  # fmt: skip
    data.update(over)
    return Task.model_validate(data)


def test_alert_fires_and_says_why(
    sqlite_sales: str, settings: Settings, smtp_server: SmtpTestServer
) -> None:
    result = run(alert(sqlite_sales, export={"formats": ["csv"]}), settings)
    assert result.status == "succeeded", result.error
    assert result.summary == (
        "condition holds: 4 rows with total > 1000; mailed 1 file to 1 recipient"
    )
    [received] = smtp_server.messages
    assert received.message["Subject"] == "4 regions; condition holds: 4 rows with total > 1000"
    text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "condition holds: 4 rows with total > 1000" in text
    assert "Москва" in text


def test_quiet_alert_sends_nothing_and_keeps_nothing(
    sqlite_sales: str, settings: Settings, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    result = run(alert(sqlite_sales, "total > 1000000", export={"formats": ["csv"]}), settings)
    assert result.status == "succeeded"
    assert result.summary == (
        "condition does not hold: no row with total > 1000000 (4 rows checked); nothing sent"
    )
    assert result.artifacts == []
    assert smtp_server.messages == []
    assert list((tmp_path / "output" / "big-region").iterdir()) == []


def test_a_quiet_alert_keeps_the_file_an_earlier_alert_mailed(
    sqlite_sales: str, settings: Settings, smtp_server: SmtpTestServer
) -> None:
    fired = run(alert(sqlite_sales, "total > 0", export={"formats": ["csv"]}), settings)
    (path,) = fired.artifacts
    mailed = Path(path).read_bytes()
    quiet = run(alert(sqlite_sales, "total > 1000000", export={"formats": ["csv"]}), settings)
    assert quiet.artifacts == []
    assert Path(path).read_bytes() == mailed


def test_alert_on_a_missing_column_fails_naming_the_columns(
    sqlite_sales: str, settings: Settings
) -> None:
    result = run(alert(sqlite_sales, "weight > 5"), settings)
    assert result.status == "failed"
    assert result.retryable is False
    assert result.error == (
        "the condition names the column 'weight', but the query returns region, total"
    )


def test_oversize_attachments_are_zipped_or_left_out(
    sqlite_sales: str, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    task = report(
        sqlite_sales,
        # 500 zeros a row: about 60 KB of csv that zips to almost nothing.
        query="SELECT id, region, hex(zeroblob(250)) AS padding FROM sales",
        params={},
        export={"formats": ["xlsx", "csv"], "filename": "sales"},
    )
    zipped = run(task, make_settings(tmp_path, smtp_server, max_attachment_mb=0.03))
    assert zipped.summary == "mailed 2 files zipped to 2 recipients"
    files = attachments(smtp_server.messages[0].message)
    assert list(files) == ["sales.zip"]
    archive = zipfile.ZipFile(io.BytesIO(files["sales.zip"][1]))
    assert archive.namelist() == ["sales.xlsx", "sales.csv"]
    assert zipped.artifacts[-1].endswith("sales.zip")

    left_out = run(task, make_settings(tmp_path, smtp_server, max_attachment_mb=0.001))
    assert left_out.summary.startswith("mailed to 2 recipients without the files (too large")
    msg = smtp_server.messages[1].message
    assert attachments(msg) == {}
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "too large to send by mail" in text
    assert str(tmp_path / "output" / "daily-sales") in text


def test_smtp_down_retries_then_fails_then_next_slot_succeeds(
    sqlite_sales: str, tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    closed = make_settings(tmp_path, None, smtp_host="127.0.0.1", smtp_port=free_port())
    refused = run(report(sqlite_sales), closed)
    assert refused.status == "failed"
    assert refused.retryable is True
    assert "connection refused (gave up after 3 attempts)" in (refused.error or "")

    smtp_server.fail_first = 3  # 451 to every attempt of this run
    settings = make_settings(tmp_path, smtp_server)
    busy = run(report(sqlite_sales), settings)
    assert busy.status == "failed" and busy.retryable
    assert "451" in (busy.error or "") and smtp_server.transactions == 3

    smtp_server.fail_first = 4  # one more 451, then the retry inside the run gets through
    later = run(report(sqlite_sales), settings, slot=SLOT + timedelta(days=1))
    assert later.status == "succeeded", later.error
    assert smtp_server.transactions == 5
    [received] = smtp_server.messages
    assert received.message["Subject"] == f"Sales report 2026-03-02: {ROWS} rows"


def test_hundred_thousand_rows_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'big.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE big (id INTEGER, label TEXT, value REAL)"))
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
            "INSERT INTO big SELECT i, 'label ' || i, i * 0.5 FROM n"
        )
    engine.dispose()
    task = report(
        url,
        query="SELECT id, label, value FROM big ORDER BY id",
        params={},
        export={"formats": ["xlsx", "csv"], "filename": "big"},
    )
    settings = make_settings(tmp_path, None, max_attachment_mb=50)  # the outbox backend
    result = run(task, settings)
    assert result.status == "succeeded", result.error
    assert result.rows == 100_000
    [eml] = (tmp_path / "outbox").glob("*.eml")
    msg = BytesParser(policy=default_policy).parsebytes(eml.read_bytes())
    assert isinstance(msg, EmailMessage)
    files = attachments(msg)
    ws = openpyxl.load_workbook(io.BytesIO(files["big.xlsx"][1]), read_only=True).active
    assert ws is not None
    rows = list(ws.iter_rows(values_only=True))  # type: ignore[union-attr]
    assert len(rows) == 100_001
    assert rows[1] == (1, "label 1", 0.5)
    assert rows[-1] == (100_000, "label 100000", 50_000)
    lines = files["big.csv"][1].decode("utf-8-sig").splitlines()
    assert len(lines) == 100_001
    assert lines[-1] == "100000,label 100000,50000"  # the float 50000.0, in its shortest form


def sql_task(source: str, **over: Any) -> Task:
    data: dict[str, Any] = {
        "name": "cleanup",
        "kind": "sql",
        "schedule": {"cron": "30 2 * * *"},
        "source": source,
        "statements": ["DELETE FROM sales WHERE sold_on < :cut", "UPDATE sales SET amount = 0 "
                       "WHERE id = 1"],
        "params": {"cut": "{{ days_ago(20) }}"},
    }  # fmt: skip
    data.update(over)
    return Task.model_validate(data)


def count_sales(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(sa.text("SELECT COUNT(*) FROM sales")).scalar_one())
    engine.dispose()
    return n


def test_sql_task_records_rowcounts(sqlite_sales: str, settings: Settings) -> None:
    # days_ago(20) is 2026-02-10: the rows sold 02-01 .. 02-09 go.
    expected = sum(1 for i in range(1, ROWS + 1) if i % 28 < 9)
    result = run(sql_task(sqlite_sales), settings)
    assert result.status == "succeeded", result.error
    assert result.result == [expected, 0]
    assert result.summary == f"deleted {expected} rows; updated 0 rows"
    assert count_sales(sqlite_sales) == ROWS - expected


def test_sql_task_over_max_rows_affected_fails_and_rolls_back(
    sqlite_sales: str, settings: Settings
) -> None:
    result = run(sql_task(sqlite_sales, max_rows_affected=10), settings)
    assert result.status == "failed" and result.retryable is False
    assert "over max_rows_affected 10: rolled back" in (result.error or "")
    assert count_sales(sqlite_sales) == ROWS


def test_dry_run_builds_everything_and_sends_nothing(
    sqlite_sales: str, settings: Settings, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    out = tmp_path / "preview"
    result = run(report(sqlite_sales), settings, dry_run=True, out_dir=out)
    assert result.status == "succeeded", result.error
    assert smtp_server.messages == []
    assert not (tmp_path / "output").exists()
    preview = result.result
    assert preview["subject"] == f"Sales report 2026-03-01: {ROWS} rows"
    assert preview["recipients"] == ["manager@example.com", "boss@example.com"]
    assert [Path(p).name for p in preview["attachments"]] == [
        "sales-2026-03-01.xlsx", "sales-2026-03-01.pdf", "sales-2026-03-01.csv"
    ]  # fmt: skip
    eml = Path(preview["eml"])
    assert eml.parent == out and eml.is_file()
    assert result.summary == f"dry run; would have mailed 3 files to 2 recipients; preview in {eml}"

    to_me = run(report(sqlite_sales), settings, dry_run=True, out_dir=out, to=("me@example.com",))
    assert to_me.status == "succeeded", to_me.error
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["me@example.com"]
    assert received.message["Subject"] == f"[dry run] Sales report 2026-03-01: {ROWS} rows"
    assert "dry-run" in received.message["Message-ID"]
    assert to_me.summary == (
        "dry run; would have mailed 3 files to 2 recipients; sent to me@example.com instead; "
        f"preview in {to_me.result['eml']}"
    )


def test_dry_run_to_without_smtp_says_it_went_to_the_outbox(
    sqlite_sales: str, tmp_path: Path
) -> None:
    """Before: 'sent to me@example.com instead' when it was only written to the outbox."""
    settings = make_settings(tmp_path)
    result = run(report(sqlite_sales), settings, dry_run=True, out_dir=tmp_path / "p",
                 to=("me@example.com",))
    assert result.status == "succeeded", result.error
    assert result.summary == (
        "dry run; would have mailed 3 files to 2 recipients; for me@example.com, written to "
        f"the outbox {tmp_path / 'outbox'} instead (DBCRON_SMTP_HOST is not set); "
        f"preview in {result.result['eml']}"
    )
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_dry_run_of_a_sql_task_changes_nothing(sqlite_sales: str, settings: Settings) -> None:
    result = run(sql_task(sqlite_sales), settings, dry_run=True)
    assert result.status == "succeeded"
    assert result.summary.startswith("dry run, rolled back: deleted ")
    assert count_sales(sqlite_sales) == ROWS


def test_missing_variable_fails_for_good_naming_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBCRON_TEST_SALES_URL", raising=False)
    result = run(report("${DBCRON_TEST_SALES_URL}"), settings)
    assert result.status == "failed"
    assert result.retryable is False
    assert "DBCRON_TEST_SALES_URL" in (result.error or "")


def test_a_template_typo_fails_before_the_query(settings: Settings) -> None:
    task = report("sqlite:////nonexistent/dir/x.db", export={"filename": "s-{{ yesteday }}"})
    result = run(task, settings)
    assert result.status == "failed" and result.retryable is False
    assert (result.error or "").startswith("filename 's-{{ yesteday }}': 'yesteday' is undefined")


def test_failure_notice_goes_to_on_failure_masked(
    settings: Settings, smtp_server: SmtpTestServer
) -> None:
    task = report("x", notify={"on_failure": ["ops@example.com"]})
    told = notify_failure(
        task,
        SLOT,
        "query failed: connection to postgresql://app:Sup3r@db/sales refused",
        {"attempt": 3, "host": "worker-1"},
        settings,
    )
    assert told == ["ops@example.com"]
    [received] = smtp_server.messages
    msg = received.message
    assert msg["Subject"].startswith("[dbcron] daily-sales failed: query failed: connection")
    assert msg["Message-ID"] == make_message_id("daily-sales.failed", SLOT, "example.com")
    text = msg.get_content()
    assert "Sup3r" not in received.raw.decode()
    assert "postgresql://app:***@db/sales" in text
    assert "attempt: 3\nhost: worker-1" in text
    assert "slot: 2026-03-02T09:00:00+00:00" in text
    assert notify_failure(report("x"), SLOT, "boom", {}, settings) == []


def test_numbers_read_right_in_the_mail_and_every_file(
    sqlite_sales: str, settings: Settings, smtp_server: SmtpTestServer
) -> None:
    """Before: the mail showed 230.98000000000002 and the csv 0.30000000000000004."""
    task = report(
        sqlite_sales,
        query="SELECT 'North' AS region, 230.98 + 0.00000000000002 AS total, "
        "0.1 + 0.2 AS share UNION ALL SELECT 'South', 1792.39, 12.5",
        params={},
        export={
            "formats": ["xlsx", "pdf", "csv"],
            "filename": "sales",
            "title": "Sales until {{ yesterday }}",
            "columns": {"total": {"format": "#,##0.00", "label": "Total"}},
        },
    )
    result = run(task, settings)
    assert result.status == "succeeded", result.error
    [received] = smtp_server.messages
    body = received.message.get_body(("plain",))
    assert body is not None
    assert body.get_content() == (
        "Sales until 2026-03-01\nSales by region\n\n"
        "Scheduled for: 2026-03-02 09:00 GMT\n"
        "Rows: 2\n"
        "Files: sales.xlsx, sales.pdf, sales.csv\n\n"
        "region |    Total | share\n"
        "-------+----------+------\n"
        "North  |   230.98 |   0.3\n"
        "South  | 1,792.39 |  12.5\n"
    )
    files = attachments(received.message)
    assert files["sales.csv"][1].decode("utf-8-sig") == (
        "region,Total,share\r\nNorth,230.98,0.3\r\nSouth,\"1,792.39\",12.5\r\n"
    )
    sheet = openpyxl.load_workbook(io.BytesIO(files["sales.xlsx"][1])).active
    assert sheet is not None
    assert [c.value for c in sheet[1]] == ["region", "Total", "share"]
    assert (sheet["B3"].value, sheet["B3"].number_format) == (1792.39, "#,##0.00")
    text = pypdf.PdfReader(io.BytesIO(files["sales.pdf"][1])).pages[0].extract_text()
    assert "region Total share\nNorth 230.98 0.3\nSouth 1,792.39 12.5\n" in text
