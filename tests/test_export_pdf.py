"""PDF export: read back with pypdf (text, pages, fonts) and checked for flat memory."""

from __future__ import annotations

import datetime as dt
import logging
import re
import subprocess
import unicodedata
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pytest
from PIL import Image
from reportlab.pdfbase import pdfmetrics

from conftest import need_tool
from dbcron.cells import parse_format
from dbcron.jobs.export import ColumnStyle, ExportOptions, open_writer
from dbcron.jobs.export.pdf import FONT, cell_text, fit_widths

KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")
OPTIONS = ExportOptions(
    "Sales by region, 2026-11-19",
    "Slot 2026-11-20 09:00 (Asia/Kolkata) · generated 2026-11-20 09:00:03",
    KOLKATA,
)
WORDS = ["Привет", "Ελληνικά", "Crème brûlée", "Łódź"]


def _rows(n: int) -> list[tuple[object, ...]]:
    return [
        (
            i,
            f"{WORDS[i % len(WORDS)]} {i}",
            Decimal(i) / 4,
            dt.datetime(2026, 11, 19, 3, 30, tzinfo=dt.UTC) + dt.timedelta(minutes=i),
            None if i % 5 else "five",
        )
        for i in range(1, n + 1)
    ]


def _write(path: Path, rows: list[tuple[object, ...]], columns: list[str] | None = None) -> Path:
    writer = open_writer("pdf", path, columns or ["id", "name", "amount", "at", "note"], OPTIONS)
    for start in range(0, len(rows), 100):
        writer.write(rows[start : start + 100])
    assert writer.rows_written == len(rows)
    return writer.close()


def test_every_page_has_title_slot_header_and_page_x_of_y(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.pdf", _rows(1000))
    reader = pypdf.PdfReader(path)
    total = len(reader.pages)
    assert total > 5
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert text.startswith(OPTIONS.title + "\n" + OPTIONS.subtitle + "\nid name amount at note")
        assert re.search(rf"Page {number} of\s*{total}\s*$", text), text[-60:]
    first = reader.pages[0].extract_text()
    assert "1 Ελληνικά 1 0.25 2026-11-19 09:01:00" in first
    assert "4 Привет 4 1 2026-11-19 09:04:00" in first
    last = reader.pages[-1].extract_text()
    # 03:30 UTC + 1000 minutes is 20:10 UTC, 01:40 the next day in Kolkata.
    assert "1000 Привет 1000 250 2026-11-20 01:40:00 five" in last
    assert reader.metadata is not None and reader.metadata.title == OPTIONS.title


def test_non_latin_text_is_embedded_and_extracted(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.pdf", _rows(8))
    reader = pypdf.PdfReader(path)
    text = reader.pages[0].extract_text()
    for word in WORDS:
        assert word in text
    fonts = reader.pages[0]["/Resources"]["/Font"]  # type: ignore[index]
    dejavu = [f.get_object() for f in fonts.values() if "DejaVu" in f.get_object()["/BaseFont"]]
    assert dejavu
    # TrueType subsets embedded in the file, not referenced from the reader's system.
    assert all("/FontFile2" in f["/FontDescriptor"].get_object() for f in dejavu)


def test_wide_columns_turn_the_page_and_long_text_is_clipped(tmp_path: Path) -> None:
    columns = [f"column number {i}" for i in range(12)]
    long_text = "word " * 200
    rows: list[tuple[object, ...]] = [tuple([long_text] * 12)]
    reader = pypdf.PdfReader(_write(tmp_path / "w.pdf", rows, columns))
    box = reader.pages[0].mediabox
    assert box.width > box.height
    text = reader.pages[0].extract_text()
    assert "word word" in text and "…" in text
    assert text.count("word") < 400


def test_narrow_report_is_portrait(tmp_path: Path) -> None:
    box = pypdf.PdfReader(_write(tmp_path / "n.pdf", _rows(3))).pages[0].mediabox
    assert box.height > box.width


def test_empty_result_has_one_page_saying_so(tmp_path: Path) -> None:
    reader = pypdf.PdfReader(_write(tmp_path / "e.pdf", []))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "No rows." in text
    assert re.search(r"Page 1 of\s*1", text)


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = open_writer("pdf", tmp_path / "a.pdf", ["a"], OPTIONS)
    writer.write([(i,) for i in range(500)])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_pages_go_to_disk_as_they_are_drawn(tmp_path: Path) -> None:
    """Flat memory: the temp file grows while rows arrive, before close()."""
    writer = open_writer("pdf", tmp_path / "s.pdf", ["id", "text"], OPTIONS)
    part = tmp_path / ".s.pdf.part"
    sizes = []
    for start in range(0, 6000, 1000):
        writer.write([(i, f"row {i}") for i in range(start, start + 1000)])
        sizes.append(part.stat().st_size)
    assert sizes == sorted(sizes) and sizes[-1] > sizes[1] > sizes[0] > 0
    path = writer.close()
    assert len(pypdf.PdfReader(path).pages) > 50


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (0.1 + 0.2, "0.3"),
        (230.98000000000002, "230.98"),
        (Decimal("12.50"), "12.50"),
        (Decimal("1E+2"), "100"),
        (True, "true"),
        (dt.datetime(2026, 1, 1, 0, 0, 0, 500, tzinfo=dt.UTC), "2026-01-01 05:30:00"),
        ("tab\there\nnewline", "tab here newline"),
        (b"\xab", "ab"),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value, KOLKATA) == text


def test_fit_widths_shrinks_the_widest_columns_first() -> None:
    assert fit_widths([50, 60], 200) == [50, 60]
    assert fit_widths([50, 300, 400], 350) == [50, 150, 150]
    assert sum(fit_widths([100.0] * 40, 500)) == pytest.approx(500)


CITIES = ["東京", "मुंबई", "القاهرة", "תל אביב", "Zürich", "서울"]
FONT_PACKAGES = (
    "fonts-noto-core, fonts-droid-fallback, fonts-nanum"  # what .ci/run installs
)


def _page_fonts(page: Any) -> set[str]:
    fonts = page["/Resources"]["/Font"]
    return {str(f.get_object()["/BaseFont"]).split("+")[-1] for f in fonts.values()}


def test_every_script_is_drawn_in_a_font_that_has_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before the fallback chain, 東京 was drawn in DejaVu as empty boxes, silently."""
    pdftoppm = need_tool("pdftoppm", "poppler-utils")
    options = ExportOptions("Sales by city, 東京", "", KOLKATA)
    writer = open_writer("pdf", tmp_path / "c.pdf", ["city", "total"], options)
    writer.write([(city, i + 0.5) for i, city in enumerate(CITIES)])
    with caplog.at_level(logging.WARNING, logger="dbcron.jobs"):
        path = writer.close()
    assert caplog.messages == []
    page = pypdf.PdfReader(path).pages[0]
    # Arabic comes back as its joined presentation forms, which NFKC folds back.
    lines = unicodedata.normalize("NFKC", page.extract_text()).splitlines()
    assert lines[0] == "Sales by city, 東京"
    assert lines[1:8] == ["city total"] + [f"{city} {i}.5" for i, city in enumerate(CITIES)]
    assert {"DroidSansFallback", "NotoSansDevanagari-Regular", "NanumGothic"} <= _page_fonts(
        page
    ), "install " + FONT_PACKAGES
    # Rendered, every city's cell has ink (a name drawn, not left blank).
    subprocess.run(
        [pdftoppm, "-r", "72", "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / "p")],
        check=True,
    )
    image = Image.open(next(tmp_path.glob("p*.png"))).convert("L")
    first_row_top = 30 + 12 + 18 + 13  # margin, title, gap, header (points = pixels at 72 dpi)
    for n in range(len(CITIES)):
        top = first_row_top + 10 * n
        cell = image.crop((30, top, 60, top + 10))
        dark = sum(1 for v in cell.tobytes() if v < 128)
        assert dark > 5, CITIES[n]


def test_characters_no_font_has_are_named_once_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = open_writer("pdf", tmp_path / "m.pdf", ["glyph"], OPTIONS)
    writer.write([("\U00010600 Linear A",), ("\U00010601",)] * 50)
    with caplog.at_level(logging.WARNING, logger="dbcron.jobs"):
        writer.close()
    assert caplog.messages == [
        "m.pdf: no installed font has \U00010600 (U+10600), \U00010601 (U+10601); they show as "
        "boxes (install a font for them, e.g. the Debian packages " + FONT_PACKAGES + ")"
    ]


def test_formats_labels_and_numbers_aligned_on_the_point(tmp_path: Path) -> None:
    options = ExportOptions(
        "Sales",
        "",
        KOLKATA,
        columns={"total": ColumnStyle(format=parse_format("#,##0.00"), label="Total")},
    )
    writer = open_writer("pdf", tmp_path / "f.pdf", ["total", "share"], options)
    writer.write([(1792.3900000000008, 0.1 + 0.2), (Decimal("-1234567.5"), 12.5), (7, 3.25)])
    page = pypdf.PdfReader(writer.close()).pages[0]
    text = page.extract_text()
    assert "Total share\n1,792.39 0.3\n-1,234,567.50 12.5\n7.00 3.25\n" in text
    # Where each point falls: the x of a cell's text plus the width of its integer part.
    stream = page.get_contents().get_data().decode("latin-1")  # type: ignore[union-attr]
    cell = r"1 0 0 1 ([\d.]+) [\d.]+ Tm (?:/\S+ [\d.]+ Tf [\d.]+ TL )?\(([^)]*)\) Tj"
    drawn = re.findall(cell, stream)
    points = {
        value: float(x) + pdfmetrics.stringWidth(value.split(".")[0], FONT, 7.0)
        for x, value in drawn
        if re.fullmatch(r"-?[\d,]+\.\d+", value)
    }
    assert points["1,792.39"] == pytest.approx(points["-1,234,567.50"])
    assert points["1,792.39"] == pytest.approx(points["7.00"])
    assert points["0.3"] == pytest.approx(points["12.5"])
    assert points["0.3"] == pytest.approx(points["3.25"])


def test_a_wrap_column_keeps_all_its_text(tmp_path: Path) -> None:
    note = "every word of this note must be in the file " * 12
    options = ExportOptions("Notes", "", KOLKATA, columns={"note": ColumnStyle(wrap=True)})
    for name, opts in (("wrap", options), ("cut", OPTIONS)):
        writer = open_writer("pdf", tmp_path / f"{name}.pdf", ["id", "note"], opts)
        writer.write([(1, note), (2, "short")] * 40)
        text = pypdf.PdfReader(writer.close()).pages[0].extract_text()
        flat = " ".join(text.split())
        if name == "wrap":
            assert note.strip() in flat and "…" not in flat
        else:
            assert note.strip() not in flat and "…" in flat


def test_the_document_author_is_dbcron(tmp_path: Path) -> None:
    meta = pypdf.PdfReader(_write(tmp_path / "a.pdf", _rows(1))).metadata
    assert meta is not None
    assert (meta.author, meta.creator, meta.title) == ("dbcron", "dbcron", OPTIONS.title)
