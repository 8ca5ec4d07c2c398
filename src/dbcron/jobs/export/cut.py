"""Cutting an exported file by rows into smaller files, each one valid on its own.

For a mail split into parts (``email.too_large: split``): a CSV or XLSX file
over the attachment limit becomes ``NAME-part1.csv``, ``NAME-part2.csv``, ...
of at most ``budget`` bytes each, every one with the header, so each part
opens alone and the parts together hold every row once, in order. Both cuts
stream: memory holds one record (CSV) or one batch of rows (XLSX), never the
rows of the file (see ``cut_xlsx`` for what openpyxl holds while opening one).

A PDF cannot be cut without a PDF library dbcron does not ship (pages would
have to be copied out of reportlab's output): ``cut`` raises ``CannotCut``,
and a PDF over the limit is left out of the mail with the usual note.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dbcron.jobs.export import ExportOptions
from dbcron.jobs.export._files import AtomicFile

# The estimate of rows per XLSX piece aims this far below the budget, since rows
# compress unevenly; a piece that still comes out over it makes the cut start again
# with fewer rows.
_XLSX_AIM = 0.85
_XLSX_BATCH = 1000


class CannotCut(Exception):
    """The file cannot be cut to fit: one row alone is over the budget."""


def piece_path(path: Path, number: int) -> Path:
    """sales.csv -> sales-part2.csv: the name a recipient sees."""
    return path.with_name(f"{path.stem}-part{number}{path.suffix}")


def cut(path: Path, budget: int, columns: Sequence[str], options: ExportOptions,
        rows: int) -> list[Path]:
    """Cut ``path`` (of ``rows`` data rows) into pieces of at most ``budget`` bytes each."""
    if path.suffix.lower() == ".csv":
        return cut_csv(path, budget, options.csv_encoding)
    if path.suffix.lower() == ".xlsx":
        return cut_xlsx(path, budget, columns, options, rows)
    raise CannotCut(f"{path.name}: only CSV and XLSX files can be cut by rows")


def cut_csv(path: Path, budget: int, encoding: str) -> list[Path]:
    """Copy the header and then whole records into pieces, byte for byte.

    The text is only decoded to find where records end (a line break inside a
    quoted field is not one); what is written is the same text in the same
    encoding, with the file's byte-order mark at the start of every piece.
    """
    bom, codec = _codec(path, encoding)
    pieces: list[Path] = []
    out: AtomicFile | None = None
    try:
        with path.open("rb") as raw:
            raw.seek(len(bom))
            text = io.TextIOWrapper(raw, encoding=codec, newline="")
            records = _records(text)
            header = bom + next(records, "").encode(codec)
            size = 0
            for record in records:
                data = record.encode(codec)
                if out is not None and size + len(data) > budget:
                    pieces.append(out.commit())
                    out = None
                if out is None:
                    if len(header) + len(data) > budget:
                        raise CannotCut(f"{path.name}: a row with the header is over "
                                        f"{budget:,} bytes")
                    out = AtomicFile(piece_path(path, len(pieces) + 1))
                    out.file.write(header)
                    size = len(header)
                out.file.write(data)
                size += len(data)
        if out is None:
            raise CannotCut(f"{path.name}: the header alone is over {budget:,} bytes")
        pieces.append(out.commit())
        out = None
    except BaseException:
        if out is not None:
            out.abort()
        remove_files(pieces)
        raise
    return pieces


def _codec(path: Path, encoding: str) -> tuple[bytes, str]:
    """(the byte-order mark the file starts with, the codec of the text after it)."""
    if encoding == "utf-8-sig":
        return codecs.BOM_UTF8, "utf-8"
    if encoding == "utf-16":
        with path.open("rb") as raw:
            bom = raw.read(2)
        return bom, "utf-16-be" if bom == codecs.BOM_UTF16_BE else "utf-16-le"
    return b"", encoding


def _records(lines: Iterable[str]) -> Iterator[str]:
    """Whole CSV records, line breaks included.

    In RFC 4180 CSV a quote only appears in a quoted field, doubled when it is
    text, so a line ends a record exactly when the record so far holds an even
    number of quotes.
    """
    pending: list[str] = []
    quotes = 0
    for line in lines:
        pending.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            yield "".join(pending)
            pending, quotes = [], 0
    if pending:
        yield "".join(pending)


def cut_xlsx(path: Path, budget: int, columns: Sequence[str], options: ExportOptions,
             rows: int) -> list[Path]:
    """Re-read the workbook row by row (openpyxl, read-only) and write pieces with our
    own writer and the task's options: header, column formats and frozen pane stay.

    An XLSX is compressed, so the rows a piece can hold are estimated from the
    whole file's size; when a piece still comes out over the budget, the cut
    starts again with proportionally fewer rows. Memory: openpyxl scans each
    sheet once at load to size it (our streamed sheets carry no <dimension>),
    about 80 bytes a row, freed once it is open (docs/benchmarks.md).
    """
    overhead = _empty_size(path, columns, options)
    per_row = max(path.stat().st_size - overhead, 1) / max(rows, 1)
    per_piece = max(1, math.floor((budget * _XLSX_AIM - overhead) / per_row))
    while True:
        pieces = _xlsx_pieces(path, columns, options, per_piece)
        largest = max(p.stat().st_size for p in pieces)
        if largest <= budget:
            return pieces
        remove_files(pieces)
        if per_piece == 1:
            raise CannotCut(f"{path.name}: one row alone is over {budget:,} bytes")
        per_piece = max(1, math.floor(per_piece * budget * _XLSX_AIM / largest))


def _empty_size(path: Path, columns: Sequence[str], options: ExportOptions) -> int:
    """The size of a workbook with the header and no rows: every piece's fixed cost."""
    from dbcron.jobs.export.xlsx import XlsxWriter

    probe = path.with_name(f".{path.stem}-empty.xlsx")
    try:
        return XlsxWriter(probe, columns, options).close().stat().st_size
    finally:
        with contextlib.suppress(FileNotFoundError):
            probe.unlink()


def _xlsx_pieces(path: Path, columns: Sequence[str], options: ExportOptions,
                 per_piece: int) -> list[Path]:
    from dbcron.jobs.export.xlsx import XlsxWriter

    pieces: list[Path] = []
    writer: XlsxWriter | None = None
    try:
        for batch in _xlsx_rows(path, len(columns)):
            start = 0
            while start < len(batch):
                if writer is None:
                    writer = XlsxWriter(piece_path(path, len(pieces) + 1), columns, options)
                room = per_piece - writer.rows_written
                writer.write(batch[start:start + room])
                start += room
                if writer.rows_written >= per_piece:
                    pieces.append(writer.close())
                    writer = None
        if writer is not None or not pieces:
            writer = writer or XlsxWriter(piece_path(path, 1), columns, options)
            pieces.append(writer.close())
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        remove_files(pieces)
        raise
    return pieces


def _xlsx_rows(path: Path, ncols: int) -> Iterator[list[tuple[Any, ...]]]:
    """The data rows of every sheet (each sheet repeats the header), in batches."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        batch: list[tuple[Any, ...]] = []
        for sheet in book.worksheets:
            for row in sheet.iter_rows(min_row=2, max_col=ncols):
                batch.append(tuple(_value(cell) for cell in row))
                if len(batch) >= _XLSX_BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch
    finally:
        book.close()


def _value(cell: Any) -> Any:
    # openpyxl reads every date as a datetime; our writer's plain date style marks a date.
    value = cell.value
    if isinstance(value, dt.datetime) and cell.number_format == "yyyy-mm-dd":
        return value.date()
    return value


def remove_files(paths: Sequence[Path]) -> None:
    """Delete pieces no mail will carry."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
