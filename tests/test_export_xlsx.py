"""XLSX export: files written by our streaming writer, read back by openpyxl and LibreOffice."""

from __future__ import annotations

import datetime as dt
import uuid
import zipfile
import zoneinfo
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from conftest import libreoffice
from dbcron.cells import parse_format
from dbcron.jobs.export import ColumnStyle, ExportOptions, open_writer
from dbcron.jobs.export.xlsx import (
    MAX_CELL_CHARS,
    TRUNCATED_MARKER,
    XlsxWriter,
    column_letter,
    sheet_title,
)

KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")
OPTIONS = ExportOptions(
    "Sales by region: 2026/11", "Slot 2026-11-20 09:00 (Asia/Kolkata) & more", KOLKATA
)
COLUMNS = ["id", "name", "amount", "price", "day", "at", "ok", "note"]


def _row(i: int) -> tuple[object, ...]:
    return (
        i,
        f"name {i}",
        i * 1.5,
        Decimal(f"{i}.25"),
        dt.date(2026, 1, 1) + dt.timedelta(days=i),
        dt.datetime(2026, 1, 1, 12, 30, 15) + dt.timedelta(hours=i),
        i % 2 == 0,
        None if i % 3 else "three",
    )


def _write(path: Path, rows: list[tuple[object, ...]], batch: int = 70) -> Path:
    writer = open_writer("xlsx", path, COLUMNS, OPTIONS)
    for start in range(0, len(rows), batch):
        writer.write(rows[start : start + batch])
    assert writer.rows_written == len(rows)
    return writer.close()


def test_reads_back_in_openpyxl_with_types_header_panes_filter(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(1, 501)]
    path = _write(tmp_path / "sales.xlsx", rows)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Sales by region 2026 11"]
    ws = wb.active
    assert ws is not None
    assert [c.value for c in ws[1]] == COLUMNS
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:H501"
    assert ws.max_row == 501
    for excel_row, expected in ((2, rows[0]), (501, rows[-1])):
        got = [c.value for c in ws[excel_row]]
        assert got[:4] == [expected[0], expected[1], expected[2], float(expected[3])]  # type: ignore[arg-type]
        assert got[4] == dt.datetime.combine(expected[4], dt.time())  # type: ignore[arg-type]
        assert got[5] == expected[5]
        assert got[6:] == list(expected[6:])
    assert [c.data_type for c in ws[2]] == ["n", "s", "n", "n", "d", "d", "b", "n"]
    assert ws["E2"].number_format == "yyyy-mm-dd"
    assert ws["F2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws.column_dimensions["B"].width > ws.column_dimensions["A"].width
    assert wb.properties.title == OPTIONS.title


def test_database_text_is_never_a_formula_or_hyperlink(tmp_path: Path) -> None:
    texts = ['=HYPERLINK("http://evil.example","click")', "=1+1", "+SUM(A1:A2)", "@cmd"]
    writer = open_writer("xlsx", tmp_path / "f.xlsx", ["t"], OPTIONS)
    writer.write([(t,) for t in texts])
    ws = openpyxl.load_workbook(writer.close()).active
    assert ws is not None
    cells = [ws.cell(row=r, column=1) for r in range(2, 6)]
    assert [c.value for c in cells] == texts
    assert {c.data_type for c in cells} == {"s"}
    assert all(c.hyperlink is None for c in cells)


def test_awkward_values(tmp_path: Path) -> None:
    huge = "x" * (MAX_CELL_CHARS + 10)
    ident = uuid.UUID(int=42)
    rows: list[tuple[object, ...]] = [
        ("a\x00b\x07c<&>\"'", dt.datetime(2026, 11, 20, 3, 30, tzinfo=dt.UTC), 2**60),
        (huge, dt.datetime(1850, 1, 1), float("nan")),
        (ident, dt.time(9, 30), b"\x01\x02"),
        ("  padded  ", None, Decimal("Infinity")),
    ]
    writer = open_writer("xlsx", tmp_path / "odd.xlsx", ["a", "b", "c"], OPTIONS)
    writer.write(rows)
    ws = openpyxl.load_workbook(writer.close()).active
    assert ws is not None
    values = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    # Control characters go, markup characters stay literal; aware times become Kolkata time.
    assert values[0] == ["abc<&>\"'", dt.datetime(2026, 11, 20, 9, 0), str(2**60)]
    assert values[1][0] == huge[: MAX_CELL_CHARS - len(TRUNCATED_MARKER)] + TRUNCATED_MARKER
    assert len(values[1][0]) == MAX_CELL_CHARS
    assert values[1][1:] == ["1850-01-01 00:00:00", "nan"]
    assert values[2] == [str(ident), dt.time(9, 30), "0102"]
    assert values[3] == ["  padded  ", None, "Infinity"]


def test_mixed_type_column_keeps_each_type(tmp_path: Path) -> None:
    writer = open_writer("xlsx", tmp_path / "m.xlsx", ["v"], OPTIONS)
    writer.write([(1,), ("two",), (3.5,), (True,), (None,), (dt.date(2026, 1, 2),)])
    ws = openpyxl.load_workbook(writer.close()).active
    assert ws is not None
    assert [ws.cell(row=r, column=1).value for r in range(2, 8)] == [
        1,
        "two",
        3.5,
        True,
        None,
        dt.datetime(2026, 1, 2),
    ]


def test_rows_past_the_sheet_limit_continue_on_a_new_sheet(tmp_path: Path) -> None:
    path = tmp_path / "big.xlsx"
    writer = XlsxWriter(path, COLUMNS, OPTIONS, max_data_rows=300)
    rows = [_row(i) for i in range(1, 701)]
    for start in range(0, 700, 250):
        writer.write(rows[start : start + 250])
    wb = openpyxl.load_workbook(writer.close())
    assert wb.sheetnames == [
        "Sales by region 2026 11",
        "Sales by region 2026 11 (2)",
        "Sales by region 2026 11 (3)",
    ]
    sizes = [wb[name].max_row for name in wb.sheetnames]
    assert sizes == [301, 301, 101]
    for ws in wb.worksheets:
        assert [c.value for c in ws[1]] == COLUMNS
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref == f"A1:H{ws.max_row}"
    assert wb.worksheets[1]["A2"].value == 301
    assert wb.worksheets[2].cell(row=101, column=1).value == 700


def test_empty_result_has_the_header_only(tmp_path: Path) -> None:
    writer = open_writer("xlsx", tmp_path / "e.xlsx", COLUMNS, OPTIONS)
    ws = openpyxl.load_workbook(writer.close()).active
    assert ws is not None
    assert ws.max_row == 1
    assert [c.value for c in ws[1]] == COLUMNS
    assert ws.auto_filter.ref == "A1:H1"


def test_package_is_minimal_and_uses_inline_strings(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.xlsx", [_row(1)])
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        sheet = zf.read("xl/worksheets/sheet1.xml").decode()
    assert "xl/sharedStrings.xml" not in names
    assert {"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/styles.xml"} <= names
    assert 't="inlineStr"' in sheet
    assert "<f>" not in sheet


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = open_writer("xlsx", tmp_path / "a.xlsx", COLUMNS, OPTIONS)
    writer.write([_row(i) for i in range(300)])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("index", "letter"), [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA")]
)
def test_column_letter(index: int, letter: str) -> None:
    assert column_letter(index) == letter


def test_sheet_title_is_legal() -> None:
    assert sheet_title("[Q3]: a/b?*", 1) == "Q3 a b"
    assert sheet_title("x" * 40, 12) == "x" * 26 + " (12)"
    assert sheet_title("''", 1) == "Report"


def test_libreoffice_converts_our_file(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(1, 201)]
    rows[0] = (1, "Привет, Ελληνικά", *rows[0][2:])
    path = _write(tmp_path / "lo.xlsx", rows)
    out = libreoffice(tmp_path, path, "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76")
    lines = (out / "lo.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert lines[1].startswith('1,"Привет, Ελληνικά",1.5,1.25,2026-01-02,')
    assert len(lines) == 201
    assert lines[-1].startswith("200,name 200,300,200.25,")


@pytest.mark.parametrize("mixed", [False, True])
def test_decimals_past_15_digits_are_text_not_rounded(tmp_path: Path, mixed: bool) -> None:
    long = Decimal("12345678901234567890.5")
    short = Decimal("1234.50")
    rows: list[tuple[object, ...]] = [(long,), (short,)] + ([("x",)] if mixed else [])
    writer = open_writer("xlsx", tmp_path / "d.xlsx", ["v"], OPTIONS)
    writer.write(rows)
    ws = openpyxl.load_workbook(writer.close()).active
    assert ws is not None
    assert ws.cell(row=2, column=1).value == "12345678901234567890.5"
    assert ws.cell(row=3, column=1).value == 1234.5


@pytest.mark.parametrize("rows", [1, 300])  # held as the sizing sample, and streamed past it
def test_column_formats_are_number_formats_and_labels_head_the_columns(
    tmp_path: Path, rows: int
) -> None:
    options = ExportOptions(
        "Sales",
        "",
        KOLKATA,
        columns={
            "amount": ColumnStyle(format=parse_format("#,##0.00"), label="Amount"),
            "sold_on": ColumnStyle(format=parse_format("dd.mm.yyyy")),
            "share": ColumnStyle(format=parse_format("0.0%")),
        },
    )
    columns = ["region", "amount", "sold_on", "share"]
    writer = open_writer("xlsx", tmp_path / "f.xlsx", columns, options)
    writer.write(
        [("North", 1792.3900000000008, dt.date(2026, 11, 19), Decimal("0.125"))] * rows
        + [("South", "n/a", None, 1)]
    )
    sheet = openpyxl.load_workbook(writer.close()).active
    assert sheet is not None
    assert [c.value for c in sheet[1]] == ["region", "Amount", "sold_on", "share"]
    amount, sold_on, share = sheet.cell(2, 2), sheet.cell(2, 3), sheet.cell(2, 4)
    assert (amount.value, amount.number_format) == (1792.3900000000008, "#,##0.00")
    assert (sold_on.value, sold_on.number_format) == (dt.datetime(2026, 11, 19), "dd.mm.yyyy")
    assert (share.value, share.number_format) == (0.125, "0.0%")
    last = rows + 2
    assert [sheet.cell(last, c).value for c in range(1, 5)] == ["South", "n/a", None, 1]
    assert sheet.cell(last, 4).number_format == "0.0%"
