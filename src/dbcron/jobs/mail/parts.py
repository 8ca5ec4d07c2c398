"""A report mail split into parts (``email.too_large: split``), each within the limit.

When the files do not fit ``DBCRON_MAX_ATTACHMENT_MB`` even zipped, they are
packed in order into as few mails as they need: a file that fits goes whole, a
file over the limit goes zipped alone when that fits (``sales.csv.zip``), else
a CSV or XLSX file is cut by rows (``export.cut``), and what cannot be cut (a
PDF, one row over the limit) is left out with the usual note.
Part 1 carries the report's body and says how many parts follow; parts 2..n
answer it (In-Reply-To, References), so a mail client shows one thread.

Each part has its own Message-ID derived from the slot's (part 1 keeps it), and
its own rows in the delivery ledger (channel ``mail part 2/3``) and its own
kept copy, so SMTP retries and ``manage-tasks resend`` repeat a part, never a
different one. More than ``MAX_PARTS`` mails would be a storm in the
recipients' inboxes: then no part is sent and the files are left out with the
note, as under ``too_large: zip``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from dbcron.jobs.mail.message import base64_size, fit_attachments, zip_files

log = logging.getLogger("dbcron.mail")

MAX_PARTS = 20
_CHANNEL = re.compile(r"^mail part (\d+)/(\d+)$")

Cutter = Callable[[Path, int], list[Path]]


@dataclass(frozen=True)
class Split:
    """Which files each mail carries, in order; one entry means one ordinary mail."""

    parts: list[list[Path]]
    left_out: list[Path] = field(default_factory=list)  # named in the first mail's note
    pieces: list[Path] = field(default_factory=list)  # files cut from the exports
    too_many: int = 0  # the parts it would have taken, when over MAX_PARTS

    @property
    def total(self) -> int:
        return len(self.parts)


def raw_budget(limit: int) -> int:
    """The largest file size whose base64 form fits in ``limit`` bytes."""
    # 57 bytes make one base64 line: 76 characters and CRLF.
    size = limit * 57 // 78 + 57
    while size > 0 and base64_size(size) > limit:
        size -= 1
    return size


def plan_split(files: Sequence[Path], limit: int, cut: Cutter) -> Split:
    """Decide the parts: as they are or zipped when that fits, else cut and packed.

    ``cut(path, budget)`` cuts one file into pieces of at most ``budget`` bytes,
    raising ``CannotCut`` when it cannot.
    """
    from dbcron.jobs.export.cut import CannotCut, remove_files

    fitted, left_out = fit_attachments(list(files), limit)
    if not left_out:
        return Split([fitted] if fitted else [])
    budget = raw_budget(limit)
    items: list[Path] = []
    pieces: list[Path] = []
    left: list[Path] = []
    archives: list[Path] = []
    try:
        for path in files:
            if base64_size(path.stat().st_size) <= limit:
                items.append(path)
                continue
            archive = _zip_alone(path, limit)
            if archive is not None:
                items.append(archive)
                archives.append(archive)
                continue
            try:
                cut_into = cut(path, budget)
            except CannotCut as exc:
                log.warning("cannot split %s into parts: %s", path.name, exc)
                left.append(path)
                continue
            items += cut_into
            pieces += cut_into
    except BaseException:
        # A failed cut or zip (disk full, a broken file) leaves no half-made set behind.
        remove_files([*pieces, *archives])
        raise
    parts = _pack(items, limit)
    if len(parts) > MAX_PARTS:
        log.warning("the files would take %d mails (at most %d): left out with a note",
                    len(parts), MAX_PARTS)
        remove_files([*pieces, *archives])
        return Split([], list(files), too_many=len(parts))
    return Split(parts, left, pieces)


def _zip_alone(path: Path, limit: int) -> Path | None:
    """``sales.csv.zip`` when that fits in one mail: one whole file beats pieces of it.

    An XLSX file is a zip already, so zipping it again gains nothing.
    """
    if path.suffix.lower() == ".xlsx":
        return None
    archive = zip_files([path], path.with_name(f"{path.name}.zip"))
    if base64_size(archive.stat().st_size) <= limit:
        return archive
    archive.unlink()
    return None


def _pack(items: Sequence[Path], limit: int) -> list[list[Path]]:
    """Next fit, in order: the rows of a cut file stay in order across the parts."""
    parts: list[list[Path]] = []
    room = 0
    for path in items:
        size = base64_size(path.stat().st_size)
        if not parts or size > room:
            parts.append([])
            room = limit
        parts[-1].append(path)
        room -= size
    return parts


def part_message_id(message_id: str, number: int) -> str:
    """Part 1 keeps the slot's Message-ID; part n inserts ``.partN`` before the ``@``."""
    if number == 1:
        return message_id
    local, domain = message_id[1:-1].rsplit("@", 1)
    return f"<{local}.part{number}@{domain}>"


def part_subject(subject: str, number: int, total: int) -> str:
    return f"{subject} (part {number} of {total})"


def part_channel(number: int, total: int) -> str:
    """The ledger's channel of a part: ``mail`` for an ordinary mail."""
    return "mail" if total == 1 else f"mail part {number}/{total}"


def kept_name(number: int, total: int) -> str:
    """The file each part is kept in for `manage-tasks resend`."""
    return "mail.eml" if total == 1 else f"mail-part{number}.eml"


def kept_name_of(channel: str) -> str | None:
    """The kept file of a part's ledger channel; None for any other channel."""
    found = _CHANNEL.match(channel)
    return kept_name(int(found[1]), int(found[2])) if found else None


def first_part_note(split: Split, limit_mb: float) -> str:
    """Said at the end of part 1's body."""
    rest = "part 2 follows" if split.total == 2 else f"parts 2 to {split.total} follow"
    note = (f"This report comes in {split.total} mails, each within the attachment limit "
            f"of {limit_mb:g} MB: this is part 1, {rest}.")
    if split.pieces:
        note += (" Files too large for one mail are cut by rows into NAME-part1, "
                 "NAME-part2, ...: each opens on its own with the header, and together "
                 "they hold every row once, in order.")
    return note


def later_part_text(subject: str, number: int, total: int, files: Sequence[Path]) -> str:
    names = ", ".join(p.name for p in files)
    return (f"Part {number} of {total} of \"{subject}\" (the summary is in part 1).\n\n"
            f"Attached: {names}\n")


def thread(msg: EmailMessage, first_id: str) -> None:
    """Make a later part an answer to part 1, so clients group the parts."""
    msg["In-Reply-To"] = first_id
    msg["References"] = first_id
