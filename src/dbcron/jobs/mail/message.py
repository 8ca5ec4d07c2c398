"""Compose a run's mail: validated headers, text + html, attachments that fit the limit.

Everything here is a function of its arguments (plus the files on disk), so
the mail is built once per run and the same object is handed to every retry.
"""

from __future__ import annotations

import contextlib
import email.errors
import email.policy
import logging
import mimetypes
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from html import escape as html_escape
from pathlib import Path
from typing import IO

from dbcron.jobs.export._files import open_private

log = logging.getLogger("dbcron.mail")

# 7bit: non-ASCII text goes quoted-printable or base64 rather than raw 8bit,
# which a relay without 8BITMIME may mangle (smtplib does not negotiate it).
POLICY = email.policy.SMTP.clone(cte_type="7bit")

# Explicit types for what the exporters write: the platform's mimetypes table
# (often /etc/mime.types) is not guaranteed to know .xlsx.
_MIME_TYPES = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pdf": "application/pdf",
    ".csv": "text/csv",
    ".zip": "application/zip",
}
# Every character that could end a header line, for str.splitlines() or a mail client.
_HEADER_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")


def make_message_id(task: str, slot: datetime, domain: str) -> str:
    """``<dbcron.{task}.{slot in UTC}@{domain}>``: the same for every attempt at one slot."""
    if slot.tzinfo is None:
        raise ValueError(f"slot {slot.isoformat()} has no timezone; pass an aware datetime")
    for what, value in (("task name", task), ("domain", domain)):
        if not _DOT_ATOM.fullmatch(value):
            raise ValueError(f"{what} {value!r} cannot be used in a Message-ID")
    utc = slot.astimezone(UTC)
    stamp = utc.strftime("%Y%m%dT%H%M%S") + (f".{utc.microsecond:06d}" if utc.microsecond else "")
    return f"<dbcron.{task}.{stamp}Z@{domain}>"


def parse_address(value: str) -> Address:
    """Parse one address (``a@b.example`` or ``Name <a@b.example>``) or raise ValueError.

    Line breaks are removed first, so whatever they tried to smuggle in
    becomes part of an invalid address instead of a new header.
    """
    cleaned = _HEADER_BREAKS.sub("", value).strip()
    try:
        header = email.policy.SMTP.header_factory("To", cleaned)
    except (IndexError, ValueError, email.errors.HeaderParseError):
        # The stdlib parser raises IndexError on some malformed input ("a@").
        raise ValueError(f"invalid e-mail address {value!r}: not an e-mail address") from None
    addresses: tuple[Address, ...] = header.addresses
    problem = ""
    if header.defects:
        problem = str(header.defects[0])
    elif len(addresses) != 1:
        problem = "expected exactly one address"
    elif not addresses[0].username or not addresses[0].domain:
        problem = "expected local-part@domain"
    if problem:
        raise ValueError(f"invalid e-mail address {value!r}: {problem}")
    return addresses[0]


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str],
    subject: str,
    text: str,
    html: str | None,
    attachments: Sequence[Path],
    message_id: str,
    date: datetime,
    max_attachment_bytes: int = 10 * 1024 * 1024,
    output_note: str = "",
    left_out: Sequence[Path] = (),
) -> EmailMessage:
    """Build the mail: text (+ html alternative) and the files, zipped or left out when too big.

    ``max_attachment_bytes`` counts the attachments as sent, i.e. base64
    encoded. Over the limit, all files go into one zip next to them; if that
    is still over, no file is attached and the body says where they are
    (``output_note``), so the recipient never gets a mail with nothing in it.
    ``left_out`` names files the caller already kept out (a mail split into
    parts), which the note names too.
    """
    from_address = parse_address(sender)
    to_addresses = [parse_address(a) for a in to]
    cc_addresses = [parse_address(a) for a in cc]
    if not to_addresses and not cc_addresses:
        raise ValueError("a mail needs at least one recipient in to or cc")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"Message-ID {message_id!r} is not of the form <id@domain>")
    if date.tzinfo is None:
        raise ValueError(f"date {date.isoformat()} has no timezone; pass an aware datetime")

    files, too_large = fit_attachments([Path(p) for p in attachments], max_attachment_bytes)
    too_large = [*left_out, *too_large]
    if too_large:
        log.warning("%s left out of the mail: over %d bytes", ", ".join(p.name for p in too_large),
                    max_attachment_bytes)
        text, html = append_note(
            text, html, _too_large_note(too_large, max_attachment_bytes, output_note))

    msg = EmailMessage(policy=POLICY)
    msg["From"] = from_address
    if to_addresses:
        msg["To"] = to_addresses
    if cc_addresses:
        msg["Cc"] = cc_addresses
    msg["Subject"] = _HEADER_BREAKS.sub(" ", subject).strip()
    msg["Date"] = date
    msg["Message-ID"] = message_id
    # RFC 3834: out-of-office replies and other auto-responders stay silent.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for path in files:
        maintype, subtype = _mime_type(path).split("/", 1)
        msg.add_attachment(
            path.read_bytes(),
            maintype=maintype,
            subtype=subtype,
            filename=_HEADER_BREAKS.sub(" ", path.name),
        )
    return msg


def fit_attachments(paths: list[Path], limit: int) -> tuple[list[Path], list[Path]]:
    """Return (files to attach, files left out) for ``limit`` bytes of base64."""
    if sum(base64_size(p.stat().st_size) for p in paths) <= limit:
        return paths, []
    archive = _zip(paths)
    size = base64_size(archive.stat().st_size)
    if size <= limit:
        log.info("attachments over %d bytes, sending %s instead", limit, archive)
        return [archive], []
    # Not sent, so not kept: the originals are still next to where it was.
    archive.unlink()
    log.info("attachments over %d bytes even zipped (%d)", limit, size)
    return [], paths


def base64_size(n: int) -> int:
    """The bytes a file of ``n`` bytes takes in a mail."""
    # 4 characters per 3 bytes, in lines of 76 characters ending in CRLF.
    encoded = 4 * ((n + 2) // 3)
    return encoded + 2 * -(-encoded // 76)


def _zip(paths: list[Path]) -> Path:
    return zip_files(paths, _zip_path(paths))


def zip_files(paths: Sequence[Path], archive: Path) -> Path:
    """Write the files into the zip ``archive`` (replaced only once complete)."""
    with atomic_file(archive) as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in paths:
            zf.write(path, arcname=path.name)  # reads the file in chunks
    return archive


def _zip_path(paths: list[Path]) -> Path:
    # sales-2026-03-01.xlsx + sales-2026-03-01.pdf -> sales-2026-03-01.zip
    # Character-wise on purpose: these are names, not paths.
    stems = [p.stem for p in paths]
    stem = os.path.commonprefix(stems).rstrip("-_. ") or "attachments"  # noqa: RUF071
    archive = paths[0].with_name(f"{stem}.zip")
    if archive in paths:
        archive = paths[0].with_name(f"{stem}-files.zip")
    return archive


def _mime_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _MIME_TYPES:
        return _MIME_TYPES[suffix]
    guessed, encoding = mimetypes.guess_type(path.name)
    # A .csv.gz is gzip data, not CSV: only trust a guess without an encoding.
    return guessed if guessed and not encoding else "application/octet-stream"


def _too_large_note(paths: list[Path], limit: int, output_note: str) -> str:
    names = ", ".join(p.name for p in paths)
    where = f"They are in {output_note}." if output_note else "They are kept where the task ran."
    return (
        f"The files were too large to send by mail, even zipped "
        f"(the limit is {_megabytes(limit)}): {names}. {where}"
    )


def _megabytes(n: int) -> str:
    # Under 1 MB in KB: a small limit read "0.0 MB" with one decimal of megabytes.
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):,.1f}".removesuffix(".0") + " MB"


def append_note(text: str, html: str | None, note: str) -> tuple[str, str | None]:
    """The body with ``note`` as its last paragraph, in the text and the html."""
    page = None if html is None else _append_paragraph(html, note)
    return f"{text.rstrip()}\n\n{note}\n", page


def _append_paragraph(html: str, text: str) -> str:
    paragraph = f"<p>{html_escape(text)}</p>\n"
    end = html.lower().rfind("</body>")
    if end < 0:
        return html + paragraph
    return html[:end] + paragraph + html[end:]


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Open a temporary file next to ``path`` that replaces it only once complete.

    A reader (or a crash) never sees half a file under the final name.
    """
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = open_private(tmp, exclusive=True)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
