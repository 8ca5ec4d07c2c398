"""Mail against a real SMTP server (aiosmtpd): what arrives is parsed and compared."""

from __future__ import annotations

import io
import os
import re
import socket
import stat
import traceback
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from dbcron.jobs.mail.send import (
    OutboxMailer,
    PermanentMailError,
    Security,
    SmtpConfig,
    SmtpMailer,
    TransientMailError,
    build_message,
    make_message_id,
    render_default_body,
    send_with_retry,
)
from smtp_server import SmtpTestServer, TlsFiles, free_port

pytest_plugins = ["smtp_server"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SLOT = datetime(2026, 3, 1, 9, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
MESSAGE_ID = "<dbcron.daily-sales.20260301T033000Z@example.com>"
PASSWORD = "s3cret-Pa55word"


def config(
    server: SmtpTestServer | None = None,
    *,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    security: Security = "none",
    timeout: float = 5.0,
) -> SmtpConfig:
    return SmtpConfig(
        host="127.0.0.1",
        port=port if port is not None else server.port if server else 0,
        user=user,
        password=password,
        security=security,
        timeout=timeout,
        sender="reports@example.com",
    )


def message(
    *,
    subject: str = "Sales report 2026-02-28",
    attachments: tuple[Path, ...] = (),
    html: str | None = "<p>Hello</p>",
    **kwargs: object,
) -> EmailMessage:
    return build_message(
        sender="dbcron <reports@example.com>",
        to=["manager@example.com", "Ann Lee <ann@example.com>"],
        cc=["boss@example.com"],
        subject=subject,
        text="Hello",
        html=html,
        attachments=attachments,
        message_id=MESSAGE_ID,
        date=SLOT,
        **kwargs,  # type: ignore[arg-type]
    )


def attachments_of(msg: EmailMessage) -> dict[str, tuple[str, bytes]]:
    return {
        part.get_filename() or "": (
            part.get_content_type(),
            cast(bytes, part.get_payload(decode=True)),
        )
        for part in msg.iter_attachments()
    }


def body(msg: EmailMessage, subtype: str) -> str:
    """The text or html part, lines ending in "\\n" as a mail client shows them.

    Base64 and quoted-printable parts carry canonical CRLF line ends inside.
    """
    part = msg.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    return cast(str, part.get_content()).replace("\r\n", "\n")


class RecordedSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    content = {
        "sales.xlsx": b"PK\x03\x04 not really a workbook " + os.urandom(300),
        "sales.pdf": b"%PDF-1.7\n" + os.urandom(300),
        "sales.csv": "region,total\r\nNorth,1\r\nSüd,2\n".encode(),
    }
    for name, data in content.items():
        (tmp_path / name).write_bytes(data)
    return content


# -- delivery ---------------------------------------------------------------


def test_message_arrives_with_headers_and_identical_attachments(
    smtp_server: SmtpTestServer, tmp_path: Path, files: dict[str, bytes]
) -> None:
    paths = tuple(tmp_path / name for name in files)
    SmtpMailer(config(smtp_server)).send(message(attachments=paths))

    [received] = smtp_server.messages
    got = received.message
    assert got["Subject"] == "Sales report 2026-02-28"
    assert got["From"] == "dbcron <reports@example.com>"
    assert got["To"] == "manager@example.com, Ann Lee <ann@example.com>"
    assert got["Cc"] == "boss@example.com"
    assert got["Message-ID"] == MESSAGE_ID
    assert got["Auto-Submitted"] == "auto-generated"
    assert received.mail_from == "reports@example.com"
    assert sorted(received.rcpt_tos) == [
        "ann@example.com",
        "boss@example.com",
        "manager@example.com",
    ]
    assert (body(got, "plain"), body(got, "html")) == ("Hello\n", "<p>Hello</p>\n")
    assert attachments_of(got) == {
        "sales.xlsx": (XLSX, files["sales.xlsx"]),
        "sales.pdf": ("application/pdf", files["sales.pdf"]),
        "sales.csv": ("text/csv", files["sales.csv"]),
    }


def test_non_ascii_subject_names_and_body_survive_the_trip(smtp_server: SmtpTestServer) -> None:
    msg = build_message(
        sender="Berichte <reports@example.com>",
        to=["Zoë Ünger <zoe@example.com>"],
        cc=[],
        subject="Umsätze für Süd",
        text="Grüße\n",
        html="<p>Grüße</p>",
        attachments=[],
        message_id=MESSAGE_ID,
        date=SLOT,
    )
    SmtpMailer(config(smtp_server)).send(msg)

    got = smtp_server.messages[0].message
    assert (got["Subject"], got["To"]) == ("Umsätze für Süd", "Zoë Ünger <zoe@example.com>")
    assert (body(got, "plain"), body(got, "html")) == ("Grüße\n", "<p>Grüße</p>\n")
    assert smtp_server.messages[0].raw.isascii()  # no 8bit data for old relays


def test_html_table_escapes_cells_and_text_table_keeps_them(smtp_server: SmtpTestServer) -> None:
    text, html = render_default_body(
        task="daily-sales",
        description="Sales & returns",
        slot=SLOT,
        late_by=None,
        row_count=1,
        columns=["region", "<b>total</b>"],
        first_rows=[["<script>alert(1)</script>", 5]],
        files=[],
    )
    SmtpMailer(config(smtp_server)).send(message(html=html))

    received_html = body(smtp_server.messages[0].message, "html")
    assert "<script>" not in received_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in received_html
    assert "&lt;b&gt;total&lt;/b&gt;" in received_html
    assert "Sales &amp; returns" in received_html
    assert "<script>alert(1)</script> |            5" in text


def test_subject_line_break_does_not_create_a_header(smtp_server: SmtpTestServer) -> None:
    SmtpMailer(config(smtp_server)).send(message(subject="Report\r\nBcc: evil@x"))

    [received] = smtp_server.messages
    assert received.message["Bcc"] is None
    assert received.message["Subject"] == "Report Bcc: evil@x"
    assert "evil@x" not in received.rcpt_tos
    assert not any(line.startswith(b"Bcc:") for line in received.raw.splitlines())


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("ann@example.com\r\nBcc: evil@x", "invalid address in address-list"),
        ("ann", "addr-spec local part with no domain"),
        ("ann@", "not an e-mail address"),
        ("ann@example.com, bob@example.com", "expected exactly one address"),
        ("", "expected exactly one address"),
    ],
)
def test_invalid_address_is_rejected_by_name(address: str, problem: str) -> None:
    with pytest.raises(ValueError) as raised:
        build_message(
            sender="reports@example.com",
            to=["manager@example.com", address],
            cc=[],
            subject="s",
            text="t",
            html=None,
            attachments=[],
            message_id=MESSAGE_ID,
            date=SLOT,
        )
    assert str(raised.value) == f"invalid e-mail address {address!r}: {problem}"


def test_a_mail_needs_a_recipient() -> None:
    with pytest.raises(ValueError, match="at least one recipient"):
        build_message(
            sender="reports@example.com",
            to=[],
            cc=[],
            subject="s",
            text="t",
            html=None,
            attachments=[],
            message_id=MESSAGE_ID,
            date=SLOT,
        )


# -- attachment size --------------------------------------------------------


def test_oversize_attachments_are_sent_as_one_zip(
    smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    content = {
        "sales-2026-02-28.csv": b"region,total\r\n" + b"North,1\r\n" * 20_000,
        "sales-2026-02-28.pdf": b"%PDF-1.7\n" + b"0" * 100_000,
    }
    for name, data in content.items():
        (tmp_path / name).write_bytes(data)
    paths = tuple(tmp_path / name for name in content)

    msg = message(attachments=paths, max_attachment_bytes=100_000)
    SmtpMailer(config(smtp_server)).send(msg)

    [(name, (mime, data))] = attachments_of(smtp_server.messages[0].message).items()
    assert (name, mime) == ("sales-2026-02-28.zip", "application/zip")
    assert (tmp_path / name).read_bytes() == data  # written next to the files
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {info.filename: info.compress_type for info in archive.infolist()} == {
            name: zipfile.ZIP_DEFLATED for name in content
        }
        assert {name: archive.read(name) for name in content} == content


def test_still_too_large_files_are_left_out_with_a_note(
    smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    (tmp_path / "big.xlsx").write_bytes(os.urandom(200_000))  # random: zip cannot shrink it
    msg = message(
        attachments=(tmp_path / "big.xlsx",),
        html="<html><body><p>Hello</p></body></html>",
        max_attachment_bytes=100_000,
        output_note="/srv/dbcron/output/daily-sales",
    )
    SmtpMailer(config(smtp_server)).send(msg)

    got = smtp_server.messages[0].message
    assert attachments_of(got) == {}
    note = (
        "The files were too large to send by mail, even zipped (the limit is 98 KB): "
        "big.xlsx. They are in /srv/dbcron/output/daily-sales."
    )
    assert body(got, "plain") == f"Hello\n\n{note}\n"
    assert body(got, "html") == f"<html><body><p>Hello</p><p>{note}</p>\n</body></html>\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.xlsx"]  # no zip left behind


def test_the_note_states_the_limit_readably(tmp_path: Path) -> None:
    from dbcron.jobs.mail.message import _megabytes

    (tmp_path / "big.xlsx").write_bytes(os.urandom(53_000))
    msg = message(attachments=(tmp_path / "big.xlsx",), max_attachment_bytes=52_428)
    assert "(the limit is 51 KB): big.xlsx" in body(msg, "plain")  # was "0.0 MB"
    mb = 1024 * 1024
    assert [_megabytes(n) for n in (20_000, 10 * mb, int(7.5 * mb), 2000 * mb)] == [
        "20 KB", "10 MB", "7.5 MB", "2,000 MB"]


def test_attachments_at_the_limit_are_sent_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"x" * 300)
    # 300 bytes -> 400 base64 characters in 6 lines, 2 bytes of CRLF each.
    msg = message(attachments=(tmp_path / "a.csv",), max_attachment_bytes=412)
    assert list(attachments_of(msg)) == ["a.csv"]


# -- failures and retries ---------------------------------------------------


def test_transient_refusals_are_retried_with_doubling_backoff(
    smtp_server: SmtpTestServer,
) -> None:
    smtp_server.fail_first = 2  # 451 to the first two attempts
    sleep = RecordedSleep()

    send_with_retry(SmtpMailer(config(smtp_server)), message(), sleep=sleep)

    assert sleep.delays == [30.0, 60.0]
    assert smtp_server.transactions == 3
    assert [m.message["Message-ID"] for m in smtp_server.messages] == [MESSAGE_ID]


def test_connection_refused_is_retried_then_raised() -> None:
    sleep = RecordedSleep()
    port = free_port()
    with pytest.raises(TransientMailError) as raised:
        send_with_retry(
            SmtpMailer(config(port=port)), message(), attempts=3, backoff=2.0, sleep=sleep
        )
    assert str(raised.value) == (
        f"SMTP 127.0.0.1:{port}: connection refused (gave up after 3 attempts)"
    )
    assert sleep.delays == [2.0, 4.0]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_server_that_does_not_answer_is_a_transient_error(silent_port: int) -> None:
    with pytest.raises(TransientMailError, match=r"no answer within 0\.3s$"):
        SmtpMailer(config(port=silent_port, timeout=0.3)).send(message())


@pytest.mark.parametrize(
    ("fail_at", "reply", "error"),
    [
        ("mail", "550 5.7.1 Sender rejected", "sender reports@example.com refused: 550"),
        ("rcpt", "550 5.1.1 No such user", "all recipients refused: "),
        ("data", "554 5.6.0 Message rejected", "message refused: 554 5.6.0 Message rejected"),
    ],
)
def test_5xx_is_permanent_and_not_retried(
    smtp_server: SmtpTestServer, fail_at: str, reply: str, error: str
) -> None:
    smtp_server.fail_first, smtp_server.fail_reply = 1, reply
    smtp_server.fail_at = fail_at  # type: ignore[assignment]
    sleep = RecordedSleep()

    with pytest.raises(PermanentMailError, match=error):
        send_with_retry(SmtpMailer(config(smtp_server)), message(), sleep=sleep)

    assert sleep.delays == []
    assert smtp_server.transactions == 1
    assert smtp_server.messages == []


def test_4xx_for_every_recipient_is_transient(smtp_server: SmtpTestServer) -> None:
    smtp_server.fail_first, smtp_server.fail_at = 1, "rcpt"
    with pytest.raises(TransientMailError) as raised:
        SmtpMailer(config(smtp_server)).send(message())
    assert "manager@example.com (451 4.3.0 Try again later)" in str(raised.value)


# -- login and TLS ----------------------------------------------------------


def error_text(exc: BaseException) -> str:
    """Everything a log line or a run's error column could show, causes included."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


def test_login_with_user_and_password() -> None:
    with SmtpTestServer(auth=("reporter", PASSWORD)) as server:
        SmtpMailer(config(server, user="reporter", password=PASSWORD)).send(message())
    assert [m.login for m in server.messages] == ["reporter"]


def test_refused_login_is_permanent_and_never_shows_the_password() -> None:
    with SmtpTestServer(auth=("reporter", PASSWORD)) as server:
        mailer = SmtpMailer(config(server, user="reporter", password=PASSWORD + "-old"))
        with pytest.raises(PermanentMailError) as raised:
            mailer.send(message())
    assert str(raised.value).startswith(
        f"SMTP 127.0.0.1:{server.port}: login as 'reporter' refused: 535"
    )
    assert PASSWORD not in error_text(raised.value)
    # smtplib tries the next mechanism (LOGIN after PLAIN) before giving up.
    assert set(server.auth_attempts) == {"reporter"}
    assert server.messages == []


def test_missing_login_is_permanent() -> None:
    with (
        SmtpTestServer(auth=("reporter", PASSWORD)) as server,
        pytest.raises(PermanentMailError, match=r"530 5\.7\.0 Authentication required"),
    ):
        SmtpMailer(config(server)).send(message())


def test_the_config_repr_hides_the_password() -> None:
    assert PASSWORD not in repr(config(password=PASSWORD))


@pytest.fixture
def trusted_tls(smtp_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> TlsFiles:
    # ssl.create_default_context() reads the trust store named by SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp_tls.cert))
    return smtp_tls


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_login(trusted_tls: TlsFiles, security: Security) -> None:
    server = SmtpTestServer(
        auth=("reporter", PASSWORD), tls=trusted_tls, implicit_tls=security == "ssl"
    )
    with server:
        cfg = config(server, user="reporter", password=PASSWORD, security=security)
        SmtpMailer(cfg).send(message())
    assert [(m.tls, m.login) for m in server.messages] == [(True, "reporter")]


def test_an_untrusted_certificate_is_permanent(
    smtp_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with (
        SmtpTestServer(tls=smtp_tls) as server,
        pytest.raises(PermanentMailError, match="TLS certificate not trusted"),
    ):
        SmtpMailer(config(server, security="starttls")).send(message())
    assert server.messages == []


def test_starttls_against_a_server_without_it_is_permanent(smtp_server: SmtpTestServer) -> None:
    with pytest.raises(PermanentMailError, match="STARTTLS extension not supported"):
        SmtpMailer(config(smtp_server, security="starttls")).send(message())


# -- outbox -----------------------------------------------------------------


@pytest.mark.usefixtures("files")
def test_outbox_writes_a_parseable_eml_with_mode_0640(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    msg = message(attachments=(tmp_path / "sales.pdf",))
    mailer = OutboxMailer(outbox)
    mailer.send(msg)
    mailer.send(msg)  # a retry of the same slot replaces its file

    [path] = outbox.iterdir()
    assert path.name == "dbcron.daily-sales.20260301T033000Z@example.com.eml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    parsed = BytesParser(policy=default_policy).parsebytes(path.read_bytes())
    assert parsed["Message-ID"] == MESSAGE_ID
    assert parsed["Subject"] == "Sales report 2026-02-28"
    assert attachments_of(parsed) == attachments_of(msg)


# -- Message-ID -------------------------------------------------------------


def test_the_same_task_and_slot_give_the_same_message_id() -> None:
    same_slot_in_utc = datetime(2026, 3, 1, 3, 30, tzinfo=UTC)
    assert make_message_id("daily-sales", SLOT, "example.com") == MESSAGE_ID
    assert make_message_id("daily-sales", same_slot_in_utc, "example.com") == MESSAGE_ID
    assert make_message_id("daily-sales", SLOT + timedelta(days=1), "example.com") != MESSAGE_ID
    assert make_message_id("weekly-sales", SLOT, "example.com") != MESSAGE_ID


@pytest.mark.parametrize(
    ("task", "slot", "domain", "error"),
    [
        ("daily-sales", datetime(2026, 3, 1, 9), "example.com", "has no timezone"),
        ("daily sales", SLOT, "example.com", "task name 'daily sales' cannot be used"),
        ("daily-sales", SLOT, "example.com>\r\nBcc: x", "domain 'example.com>"),
    ],
)
def test_message_id_rejects_what_would_break_the_header(
    task: str, slot: datetime, domain: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        make_message_id(task, slot, domain)


# -- default body -----------------------------------------------------------


def test_default_body_shows_slot_lateness_count_and_first_20_rows() -> None:
    rows = [[f"r{i}", i] for i in range(25)]
    text, html = render_default_body(
        task="daily-sales",
        description="Yesterday's sales by region",
        slot=SLOT,
        late_by=timedelta(hours=1, minutes=5),
        row_count=1234,
        columns=["region", "total"],
        first_rows=rows,
        files=["sales.xlsx", "sales.pdf"],
    )
    assert text.startswith(
        "daily-sales\nYesterday's sales by region\n\n"
        "Scheduled for: 2026-03-01 09:00 IST\n"
        "Started late by: 1 h 5 min\n"
        "Rows: 1,234\n"
        "Files: sales.xlsx, sales.pdf\n\n"
        "region | total\n"
        "-------+------\n"
        "r0     |     0\n"
    )
    assert "r19 " in text and "r20" not in text
    assert text.endswith("First 20 of 1,234 rows; the attached files hold all of them.\n")
    assert re.findall(r">(r\d+)</td>", html) == [f"r{i}" for i in range(20)]
    assert "Started late by" in html and "1,234" in html


@pytest.mark.parametrize(
    ("late_by", "shown"),
    [(None, False), (timedelta(seconds=59), False), (timedelta(minutes=1), False),
     (timedelta(minutes=2), True)],
)  # fmt: skip
def test_lateness_is_shown_only_past_a_minute(late_by: timedelta | None, shown: bool) -> None:
    text, html = render_default_body(
        task="t",
        description="",
        slot=SLOT,
        late_by=late_by,
        row_count=0,
        columns=["a"],
        first_rows=[],
        files=[],
    )
    assert ("Started late by: 2 min" in text) is shown
    assert ("Started late by" in html) is shown
    assert "The query returned no rows." in text


def test_the_table_reads_like_the_files_numbers_on_the_point_wide_text_padded() -> None:
    """Before: 230.98000000000002, numbers right-aligned on their last digit, 東京 counted
    as two columns where it takes four, and the task handle as the heading."""
    from decimal import Decimal

    from dbcron.cells import parse_format

    text, html = render_default_body(
        task="daily-sales",
        title="Sales by region, 2026-02-28",
        description="Yesterday's sales by region",
        slot=SLOT,
        late_by=None,
        row_count=3,
        columns=["region", "Amount", "share"],
        formats=[None, parse_format("#,##0.00"), None],
        first_rows=[
            ["東京", 230.98000000000002, 0.1 + 0.2],
            ["Zürich", Decimal("1792.39"), 12.5],
            ["मुंबई", 7, 3.25],
        ],
        files=[],
    )
    assert text == (
        "Sales by region, 2026-02-28\nYesterday's sales by region\n\n"
        "Scheduled for: 2026-03-01 09:00 IST\n"
        "Rows: 3\n\n"
        "region |   Amount | share\n"
        "-------+----------+------\n"
        "東京   |   230.98 |  0.3\n"
        "Zürich | 1,792.39 | 12.5\n"
        "मुंबई    |     7.00 |  3.25\n"  # 3 columns wide: its vowel signs take none
    )
    assert ">Sales by region, 2026-02-28</h2>" in html
    # Right-aligned cells padded after the point with figure spaces line the points up.
    cells = re.findall(r"tabular-nums;\">([^<]*)</td>", html)
    assert cells == ["230.98", "0.3\u2007", "1,792.39", "12.5\u2007", "7.00", "3.25"]


def test_a_title_that_is_the_description_is_said_once() -> None:
    text, html = render_default_body(
        task="high-waste",
        title="A floor wasted more than 50 kg",
        description="A floor wasted more than 50 kg\ncondition holds: 1 row with waste_kg > 50",
        slot=SLOT,
        late_by=None,
        row_count=None,
        columns=[],
        first_rows=[],
        files=[],
    )
    assert text == (
        "A floor wasted more than 50 kg\ncondition holds: 1 row with waste_kg > 50\n\n"
        "Scheduled for: 2026-03-01 09:00 IST\n"
    )
    assert html.count("A floor wasted more than 50 kg") == 1
