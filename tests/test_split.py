"""email.too_large: split: a report too large to mail, even zipped, in several mails.

Real runs from real tables to aiosmtpd with DBCRON_MAX_ATTACHMENT_MB at 0.05:
every mail within the limit, numbered and threaded; the CSV and XLSX parts read
back (csv module, openpyxl, LibreOffice) hold every row once, in order; a part
the server refuses is sent again by `resend`, alone, with the same Message-ID.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import date
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import openpyxl
import pydantic
import pytest
import sqlalchemy as sa
import yaml

from conftest import Cli, libreoffice, make_settings
from dbcron.jobs.mail.send import make_message_id
from dbcron.model import Task
from smtp_server import SmtpTestServer
from test_pipeline import SLOT, attachments, fill_sales, report, run

LIMIT_MB = 0.05
LIMIT = int(LIMIT_MB * 1024 * 1024)
ROWS = 3000
DOMAIN = "example.com"


def _split_report(url: str, **over: Any) -> Task:
    email = {"to": ["manager@example.com"], "cc": ["boss@example.com"],
             "subject": "Sales report {{ yesterday }}", "too_large": "split"}
    return report(url, email=email, **over)


def _encoded_size(msg: EmailMessage) -> int:
    """The attachments as they travel: base64 lines ending in CRLF."""
    total = 0
    for part in msg.iter_attachments():
        payload = part.get_payload()
        assert isinstance(payload, str) and part["Content-Transfer-Encoding"] == "base64"
        lines = payload.splitlines()
        total += sum(len(line) + 2 for line in lines)
    return total


QUERY = "SELECT id, region, amount, sold_on, ref FROM sales ORDER BY id"


def _db_rows(url: str, query: str = QUERY) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text(query))]
    engine.dispose()
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
def big_sales(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The sales table with a reference per row that compresses badly, as real ids do:
    its CSV does not fit zipped either, so it is cut."""
    if request.param == "sqlite":
        url = fill_sales(f"sqlite:///{tmp_path / 'sales.db'}", rows=ROWS)
    else:
        url = fill_sales(str(request.getfixturevalue("pg_url")), rows=ROWS)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE sales ADD COLUMN ref VARCHAR(64)"))
        conn.execute(sa.text("UPDATE sales SET ref = :ref WHERE id = :id"),
                     [{"id": i, "ref": _hash(i)} for i in range(1, ROWS + 1)])
    engine.dispose()
    return url


def _hash(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _iso(day: Any) -> str:
    # SQLite keeps dates as text; PostgreSQL gives dates, openpyxl datetimes.
    return day if isinstance(day, str) else day.isoformat()[:10]


def test_a_large_report_goes_out_in_numbered_threaded_parts(
        big_sales: str, tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    url = big_sales
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=LIMIT_MB)
    task = _split_report(url, query=QUERY, params={}, export={
        "formats": ["xlsx", "pdf", "csv"], "filename": "sales-{{ yesterday }}",
        "columns": {"amount": {"format": "#,##0.00", "label": "Amount"}}})
    result = run(task, settings, run_id=5)
    assert result.status == "succeeded", result.error

    mails = [m.message for m in smtp_server.messages]
    total = len(mails)
    assert total >= 4
    first_id = make_message_id("daily-sales", SLOT, DOMAIN)
    for number, msg in enumerate(mails, start=1):
        assert msg["Subject"] == f"Sales report 2026-03-01 (part {number} of {total})"
        assert _encoded_size(msg) <= LIMIT
        if number == 1:
            assert msg["Message-ID"] == first_id
            assert msg["In-Reply-To"] is None
        else:
            assert msg["Message-ID"] == first_id.replace("@", f".part{number}@")
            assert msg["In-Reply-To"] == first_id and msg["References"] == first_id
    body = mails[0].get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert f"This report comes in {total} mails" in text
    assert f"parts 2 to {total} follow" in text
    # The PDF cannot be cut by rows: left out with the note, as under too_large: zip.
    assert "too large to send by mail" in text and "sales-2026-03-01.pdf" in text
    assert result.summary == (f"mailed 3 files in {total} parts to 2 recipients; left out, "
                              "too large even cut by rows: sales-2026-03-01.pdf")
    assert [(d["channel"], d["recipient"], d["status"]) for d in result.deliveries] == [
        (f"mail part {n}/{total}", who, "sent")
        for n in range(1, total + 1) for who in ("manager@example.com", "boss@example.com")]

    files: dict[str, bytes] = {}
    for msg in mails:
        for name, (_, data) in attachments(msg).items():
            assert name not in files
            files[name] = data
    csvs = sorted((n for n in files if n.endswith(".csv")), key=_part_number)
    xlsxs = sorted((n for n in files if n.endswith(".xlsx")), key=_part_number)
    assert len(csvs) >= 2 and len(xlsxs) >= 2
    assert not any(n.endswith(".pdf") for n in files)
    expected = _db_rows(url)

    # CSV: each part opens alone (BOM, header); together every row once, in order.
    header = ["id", "region", "Amount", "sold_on", "ref"]
    got: list[list[str]] = []
    for name in csvs:
        assert files[name].startswith(codecs.BOM_UTF8)
        records = list(csv.reader(io.StringIO(files[name].decode("utf-8-sig"), newline="")))
        assert records[0] == header
        got += records[1:]
    assert got == [[str(i), region, f"{amount:,.2f}", _iso(day), ref]
                   for i, region, amount, day, ref in expected]
    whole = (settings.output_dir / "daily-sales" / "sales-2026-03-01.csv").read_bytes()
    assert b"".join(files[n].removeprefix(codecs.BOM_UTF8).split(b"\r\n", 1)[1]
                    for n in csvs) == whole.split(b"\r\n", 1)[1]

    # XLSX: the task's header, frozen pane and number format in every part.
    rows: list[tuple[Any, ...]] = []
    for name in xlsxs:
        path = tmp_path / name
        path.write_bytes(files[name])
        sheet = openpyxl.load_workbook(path).active
        assert sheet is not None
        assert [c.value for c in sheet[1]] == header
        assert sheet["A1"].font.b and sheet.freeze_panes == "A2"
        assert sheet["C2"].number_format == "#,##0.00"
        if url.startswith("postgresql"):
            assert sheet["D2"].number_format == "yyyy-mm-dd"
        rows += [tuple(r) for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert [(i, r, float(a), _iso(d), h) for i, r, a, d, h in rows] == \
        [(i, r, float(a), _iso(d), h) for i, r, a, d, h in expected]


def _part_number(name: str) -> int:
    return int(name.rsplit("-part", 1)[1].split(".")[0])


def test_an_xlsx_part_opens_in_libreoffice(tmp_path: Path, smtp_server: SmtpTestServer
                                           ) -> None:
    url = fill_sales(f"sqlite:///{tmp_path / 'sales.db'}", rows=ROWS)
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=LIMIT_MB)
    result = run(_split_report(url, export={"formats": ["xlsx"], "filename": "sales",
                                            "columns": {"amount": {"format": "#,##0.00"}}}),
                 settings)
    assert result.status == "succeeded", result.error
    assert len(smtp_server.messages) >= 2
    last = smtp_server.messages[-1].message
    ((name, (_, data)),) = attachments(last).items()
    path = tmp_path / name
    path.write_bytes(data)
    out = libreoffice(tmp_path, path, "--convert-to",
                      "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true")
    lines = (out / path.with_suffix(".csv").name).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,region,amount,sold_on"
    expected = _db_rows(url, "SELECT id, region, amount, sold_on FROM sales ORDER BY id")
    first = int(lines[1].split(",")[0])
    assert len(lines) - 1 == len(expected) - first + 1  # the last part ends with the last row
    i, region, amount, day = expected[first - 1]
    # "as shown": the task's number format and the date style came through.
    assert lines[1] == f'{i},{region},"{amount:,.2f}",{day}'


NOTES = [
    'plain',
    'a "quoted" word, and a comma',
    'two\r\nlines; with "quotes" across\nthe break',
    "Zürich \u2013 Αθήνα \u2013 Москва",  # en dashes: in cp1252, unlike the Greek
    "=1+1",
]


@pytest.mark.parametrize(("encoding", "delimiter"), [("utf-8-sig", ","), ("utf-16", ";"),
                                                      ("cp1252", "\t")])
def test_csv_parts_cut_between_records_in_the_task_encoding(
        tmp_path: Path, smtp_server: SmtpTestServer, encoding: str, delimiter: str) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)"))
        conn.execute(sa.text("INSERT INTO notes VALUES (:id, :note)"),
                     [{"id": i, "note": _note(i)} for i in range(3000)])
    engine.dispose()
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=LIMIT_MB)
    task = _split_report(url, query="SELECT id, note FROM notes ORDER BY id", params={},
                         export={"formats": ["csv"], "filename": "notes",
                                 "csv": {"encoding": encoding, "delimiter": delimiter}})
    result = run(task, settings)
    assert result.status == "succeeded", result.error
    assert len(smtp_server.messages) >= 3
    whole = (settings.output_dir / "daily-sales" / "notes.csv").read_bytes()
    bom = {"utf-8-sig": codecs.BOM_UTF8, "utf-16": whole[:2], "cp1252": b""}[encoding]
    got: list[list[str]] = []
    for received in smtp_server.messages:
        ((_, (_, data)),) = attachments(received.message).items()
        assert data.startswith(bom)
        text = data.decode("utf-16" if encoding == "utf-16" else encoding)
        records = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""),
                                  delimiter=delimiter))
        assert records[0] == ["id", "note"]
        got += records[1:]
    cp1252 = encoding == "cp1252"
    expected = [[str(i), _as_written(_note(i), cp1252)] for i in range(3000)]
    assert got == expected


def _note(i: int) -> str:
    # A hash per row, so the file does not fit zipped either.
    return f"{NOTES[i % len(NOTES)]} {_hash(i)}"


def _as_written(note: str, cp1252: bool) -> str:
    note = "'" + note if note.startswith("=") else note  # csv.formulas: escape
    return note.encode("cp1252", "replace").decode("cp1252") if cp1252 else note


def test_more_parts_than_the_cap_leave_the_files_out_with_the_note(
        tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    url = fill_sales(f"sqlite:///{tmp_path / 'sales.db'}", rows=ROWS)
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=0.005)
    result = run(_split_report(url, export={"formats": ["csv"], "filename": "sales"}), settings)
    assert result.status == "succeeded", result.error
    (received,) = smtp_server.messages
    assert received.message["Subject"] == "Sales report 2026-03-01"
    assert attachments(received.message) == {}
    body = received.message.get_body(("plain",))
    assert body is not None and "too large to send by mail" in body.get_content()
    assert re.search(r"not split: it would take \d\d mails, more than 20; the files are left "
                     "out$", result.summary)
    folder = settings.output_dir / "daily-sales"
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["sales.csv"]


def test_a_report_that_fits_zipped_is_one_mail(tmp_path: Path, smtp_server: SmtpTestServer
                                                ) -> None:
    url = fill_sales(f"sqlite:///{tmp_path / 'sales.db'}", rows=ROWS)
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=0.15)
    result = run(_split_report(url, export={"formats": ["csv", "xlsx"], "filename": "s"}),
                 settings)
    assert result.status == "succeeded", result.error
    (received,) = smtp_server.messages
    assert list(attachments(received.message)) == ["s.zip"]
    assert received.message["Subject"] == "Sales report 2026-03-01"


def test_only_the_primary_mail_splits_a_mail_entry_goes_whole(
        big_sales: str, tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    # deliver: mail entries share _compose with email:; split is email:'s option alone.
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=LIMIT_MB)
    task = _split_report(big_sales, query=QUERY, params={},
                         export={"formats": ["csv"], "filename": "sales"},
                         deliver=[{"type": "mail", "name": "heads-up", "to": ["ceo@example.com"],
                                   "subject": "Sales are in", "attach": False}])
    result = run(task, settings, run_id=7)
    assert result.status == "succeeded", result.error
    parts = [m.message for m in smtp_server.messages if "ceo@example.com" not in m.rcpt_tos]
    (entry,) = [m.message for m in smtp_server.messages if "ceo@example.com" in m.rcpt_tos]
    assert len(parts) >= 2
    assert all(re.search(r"\(part \d+ of \d+\)$", m["Subject"]) for m in parts)
    assert entry["Subject"] == "Sales are in" and attachments(entry) == {}
    assert entry["Message-ID"] == make_message_id("daily-sales.heads-up", SLOT, DOMAIN)
    ledger = {(d["channel"], d["recipient"]) for d in result.deliveries}
    assert ("heads-up", "ceo@example.com") in ledger
    assert (f"mail part {len(parts)}/{len(parts)}", "manager@example.com") in ledger


def test_split_is_refused_for_a_burst() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"email\.too_large: split is for one "
                       r"report mail, not a burst"):
        Task.model_validate({
            "name": "b", "kind": "report", "schedule": {"cron": "0 9 * * *"},
            "source": "sales", "query": "SELECT 1", "burst": {"column": "who"},
            "email": {"too_large": "split"}})
    with pytest.raises(pydantic.ValidationError, match="'zip' or 'split'"):
        Task.model_validate({
            "name": "b", "kind": "report", "schedule": {"cron": "0 9 * * *"},
            "source": "sales", "query": "SELECT 1",
            "email": {"to": ["a@example.com"], "too_large": "parts"}})


@pytest.fixture
def split_task(run_cli: Cli, tmp_path: Path, smtp_server: SmtpTestServer,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DBCRON_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("DBCRON_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("DBCRON_SMTP_FROM", "dbcron@example.com")
    monkeypatch.setenv("DBCRON_MAX_ATTACHMENT_MB", str(LIMIT_MB))
    monkeypatch.setenv("DBCRON_RETRY_BACKOFF_SECONDS", "1")
    db = tmp_path / "sales.db"
    fill_sales(f"sqlite:///{db}", rows=ROWS)
    monkeypatch.setenv("DBCRON_SOURCE_SALES", f"sqlite:///{db}")
    task = {
        "name": "daily-sales", "kind": "report", "schedule": {"cron": "0 9 * * *"},
        "source": "sales", "query": "SELECT id, region, amount, sold_on FROM sales ORDER BY id",
        "export": {"formats": ["xlsx", "csv"], "filename": "sales"},
        # timeout: SMTP retries within a run wait a twentieth of it (3 s).
        "policy": {"retries": 2, "timeout": "1m"},
        "email": {"to": ["anna@example.com"], "subject": "Sales", "too_large": "split"},
    }
    path = tmp_path / "daily-sales.yaml"
    path.write_text(yaml.safe_dump(task))
    applied = run_cli("apply", str(path))
    assert applied.exit_code == 0, applied.output
    return db


def _ledger(run_cli: Cli) -> list[tuple[str, str, bool]]:
    (run_row,) = json.loads(run_cli("history", "--deliveries", "--json").stdout)
    return [(d["channel"], d["status"], d["resend"]) for d in run_row["deliveries"]]


def test_an_outage_mid_split_repeats_that_part_only(
        split_task: Path, run_cli: Cli, smtp_server: SmtpTestServer) -> None:
    smtp_server.fail_transactions = {2}  # part 2's first try: 451, passes
    ran = run_cli("run", "daily-sales", "--local")
    assert ran.exit_code == 0, ran.output
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    total = len(ids)
    assert total >= 3 and smtp_server.transactions == total + 1
    assert ids[1:] == [ids[0].replace("@", f".part{n}@") for n in range(2, total + 1)]
    assert [s for _, s, _ in _ledger(run_cli)] == ["sent"] * total
    # The XLSX is cut; the CSV fits zipped on its own, and one whole file beats pieces.
    names = [n for m in smtp_server.messages for n in attachments(m.message)]
    assert names == [f"sales-part{n}.xlsx" for n in range(1, total)] + ["sales.csv.zip"]
    with zipfile.ZipFile(io.BytesIO(attachments(smtp_server.messages[-1].message)
                                    ["sales.csv.zip"][1])) as archive:
        assert archive.namelist() == ["sales.csv"]


def test_a_refused_part_is_resent_alone_with_its_message_id(
        split_task: Path, run_cli: Cli, smtp_server: SmtpTestServer) -> None:
    # Part 2 refused for good: part 1 went out, so the run is not retried (policy.retries
    # would send part 1 again); resend sends the refused part and the rest, as kept.
    smtp_server.fail_transactions = {2}
    smtp_server.fail_reply = "554 5.3.4 Message too big for today"
    failed = run_cli("run", "daily-sales", "--local")
    assert failed.exit_code == 1
    (first,) = [m.message for m in smtp_server.messages]
    total = int(first["Subject"].rsplit(" ", 1)[1].rstrip(")"))
    assert first["Subject"] == f"Sales (part 1 of {total})"
    assert f"(part 2 of {total}; parts 1 to 1 were sent, so the run is not retried" in \
        failed.stderr
    assert _ledger(run_cli) == [
        (f"mail part 1/{total}", "sent", False),
        *[(f"mail part {n}/{total}", "failed", False) for n in range(2, total + 1)]]
    text = run_cli("history", "--deliveries").stdout
    assert f"mail part 2/{total}" in text and "554 5.3.4 Message too big" in text
    shown = run_cli("show", "daily-sales").stdout
    assert f"mail part 1/{total} anna@example.com: sent" in shown

    # A resend that fails at part 2 again sends none after it: the thread stays in order.
    smtp_server.fail_transactions = {smtp_server.transactions + 1}
    run_id = json.loads(run_cli("history", "--json").stdout)[0]["id"]
    stuck = run_cli("resend", str(run_id), "--failed-only")
    assert len(smtp_server.messages) == 1
    assert f"mail part {total}/{total} anna@example.com: failed (not sent: part 2/{total} " \
        "failed)" in stuck.stdout

    smtp_server.fail_transactions = set()
    again = run_cli("resend", str(run_id), "--failed-only")
    assert again.exit_code == 0, again.output
    resent = [m.message for m in smtp_server.messages[1:]]
    assert [m["Message-ID"] for m in resent] == [
        first["Message-ID"].replace("@", f".part{n}@") for n in range(2, total + 1)]
    assert [m["Subject"] for m in resent] == [f"Sales (part {n} of {total})"
                                             for n in range(2, total + 1)]
    assert all(m["In-Reply-To"] == first["Message-ID"] for m in resent)
    assert _ledger(run_cli)[2 * total - 1:] == [(f"mail part {n}/{total}", "sent", True)
                                       for n in range(2, total + 1)]


def test_a_refused_part_still_lets_the_mail_entries_go(
        big_sales: str, tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    # Part 1 went out, part 2 was refused: the run fails without a retry, and its
    # deliver: entries still go (with ledger rows and kept copies), so resend
    # --failed-only has everything it needs.
    smtp_server.fail_transactions = {2}
    smtp_server.fail_reply = "554 5.3.4 Message too big for today"
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=LIMIT_MB)
    task = _split_report(big_sales, query=QUERY, params={},
                         export={"formats": ["csv"], "filename": "sales"},
                         deliver=[{"type": "mail", "name": "director", "attach": False,
                                   "to": ["director@example.com"], "subject": "In brief"}])
    result = run(task, settings, run_id=9)
    assert (result.status, result.retryable) == ("failed", False)
    assert result.error is not None and "(part 2 of " in result.error
    (entry,) = [m.message for m in smtp_server.messages
                if m.rcpt_tos == ["director@example.com"]]
    assert entry["Subject"] == "In brief"
    ledger = [(d["channel"], d["recipient"], d["status"]) for d in result.deliveries]
    assert ("director", "director@example.com", "sent") in ledger
    assert ledger[0][0].startswith("mail part 1/") and ledger[0][2] == "sent"
    kept = settings.output_dir / "daily-sales" / ".sent" / "run-9"
    assert (kept / "director.eml").exists()


def test_decimal_and_date_columns_survive_the_xlsx_cut(tmp_path: Path) -> None:
    """PostgreSQL-like values (Decimal, date) through the writer, the cut and openpyxl."""
    import zoneinfo

    from dbcron.jobs.export import ExportOptions, open_writer
    from dbcron.jobs.export.cut import cut_xlsx

    options = ExportOptions(title="t", subtitle="s", tz=zoneinfo.ZoneInfo("UTC"))
    rows = [(i, Decimal(f"{i}.50"), date(2026, 1, 1 + i % 28), None if i % 7 else "x" * 50)
            for i in range(4000)]
    writer = open_writer("xlsx", tmp_path / "r.xlsx", ["i", "d", "day", "t"], options)
    writer.write(rows)
    path = writer.close()
    pieces = cut_xlsx(path, 20_000, ["i", "d", "day", "t"], options, len(rows))
    assert len(pieces) >= 2 and all(p.stat().st_size <= 20_000 for p in pieces)
    back = []
    for piece in pieces:
        sheet = openpyxl.load_workbook(piece).active
        assert sheet is not None
        back += [tuple(r) for r in sheet.iter_rows(min_row=2, values_only=True)]
        assert sheet["C2"].number_format == "yyyy-mm-dd"
    assert [(i, Decimal(str(d)), day.date(), t) for i, d, day, t in back] == rows


def test_a_dry_run_previews_every_part_and_sends_them_to_the_given_address(
        tmp_path: Path, smtp_server: SmtpTestServer) -> None:
    url = fill_sales(f"sqlite:///{tmp_path / 'sales.db'}", rows=ROWS)
    settings = make_settings(tmp_path, smtp_server, max_attachment_mb=LIMIT_MB)
    task = _split_report(url, export={"formats": ["xlsx", "csv"], "filename": "s"})
    out = tmp_path / "preview"
    result = run(task, settings, dry_run=True, out_dir=out, to=("me@example.com",))
    assert result.status == "succeeded", result.error
    parts = [Path(p) for p in result.result["parts"]]
    total = len(parts)
    assert total >= 3 and all(p.parent == out and p.is_file() for p in parts)
    assert result.result["eml"] == str(parts[0])
    assert result.summary == (f"dry run; would have mailed 2 files in {total} parts to 2 "
                              "recipients; sent to me@example.com instead; "
                              f"preview in {parts[0]}")
    received = [m.message for m in smtp_server.messages]
    assert [m["Subject"] for m in received] == [
        f"[dry run] Sales report 2026-03-01 (part {n} of {total})" for n in range(1, total + 1)]
    assert all(".dry-run." in m["Message-ID"] for m in received)
    assert not (tmp_path / "output").exists()


def test_a_cut_that_fails_leaves_no_pieces_behind(tmp_path: Path) -> None:
    from dbcron.jobs.export.cut import cut_csv
    from dbcron.jobs.mail.parts import plan_split

    # Two CSV files of random text: neither fits zipped, so each is cut. The first cut
    # works; the second fails as a full disk would.
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (first, second):
        path.write_text("id,ref\n" + "".join(f"{i},{_hash(i)}\n" for i in range(3000)))

    def cut(path: Path, budget: int) -> list[Path]:
        if path == second:
            raise OSError(28, "No space left on device")
        return cut_csv(path, budget, "utf-8")

    with pytest.raises(OSError, match="No space left"):
        plan_split([first, second], LIMIT, cut)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]
