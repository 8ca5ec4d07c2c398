"""Export writers: query rows streamed in batches to xlsx, pdf and csv files.

The runner makes one pass over the cursor and hands every batch to one writer per
format, so each writer keeps memory flat in the number of rows. A writer writes
to a hidden ``.NAME.part`` file in the target directory and renames it into place
only in ``close()``: a crash or a timeout never leaves a half-written report under
the name a mail or a user would pick up.

reportlab and openpyxl are heavy: ``open_writer`` imports a format's module only
when that format is asked for, so importing this package stays cheap for the CLI.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dbcron.cells import NumberFormat
from dbcron.vocabulary import FORMATS

# 255 bytes is the usual file name limit; leave room for the ".part" temp name.
_MAX_STEM_BYTES = 200
# Characters Windows and many mail clients refuse in an attachment name.
_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


@dataclass(frozen=True)
class ColumnStyle:
    """A task's ``export.columns`` entry for one column, its format parsed."""

    format: NumberFormat | None = None
    label: str | None = None
    wrap: bool = False


_PLAIN = ColumnStyle()


@dataclass(frozen=True)
class ExportOptions:
    """What a report shows besides its rows."""

    title: str
    subtitle: str
    tz: zoneinfo.ZoneInfo
    columns: Mapping[str, ColumnStyle] = field(default_factory=dict)
    csv_encoding: str = "utf-8-sig"
    csv_delimiter: str = ","
    # CSV cells that would run as spreadsheet formulas: "escape" or "keep" them.
    csv_formulas: str = "escape"

    def styles(self, columns: Sequence[str]) -> list[ColumnStyle]:
        """The style of each result column, in order (plain where the task names none)."""
        return [self.columns.get(c, _PLAIN) for c in columns]

    def labels(self, columns: Sequence[str]) -> list[str]:
        """The header of each column: its label, else its name."""
        return [s.label or c for c, s in zip(columns, self.styles(columns), strict=True)]


class Writer(Protocol):
    """One output file being written from batches of rows."""

    @property
    def rows_written(self) -> int: ...

    def write(self, rows: Sequence[Sequence[object]]) -> None:
        """Append a batch of rows, each with one value per column."""

    def close(self) -> Path:
        """Finish the file, fsync it, rename it to its final path and return that path."""

    def abort(self) -> None:
        """Remove the temporary file; safe to call after any failure, and twice."""


def open_writer(fmt: str, path: Path, columns: Sequence[str], options: ExportOptions) -> Writer:
    """Start writing ``path`` in format ``fmt`` with the given column names."""
    if not columns:
        raise ValueError("an export needs at least one column")
    names = [str(c) for c in columns]
    if fmt == "csv":
        from dbcron.jobs.export.csv import CsvWriter

        return CsvWriter(path, names, options)
    if fmt == "xlsx":
        from dbcron.jobs.export.xlsx import XlsxWriter

        return XlsxWriter(path, names, options)
    if fmt == "pdf":
        from dbcron.jobs.export.pdf import PdfWriter

        return PdfWriter(path, names, options)
    raise ValueError(f"unknown export format {fmt!r}: valid formats are {', '.join(FORMATS)}")


def safe_filename(name: str, fmt: str) -> str:
    """Turn a rendered file name template into a safe single file name plus extension.

    Template values come from query parameters and dates, so the result must not
    escape the output directory, hide itself (leading dot), carry control
    characters into a mail header, or exceed file system limits.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: valid formats are {', '.join(FORMATS)}")
    text = unicodedata.normalize("NFC", name)
    text = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text
    )
    text = _UNSAFE_CHARS.sub("_", text)
    text = " ".join(text.split())
    if text.lower().endswith("." + fmt):
        text = text[: -len(fmt) - 1]
    text = text.strip(" .")
    text = _truncate_utf8(text, _MAX_STEM_BYTES).rstrip(" .")
    if not text:
        text = "export"
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return f"{text}.{fmt}"


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")
