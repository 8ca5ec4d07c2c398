"""CSV export: RFC 4180 output, value conventions, atomic file, safe names."""

from __future__ import annotations

import csv
import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import libreoffice
from dbcron.cells import parse_format
from dbcron.jobs.export import ColumnStyle, ExportOptions, open_writer, safe_filename

KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")
OPTIONS = ExportOptions("Sales", "Slot 2026-11-20 09:00 (Asia/Kolkata)", KOLKATA)


def test_rfc4180_output_and_value_conventions(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    writer = open_writer("csv", target, ["id", "text", "when", "day", "ok", "n", "raw"], OPTIONS)
    writer.write(
        [
            (
                1,
                'say "hi", then\nleave',
                dt.datetime(2026, 11, 20, 3, 30, tzinfo=dt.UTC),
                dt.date(2026, 11, 20),
                True,
                Decimal("12.50"),
                b"\x00\xff",
            ),
            (2, "Привет", dt.datetime(2026, 11, 20, 9, 0, 3), None, False, 0.1, None),
        ]
    )
    writer.write([])
    assert writer.close() == target
    assert writer.rows_written == 2

    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig") == (
        "id,text,when,day,ok,n,raw\r\n"
        '1,"say ""hi"", then\nleave",2026-11-20T09:00:00+05:30,2026-11-20,true,12.50,00ff\r\n'
        "2,Привет,2026-11-20T09:00:03,,false,0.1,\r\n"
    )
    with target.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert rows[1][1] == 'say "hi", then\nleave'


def test_unknown_types_are_written_as_their_text(tmp_path: Path) -> None:
    value = uuid.UUID(int=7)
    writer = open_writer("csv", tmp_path / "u.csv", ["u", "t"], OPTIONS)
    writer.write([(value, dt.time(9, 30))])
    text = writer.close().read_text(encoding="utf-8-sig")
    assert text.splitlines()[1] == f"{value},09:30:00"


def test_file_appears_only_on_close_and_abort_removes_it(tmp_path: Path) -> None:
    target = tmp_path / "r.csv"
    writer = open_writer("csv", target, ["a"], OPTIONS)
    writer.write([(1,)])
    assert not target.exists()
    assert (tmp_path / ".r.csv.part").exists()
    writer.abort()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_ragged_rows_are_refused(tmp_path: Path) -> None:
    writer = open_writer("csv", tmp_path / "r.csv", ["a", "b"], OPTIONS)
    with pytest.raises(ValueError, match="a row has 1 values but the export has 2 columns"):
        writer.write([(1, 2), (3,)])
    writer.abort()


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format 'ods': valid formats are"):
        open_writer("ods", tmp_path / "x.ods", ["a"], OPTIONS)


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("sales-2026-11-19", "xlsx", "sales-2026-11-19.xlsx"),
        ("sales.csv", "csv", "sales.csv"),
        ("../../etc/passwd", "csv", "_.._etc_passwd.csv"),
        ("..", "pdf", "export.pdf"),
        (".hidden", "pdf", "hidden.pdf"),
        ("a\x00b\r\nc\td", "csv", "a b c d.csv"),
        ('what?: "x" <y>|*', "pdf", "what__ _x_ _y___.pdf"),
        ("CON", "csv", "_CON.csv"),
        ("   ", "csv", "export.csv"),
    ],
)
def test_safe_filename(name: str, fmt: str, expected: str) -> None:
    assert safe_filename(name, fmt) == expected


def test_safe_filename_bounds_length_without_splitting_characters() -> None:
    name = safe_filename("я" * 300, "xlsx")
    assert name.endswith(".xlsx")
    assert len(name.encode("utf-8")) <= 205
    assert set(name[: -len(".xlsx")]) == {"я"}


def test_floats_have_no_noise_and_decimals_keep_their_scale(tmp_path: Path) -> None:
    writer = open_writer("csv", tmp_path / "n.csv", ["total", "price", "tiny"], OPTIONS)
    writer.write(
        [
            (sum([1792.39, 0.1, 0.2]) - 0.3, Decimal("12.50"), Decimal("1E-7")),
            (0.1 + 0.2, Decimal("100"), 1e-7),
            (230.98000000000002, Decimal("0.000"), None),
        ]
    )
    text = writer.close().read_text(encoding="utf-8-sig")
    assert text.splitlines() == [
        "total,price,tiny",
        "1792.39,12.50,0.0000001",
        "0.3,100,1e-07",
        "230.98,0.000,",
    ]


def test_a_column_format_and_label_apply_where_given(tmp_path: Path) -> None:
    options = ExportOptions(
        "Sales",
        "",
        KOLKATA,
        columns={
            "amount": ColumnStyle(format=parse_format("#,##0.00"), label="Amount"),
            "sold_on": ColumnStyle(format=parse_format("dd.mm.yyyy")),
        },
    )
    writer = open_writer("csv", tmp_path / "f.csv", ["region", "amount", "sold_on"], options)
    writer.write(
        [
            ("North", 1792.3900000000008, dt.date(2026, 11, 19)),
            ("South", Decimal("1234567.5"), None),
            ("East", "n/a", dt.date(2026, 1, 2)),
        ]
    )
    rows = list(csv.reader(writer.close().read_text(encoding="utf-8-sig").splitlines()))
    assert rows == [
        ["region", "Amount", "sold_on"],
        ["North", "1,792.39", "19.11.2026"],
        ["South", "1,234,567.50", ""],
        ["East", "n/a", "02.01.2026"],
    ]


def test_encoding_and_delimiter_options(tmp_path: Path) -> None:
    options = ExportOptions("S", "", KOLKATA, csv_encoding="utf-8", csv_delimiter=";")
    writer = open_writer("csv", tmp_path / "o.csv", ["city", "n"], options)
    writer.write([("Zürich", 1.5), ("a;b", 2)])
    assert writer.close().read_bytes() == "city;n\r\nZürich;1.5\r\n\"a;b\";2\r\n".encode()


def test_libreoffice_import_reads_the_bom_file_as_text_and_numbers(tmp_path: Path) -> None:
    """LibreOffice's import with its dialog's defaults (comma, quote, system character
    set) on a UTF-8 desktop: the BOM is consumed, not left in the first header, text
    keeps every script and numbers arrive as numbers.

    (Headless LibreOffice 7.4 does not itself look at a BOM, unlike Excel, which is
    why the default is a BOM *and* UTF-8 rather than another encoding.)
    """
    writer = open_writer("csv", tmp_path / "cities.csv", ["city", "total"], OPTIONS)
    writer.write([("Zürich", 1792.3900000000008), ("Москва", 2.5), ("東京", 3)])
    out = libreoffice(tmp_path, writer.close(),
                      "--infilter=Text - txt - csv (StarCalc):44,34,0,1", "--convert-to", "xlsx",
                      utf8_locale=True)
    import openpyxl

    sheet = openpyxl.load_workbook(out / "cities.xlsx").active
    assert sheet is not None
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["city", "total"],
        ["Zürich", 1792.39],
        ["Москва", 2.5],
        ["東京", 3],
    ]


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+cmd|' /C calc'!A0", "-2+3",
            "@SUM(A1:A2)", "\t=1", "\r=1"]


def read_back(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))


def test_text_that_would_run_as_a_formula_is_neutralised(tmp_path: Path) -> None:
    target = tmp_path / "f.csv"
    writer = open_writer("csv", target, ["=id", "text"], OPTIONS)
    writer.write([(i, text) for i, text in enumerate(FORMULAS)])
    writer.write([(-5, "-5"), (6, "+1.5e3"), (7, "plain = text"), (8, None)])
    writer.write([(9, "line\n=2"), (10, "x")])
    writer.close()
    rows = read_back(target)
    assert rows[0] == ["'=id", "text"]
    assert [r[1] for r in rows[1:7]] == ["'" + f for f in FORMULAS]
    assert rows[7:] == [["-5", "-5"], ["6", "+1.5e3"], ["7", "plain = text"], ["8", ""],
                        ["9", "line\n=2"], ["10", "x"]]


def test_formulas_kept_when_the_task_says_so(tmp_path: Path) -> None:
    from dataclasses import replace

    target = tmp_path / "k.csv"
    writer = open_writer("csv", target, ["=id", "text"], replace(OPTIONS, csv_formulas="keep"))
    writer.write([(1, FORMULAS[0])])
    writer.close()
    assert read_back(target) == [["=id", "text"], ["1", FORMULAS[0]]]
