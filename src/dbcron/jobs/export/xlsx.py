"""XLSX export: a streaming writer of the sheet XML, built for speed and flat memory.

openpyxl's write-only mode costs ~15x a csv export; this writer emits only the
minimal package parts ([Content_Types].xml, _rels, workbook, styles, sheets,
core properties) and writes the sheet XML column by column with list
comprehensions. Zip compression runs in a thread (zlib releases the GIL), so on
two cores it overlaps with building the XML.

What the sheet guarantees:
- a bold, frozen header row with an autofilter, repeated on every sheet;
- native types: numbers, dates, datetimes, times and booleans with number
  formats; aware datetimes converted to the report's timezone and written naive;
- a column's ``format`` from ``export.columns`` is a real number format of the
  workbook (the cell stays a number Excel can sum), its ``label`` the header;
- text as inline strings, which Excel never evaluates, so database text can't
  become a formula or a hyperlink; XML-illegal control characters are dropped and
  text over Excel's 32,767-character cell limit is cut with a marker;
- values Excel cannot hold exactly (integers past 15 digits, NaN, infinities,
  dates before 1900-03-01, bytes, unknown types) are written as text;
- past 1,048,575 data rows (or ~1.9 GB of sheet XML, the non-ZIP64 entry limit)
  rows continue on a new sheet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import queue
import re
import threading
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from dbcron.jobs.export import ExportOptions
from dbcron.jobs.export._files import AtomicFile, Sampler

MAX_DATA_ROWS = 1_048_575  # Excel's 1,048,576 rows less the header
MAX_CELL_CHARS = 32_767
TRUNCATED_MARKER = " …[truncated]"
_MAX_SHEET_BYTES = 1_900_000_000  # below zipfile's 2 GiB limit for a non-ZIP64 entry
_SAMPLE_ROWS = 200  # rows buffered to size the columns before <cols> is written
_EXACT_INT = 10**15  # Excel keeps 15 significant digits; larger ids stay exact as text
_EXCEL_EPOCH = dt.date(1899, 12, 30).toordinal()
_FIRST_SERIAL_DATE = dt.date(1900, 3, 1)  # before it Excel's 1900 leap-year bug shifts days

# Styles (cellXfs indexes in styles.xml; task formats follow from _FIRST_TASK_XF).
_S_HEADER, _S_DATE, _S_DATETIME, _S_TIME = 1, 2, 3, 4

_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# Same set without NUL, which serves as the separator of a joined text column.
_ILLEGAL_XML_BUT_NUL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SHEET_NAME_CHARS = re.compile(r"[\[\]:*?/\\\x00-\x1f]")

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_BUILTIN_FORMATS = ("yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss", "hh:mm:ss")  # numFmtId 164, 165, 166
_FIRST_TASK_FORMAT = 167  # numFmtIds of the task's own formats
_FIRST_TASK_XF = 5  # cellXfs index of the first task format


def _styles_xml(codes: Sequence[str]) -> str:
    """styles.xml: the fixed styles, then one number format and cell style per task code."""
    formats = "".join(
        f'<numFmt numFmtId="{164 + i}" formatCode="{_xml_attr(code)}"/>'
        for i, code in enumerate([*_BUILTIN_FORMATS, *codes])
    )
    xfs = "".join(
        f'<xf numFmtId="{_FIRST_TASK_FORMAT + i}" fontId="0" fillId="0" borderId="0" xfId="0"'
        ' applyNumberFormat="1"/>'
        for i in range(len(codes))
    )
    return (
        _STYLES_HEAD
        + f'<numFmts count="{len(_BUILTIN_FORMATS) + len(codes)}">{formats}</numFmts>'
        + _STYLES_BODY.replace('<cellXfs count="5">', f'<cellXfs count="{5 + len(codes)}">')
        .replace("</cellXfs>", xfs + "</cellXfs>")
    )


_STYLES_HEAD = _XML_DECL + f'<styleSheet xmlns="{_NS}">'
_STYLES_BODY = (
    '<fonts count="2">'
    '<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    "</fonts>"
    '<fills count="3"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFDDE4EE"/></patternFill></fill>'
    "</fills>"
    '<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>'
    '<border><left/><right/><top/><bottom style="thin"><color rgb="FF7F7F7F"/></bottom>'
    "<diagonal/></border></borders>"
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1"'
    ' applyBorder="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def column_letter(index: int) -> str:
    """Excel's column name of a 0-based index: 0 -> A, 26 -> AA."""
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = chr(65 + rem) + name
    return name


def _text_cell(ref: str, text: str) -> str:
    """A cell holding ``text`` exactly: an inline string is never a formula."""
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - len(TRUNCATED_MARKER)] + TRUNCATED_MARKER
    text = _ILLEGAL_XML.sub("", text)
    if not text:
        return ""
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(text)}</t></is></c>'


def _serial_datetime(value: dt.datetime) -> float:
    seconds = value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
    return value.toordinal() - _EXCEL_EPOCH + seconds / 86400


def _any_cell(ref: str, value: object, tz: dt.tzinfo) -> str:
    """The cell of one value of any type: the slow path for mixed or rare columns."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _text_cell(ref, value)
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int):
        if -_EXACT_INT < value < _EXACT_INT:
            return f'<c r="{ref}"><v>{value}</v></c>'
        return _text_cell(ref, str(value))
    if isinstance(value, Decimal):
        if _exact_decimal(value):
            return f'<c r="{ref}"><v>{value}</v></c>'
        return _text_cell(ref, str(value))
    if isinstance(value, float):
        if math.isfinite(value):
            return f'<c r="{ref}"><v>{value}</v></c>'
        return _text_cell(ref, str(value))
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(tz).replace(tzinfo=None)
        if value.date() < _FIRST_SERIAL_DATE:
            return _text_cell(ref, value.isoformat(sep=" "))
        return f'<c r="{ref}" s="{_S_DATETIME}"><v>{_serial_datetime(value)}</v></c>'
    if isinstance(value, dt.date):
        if value < _FIRST_SERIAL_DATE:
            return _text_cell(ref, value.isoformat())
        return f'<c r="{ref}" s="{_S_DATE}"><v>{value.toordinal() - _EXCEL_EPOCH}</v></c>'
    if isinstance(value, dt.time):
        seconds = value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
        return f'<c r="{ref}" s="{_S_TIME}"><v>{seconds / 86400}</v></c>'
    if isinstance(value, bytes | bytearray | memoryview):
        return _text_cell(ref, bytes(value).hex())
    return _text_cell(ref, str(value))


def _column_cells(
    letter: str, rownums: list[str], column: Sequence[Any], tz: dt.tzinfo
) -> list[str]:
    """The cells of one column of a batch.

    A database column holds one type (plus NULLs), so a batch usually takes one of
    the fast comprehensions below; anything else goes value by value.
    """
    types = set(map(type, column))
    types.discard(type(None))
    L = letter
    pairs = zip(rownums, column, strict=True)
    if types == {str}:
        return _text_cells(L, rownums, column)
    if types == {dt.datetime}:
        column = [
            v if v is None or v.tzinfo is None else v.astimezone(tz).replace(tzinfo=None)
            for v in column
        ]
        pairs = zip(rownums, column, strict=True)
    values = [v for v in column if v is not None]
    if not values:
        return [""] * len(column)
    if types == {int} and min(values) > -_EXACT_INT and max(values) < _EXACT_INT:
        return [f'<c r="{L}{n}"><v>{v}</v></c>' if v is not None else "" for n, v in pairs]
    if types == {float} and all(map(math.isfinite, values)):
        return [f'<c r="{L}{n}"><v>{v!r}</v></c>' if v is not None else "" for n, v in pairs]
    if types == {Decimal} and all(map(_exact_decimal, values)):
        return [f'<c r="{L}{n}"><v>{v}</v></c>' if v is not None else "" for n, v in pairs]
    if types == {bool}:
        return [f'<c r="{L}{n}" t="b"><v>{v:d}</v></c>' if v is not None else "" for n, v in pairs]
    if types == {dt.date} and min(values) >= _FIRST_SERIAL_DATE:
        e = _EXCEL_EPOCH
        return [
            f'<c r="{L}{n}" s="{_S_DATE}"><v>{v.toordinal() - e}</v></c>' if v is not None else ""
            for n, v in pairs
        ]
    if types == {dt.datetime} and min(values).date() >= _FIRST_SERIAL_DATE:
        s = _serial_datetime
        return [
            f'<c r="{L}{n}" s="{_S_DATETIME}"><v>{s(v)}</v></c>' if v is not None else ""
            for n, v in pairs
        ]
    return [_any_cell(f"{L}{n}", v, tz) for n, v in pairs]


def _styled_cells(
    letter: str, rownums: list[str], column: Sequence[Any], style: int, tz: dt.tzinfo
) -> list[str]:
    """Cells of a column with a task format: numbers, dates and times take its style."""
    cells = []
    for n, v in zip(rownums, column, strict=True):
        ref = f"{letter}{n}"
        if isinstance(v, dt.datetime) and v.tzinfo is not None:
            v = v.astimezone(tz).replace(tzinfo=None)
        if isinstance(v, bool) or v is None:
            cells.append(_any_cell(ref, v, tz))
        elif (
            (isinstance(v, int) and -_EXACT_INT < v < _EXACT_INT)
            or (isinstance(v, float) and math.isfinite(v))
            or (isinstance(v, Decimal) and _exact_decimal(v))
        ):
            cells.append(f'<c r="{ref}" s="{style}"><v>{v}</v></c>')
        elif isinstance(v, dt.datetime) and v.date() >= _FIRST_SERIAL_DATE:
            cells.append(f'<c r="{ref}" s="{style}"><v>{_serial_datetime(v)}</v></c>')
        elif isinstance(v, dt.date) and v >= _FIRST_SERIAL_DATE:
            cells.append(f'<c r="{ref}" s="{style}"><v>{v.toordinal() - _EXCEL_EPOCH}</v></c>')
        else:
            cells.append(_any_cell(ref, v, tz))
    return cells


def _text_cells(letter: str, rownums: list[str], column: Sequence[str | None]) -> list[str]:
    """Cells of a text column, escaped and cleaned in bulk.

    Escaping a whole column joined on NUL runs at C speed; NUL is illegal in XML so
    it cannot be a value's own character once the column passed the check below.
    """
    texts = [v if v is not None else "" for v in column]
    joined = "\x00".join(texts)
    if joined.count("\x00") != len(texts) - 1 or max(map(len, texts)) > MAX_CELL_CHARS:
        return [_text_cell(f"{letter}{n}", t) for n, t in zip(rownums, texts, strict=True)]
    joined = _ILLEGAL_XML_BUT_NUL.sub("", escape(joined))
    L = letter
    return [
        f'<c r="{L}{n}" t="inlineStr"><is><t xml:space="preserve">{t}</t></is></c>' if t else ""
        for n, t in zip(rownums, joined.split("\x00"), strict=True)
    ]


def _display_width(value: object) -> int:
    """Characters a value takes on screen, to size its column."""
    if value is None:
        return 0
    if isinstance(value, dt.datetime):
        return 19
    if isinstance(value, dt.date):
        return 10
    if isinstance(value, float):
        return min(len(repr(value)), 12)
    if isinstance(value, str):
        return max(map(len, value.splitlines()), default=0)
    return len(str(value))


def sheet_title(title: str, number: int) -> str:
    """A legal, at most 31-character sheet name; sheets after the first get "(n)"."""
    name = " ".join(_SHEET_NAME_CHARS.sub(" ", title).split()).strip("'") or "Report"
    suffix = f" ({number})" if number > 1 else ""
    return name[: 31 - len(suffix)].rstrip() + suffix


class _ZipSink:
    """Writes zip entries from a background thread so compression overlaps XML building.

    The queue is bounded, so memory stays flat when the disk or zlib is slower than
    the producer; an error in the thread is raised at the next ``put``.
    """

    def __init__(self, target: AtomicFile) -> None:
        self._zip = zipfile.ZipFile(target.file, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xlsx-zip", daemon=True)
        self._thread.start()

    def open_entry(self, name: str) -> None:
        self._put((name, b""))

    def write(self, data: bytes) -> None:
        self._put(("", data))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._zip.close()

    def abort(self) -> None:
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()
        with contextlib.suppress(Exception):
            self._zip.close()  # the file is deleted next; this only stops __del__ retrying

    def _put(self, item: tuple[str, bytes]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def _run(self) -> None:
        entry = None
        try:
            while (item := self._queue.get()) is not None:
                if self._error is not None:
                    continue  # drain so the producer never blocks on a dead consumer
                name, data = item
                if name:
                    if entry is not None:
                        entry.close()
                    entry = self._zip.open(name, "w")
                elif entry is not None:
                    entry.write(data)
        except BaseException as exc:  # handed to the producer thread
            self._error = exc
            while self._queue.get() is not None:
                pass
        finally:
            if entry is not None:
                with contextlib.suppress(Exception):
                    entry.close()



def _exact_decimal(value: Decimal) -> bool:
    """Excel keeps 15 significant digits: a longer NUMERIC (an id, a bigint sum) is
    written as text rather than silently rounded."""
    return value.is_finite() and len(value.as_tuple().digits) <= 15

class XlsxWriter:
    def __init__(
        self,
        path: Path,
        columns: Sequence[str],
        options: ExportOptions,
        *,
        max_data_rows: int = MAX_DATA_ROWS,
    ) -> None:
        self._sampler = Sampler(len(columns), _SAMPLE_ROWS)
        self._columns = options.labels(columns)
        formats = [s.format for s in options.styles(columns)]
        self._codes = list(
            dict.fromkeys(f.code for f in formats if f and f.code.lower() != "general")
        )
        self._formats = formats
        # Per column: the cellXfs index of its task format, or None for the fast paths.
        self._xf = [
            _FIRST_TASK_XF + self._codes.index(f.code) if f and f.code in self._codes else None
            for f in formats
        ]
        self._letters = [column_letter(i) for i in range(len(columns))]
        self._options = options
        self._max_data_rows = max_data_rows
        self._file = AtomicFile(path)
        self._sink = _ZipSink(self._file)
        self._widths: list[float] = []
        self._sheets: list[str] = []
        self._filter_refs: list[str] = []  # per finished sheet, for workbook.xml
        self._sheet_rows = 0  # data rows on the current sheet
        self._sheet_bytes = 0

    @property
    def rows_written(self) -> int:
        return self._sampler.rows_written

    def write(self, rows: Sequence[Sequence[object]]) -> None:
        sample, rows = self._sampler.feed(rows)
        if sample is not None:
            self._size_columns(sample)
        start = 0
        while start < len(rows):
            if not self._sheets or self._sheet_full():
                self._start_sheet()
            room = self._max_data_rows - self._sheet_rows
            self._write_rows(rows[start : start + room])
            start += room

    def close(self) -> Path:
        rows = self._sampler.rest()
        if rows is not None:
            self._size_columns(rows)
            self._start_sheet()
            if rows:
                self._write_rows(rows)
        self._end_sheet()
        self._write_package()
        self._sink.close()
        return self._file.commit()

    def abort(self) -> None:
        self._sink.abort()
        self._file.abort()

    def _sheet_full(self) -> bool:
        return self._sheet_rows >= self._max_data_rows or self._sheet_bytes >= _MAX_SHEET_BYTES

    def _size_columns(self, sample: Sequence[Sequence[object]]) -> None:
        widths = [len(c) * 1.1 + 3 for c in self._columns]  # bold text and the filter button
        for row in sample:
            for i, value in enumerate(row):
                fmt = self._formats[i]
                shown = fmt.render(value) if fmt else None
                width = len(shown) if shown is not None else _display_width(value)
                widths[i] = max(widths[i], width + 1.5)
        self._widths = [min(max(w, 6.0), 60.0) for w in widths]

    def _emit(self, text: str) -> None:
        data = text.encode("utf-8", errors="replace")
        self._sheet_bytes += len(data)
        self._sink.write(data)

    def _start_sheet(self) -> None:
        if self._sheets:
            self._end_sheet()
        self._sheets.append(sheet_title(self._options.title, len(self._sheets) + 1))
        self._sink.open_entry(f"xl/worksheets/sheet{len(self._sheets)}.xml")
        self._sheet_rows = 0
        self._sheet_bytes = 0
        cols = "".join(
            f'<col min="{i}" max="{i}" width="{w:.1f}" customWidth="1"/>'
            for i, w in enumerate(self._widths, start=1)
        )
        header = "".join(
            _text_cell(f"{letter}1", name).replace("<c ", f'<c s="{_S_HEADER}" ', 1)
            for letter, name in zip(self._letters, self._columns, strict=True)
        )
        selected = ' tabSelected="1"' if len(self._sheets) == 1 else ""
        self._emit(
            _XML_DECL + f'<worksheet xmlns="{_NS}" xmlns:r="{_NS_R}">'
            '<sheetPr filterMode="false"><pageSetUpPr fitToPage="1"/></sheetPr>'
            f'<sheetViews><sheetView workbookViewId="0"{selected}>'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
            f'<sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols>'
            f'<sheetData><row r="1">{header}</row>'
        )

    def _write_rows(self, rows: Sequence[Sequence[object]]) -> None:
        first = self._sheet_rows + 2
        rownums = [str(n) for n in range(first, first + len(rows))]
        tz = self._options.tz
        cells = [
            _column_cells(letter, rownums, column, tz)
            if xf is None
            else _styled_cells(letter, rownums, column, xf, tz)
            for letter, column, xf in zip(
                self._letters, zip(*rows, strict=True), self._xf, strict=True
            )
        ]
        self._emit(
            "".join(
                [
                    f'<row r="{n}">{"".join(row)}</row>'
                    for n, row in zip(rownums, zip(*cells, strict=True), strict=True)
                ]
            )
        )
        self._sheet_rows += len(rows)

    def _filter_ref(self) -> str:
        return f"$A$1:${self._letters[-1]}${self._sheet_rows + 1}"

    def _end_sheet(self) -> None:
        title = _header_footer_text(self._options.title)
        subtitle = _header_footer_text(self._options.subtitle)
        self._emit(
            f'</sheetData><autoFilter ref="{self._filter_ref().replace("$", "")}"/>'
            '<pageMargins left="0.5" right="0.5" top="0.75" bottom="0.75" header="0.3"'
            ' footer="0.3"/>'
            '<pageSetup orientation="landscape" fitToWidth="1" fitToHeight="0"/>'
            f"<headerFooter><oddHeader>&amp;L&amp;B{title}&amp;R{subtitle}</oddHeader>"
            "<oddFooter>&amp;RPage &amp;P of &amp;N</oddFooter></headerFooter>"
            "</worksheet>"
        )
        self._filter_refs.append(self._filter_ref())

    def _write_package(self) -> None:
        sheets = list(zip(self._sheets, self._filter_refs, strict=True))
        n = len(sheets)
        parts = {
            "[Content_Types].xml": _XML_DECL
            + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/>'
            + "".join(
                f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                for i in range(1, n + 1)
            )
            + '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-'
            'package.core-properties+xml"/></Types>',
            "_rels/.rels": _XML_DECL + f'<Relationships xmlns="{_NS_PKG}">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="xl/workbook.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
            'relationships/metadata/core-properties" Target="docProps/core.xml"/>'
            "</Relationships>",
            "docProps/core.xml": _XML_DECL
            + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
            'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<dc:title>{_xml_text(self._options.title)}</dc:title>"
            f"<dc:subject>{_xml_text(self._options.subtitle)}</dc:subject>"
            "<dc:creator>dbcron</dc:creator></cp:coreProperties>",
            "xl/_rels/workbook.xml.rels": _XML_DECL
            + f'<Relationships xmlns="{_NS_PKG}">'
            + "".join(
                f'<Relationship Id="rId{i}" Type="{_NS_R}/worksheet"'
                f' Target="worksheets/sheet{i}.xml"/>'
                for i in range(1, n + 1)
            )
            + f'<Relationship Id="rId{n + 1}" Type="{_NS_R}/styles" Target="styles.xml"/>'
            "</Relationships>",
            "xl/workbook.xml": _XML_DECL + f'<workbook xmlns="{_NS}" xmlns:r="{_NS_R}">'
            "<bookViews><workbookView/></bookViews><sheets>"
            + "".join(
                f'<sheet name="{_xml_attr(name)}" sheetId="{i}" r:id="rId{i}"/>'
                for i, (name, _) in enumerate(sheets, start=1)
            )
            + "</sheets><definedNames>"
            + "".join(
                f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
                f"{_xml_text(_quote_sheet(name))}!{ref}</definedName>"
                f'<definedName name="_xlnm.Print_Titles" localSheetId="{i}">'
                f"{_xml_text(_quote_sheet(name))}!$1:$1</definedName>"
                for i, (name, ref) in enumerate(sheets)
            )
            + "</definedNames></workbook>",
            "xl/styles.xml": _styles_xml(self._codes),
        }
        for name, text in parts.items():
            self._sink.open_entry(name)
            self._sink.write(text.encode("utf-8"))


def _xml_text(text: str) -> str:
    return escape(_ILLEGAL_XML.sub("", text))


def _xml_attr(text: str) -> str:
    return escape(_ILLEGAL_XML.sub("", text), {'"': "&quot;"})


def _quote_sheet(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _header_footer_text(text: str) -> str:
    # "&" starts a header/footer code; "&&" prints one ampersand.
    return _xml_text(" ".join(text.split())[:120].replace("&", "&&"))
