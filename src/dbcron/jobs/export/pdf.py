"""PDF export: a table drawn on a reportlab canvas, page by page, in flat memory.

platypus' LongTable lays out all rows at once (quadratic, 461 s for 100,000 rows
here); this writer draws fixed-height rows straight onto the canvas and hands
each finished page to disk (``_pdfstream``). Every page carries the title, the
subtitle (the slot), the column header and "Page x of y", where y is a form
XObject every page references and that is drawn once the total is known.

Columns are sized from the first rows; the page turns landscape when they do not
fit portrait, and text wider than its column is cut with an ellipsis. Text is
set in DejaVu Sans Condensed, embedded (subset), so Cyrillic, Greek and accented
Latin render on any viewer.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Sequence
from decimal import Decimal
from importlib import resources
from pathlib import Path

from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from dbcron.jobs.export import ExportOptions
from dbcron.jobs.export._files import AtomicFile, Sampler
from dbcron.jobs.export._pdfstream import StreamingCanvas
from dbcron.jobs.export._values import as_text

FONT = "DbcronSans"
FONT_BOLD = "DbcronSans-Bold"
_FONT_FILES = {FONT: "DejaVuSansCondensed.ttf", FONT_BOLD: "DejaVuSansCondensed-Bold.ttf"}

_MARGIN = 30.0
_TITLE_SIZE = 12.0
_SMALL_SIZE = 7.5
_BODY_SIZE = 7.0
_ROW_HEIGHT = 10.0
_HEADER_HEIGHT = 13.0
_PAD = 3.0  # space between a cell's text and its column edges
_MIN_COLUMN = 24.0
_MAX_COLUMN = 220.0
_SAMPLE_ROWS = 200
_ELLIPSIS = "…"
_TOTAL_FORM = "dbcronPageTotal"
_STRIPE = (0.94, 0.95, 0.97)
_RULE = (0.55, 0.55, 0.55)
_GREY = (0.35, 0.35, 0.35)

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NUMERIC = (int, float, Decimal)


def _register_fonts() -> None:
    """Register the bundled TTFs once per process (reportlab's registry is global)."""
    registered = set(pdfmetrics.getRegisteredFontNames())
    for name, filename in _FONT_FILES.items():
        if name not in registered:
            path = resources.files("dbcron") / "fonts" / filename
            with resources.as_file(path) as font_path:
                pdfmetrics.registerFont(TTFont(name, str(font_path)))


def cell_text(value: object, tz: zoneinfo.ZoneInfo) -> str:
    """How a value reads in the PDF: like the csv, but shorter where people read it."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(tz).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, float):
        return format(value, ".15g")  # 0.1 + 0.2 reads 0.3, not 0.30000000000000004
    text = as_text(value, tz)
    return _CONTROL.sub(" ", text) if _CONTROL.search(text) else text


def fit_widths(natural: Sequence[float], available: float) -> list[float]:
    """Column widths within ``available``: the widest columns give way first.

    Narrow columns keep their natural width; the rest share what is left equally
    (water-filling), and only if even that is too little is everything scaled.
    """
    if sum(natural) <= available:
        return list(natural)
    order = sorted(range(len(natural)), key=lambda i: natural[i])
    left, remaining = available, len(natural)
    cap = available / remaining
    for i in order:
        cap = left / remaining
        if natural[i] > cap:
            break
        left -= natural[i]
        remaining -= 1
    widths = [min(w, cap) for w in natural]
    if min(widths) < _MIN_COLUMN and sum(widths) > available:
        scale = available / sum(widths)
        widths = [w * scale for w in widths]
    return widths


class PdfWriter:
    def __init__(self, path: Path, columns: Sequence[str], options: ExportOptions) -> None:
        _register_fonts()
        self._sampler = Sampler(len(columns), _SAMPLE_ROWS)
        self._columns = [cell_text(c, options.tz) for c in columns]
        self._options = options
        self._file = AtomicFile(path)
        self._canvas: StreamingCanvas | None = None
        self._widths: list[float] = []
        self._lefts: list[float] = []
        self._numeric: list[bool] = []
        self._page_size = A4
        self._page = 0
        self._y = 0.0
        self._rows_on_page = 0

    @property
    def rows_written(self) -> int:
        return self._sampler.rows_written

    def write(self, rows: Sequence[Sequence[object]]) -> None:
        sample, ready = self._sampler.feed(rows)
        if sample is not None:
            self._layout(sample)
        if ready:
            self._draw_rows(ready)

    def close(self) -> Path:
        rows = self._sampler.rest()
        if rows is not None:
            self._layout(rows)
            self._draw_rows(rows)
        canvas = self._require_canvas()
        if self._page == 0:
            self._start_page()
            canvas.setFont(FONT, _SMALL_SIZE)
            canvas.setFillColorRGB(*_GREY)
            canvas.drawString(_MARGIN + _PAD, self._y - _ROW_HEIGHT + 2.5, "No rows.")
        self._end_page()
        canvas.beginForm(_TOTAL_FORM, lowerx=0, lowery=-4, upperx=80, uppery=12)
        canvas.setFont(FONT, _SMALL_SIZE)
        canvas.setFillColorRGB(*_GREY)
        canvas.drawString(0, 0, str(self._page))
        canvas.endForm()
        canvas.save()
        return self._file.commit()

    def abort(self) -> None:
        self._file.abort()

    def _require_canvas(self) -> StreamingCanvas:
        if self._canvas is None:
            raise RuntimeError("the PDF layout was not made")  # _layout always runs first
        return self._canvas

    def _layout(self, sample: Sequence[Sequence[object]]) -> None:
        """Size the columns from the header and the first rows, then pick the page."""
        tz = self._options.tz
        natural = [pdfmetrics.stringWidth(c, FONT_BOLD, _SMALL_SIZE) for c in self._columns]
        kinds: list[set[bool]] = [set() for _ in self._columns]  # per column: is numeric
        for row in sample:
            for i, value in enumerate(row):
                if value is None:
                    continue
                width = pdfmetrics.stringWidth(cell_text(value, tz), FONT, _BODY_SIZE)
                natural[i] = max(natural[i], width)
                kinds[i].add(isinstance(value, _NUMERIC) and not isinstance(value, bool))
        self._numeric = [k == {True} for k in kinds]
        # Later numbers may be longer than the first ones: leave room for 10 digits.
        digits = pdfmetrics.stringWidth("0" * 10, FONT, _BODY_SIZE)
        natural = [
            max(w, digits) if num else w for w, num in zip(natural, self._numeric, strict=True)
        ]
        natural = [min(max(w + 2 * _PAD, _MIN_COLUMN), _MAX_COLUMN) for w in natural]
        portrait_room = A4[0] - 2 * _MARGIN
        self._page_size = A4 if sum(natural) <= portrait_room else landscape(A4)
        self._widths = fit_widths(natural, self._page_size[0] - 2 * _MARGIN)
        self._lefts = []
        x = _MARGIN
        for w in self._widths:
            self._lefts.append(x)
            x += w
        canvas = StreamingCanvas(self._file.file, self._page_size)
        canvas.setTitle(self._options.title)
        canvas.setSubject(self._options.subtitle)
        canvas.setCreator("dbcron")
        canvas.reserve_form(_TOTAL_FORM)
        self._canvas = canvas

    def _start_page(self) -> None:
        canvas = self._require_canvas()
        self._page += 1
        self._rows_on_page = 0
        width, height = self._page_size
        top = height - _MARGIN
        canvas.setFillColorRGB(0, 0, 0)
        canvas.setFont(FONT_BOLD, _TITLE_SIZE)
        canvas.drawString(
            _MARGIN,
            top - _TITLE_SIZE,
            self._clip(self._options.title, FONT_BOLD, _TITLE_SIZE, width - 2 * _MARGIN),
        )
        canvas.setFont(FONT, _SMALL_SIZE)
        canvas.setFillColorRGB(*_GREY)
        canvas.drawString(
            _MARGIN,
            top - _TITLE_SIZE - 11,
            self._clip(self._options.subtitle, FONT, _SMALL_SIZE, width - 2 * _MARGIN),
        )
        header_top = top - _TITLE_SIZE - 18
        canvas.setFillColorRGB(0.87, 0.89, 0.93)
        canvas.rect(
            _MARGIN,
            header_top - _HEADER_HEIGHT,
            sum(self._widths),
            _HEADER_HEIGHT,
            stroke=0,
            fill=1,
        )
        canvas.setFillColorRGB(0, 0, 0)
        baseline = header_top - _HEADER_HEIGHT + 4
        self._draw_cells(self._columns, baseline, FONT_BOLD, _SMALL_SIZE)
        canvas.setStrokeColorRGB(*_RULE)
        canvas.setLineWidth(0.6)
        y = header_top - _HEADER_HEIGHT
        canvas.line(_MARGIN, y, _MARGIN + sum(self._widths), y)
        self._y = y

    def _end_page(self) -> None:
        canvas = self._require_canvas()
        width, _ = self._page_size
        canvas.setFont(FONT, _SMALL_SIZE)
        canvas.setFillColorRGB(*_GREY)
        label = f"Page {self._page} of "
        x = width - _MARGIN - 80
        y = _MARGIN - 12
        canvas.drawString(x, y, label)
        canvas.saveState()
        canvas.translate(x + pdfmetrics.stringWidth(label, FONT, _SMALL_SIZE), y)
        canvas.doForm(_TOTAL_FORM)
        canvas.restoreState()
        canvas.showPage()

    def _draw_rows(self, rows: Sequence[Sequence[object]]) -> None:
        canvas = self._require_canvas()
        tz = self._options.tz
        bottom = _MARGIN
        for row in rows:
            if self._page == 0 or self._y - _ROW_HEIGHT < bottom:
                if self._page:
                    self._end_page()
                self._start_page()
            self._y -= _ROW_HEIGHT
            if self._rows_on_page % 2:
                canvas.setFillColorRGB(*_STRIPE)
                canvas.rect(_MARGIN, self._y, sum(self._widths), _ROW_HEIGHT, stroke=0, fill=1)
                canvas.setFillColorRGB(0, 0, 0)
            self._draw_cells([cell_text(v, tz) for v in row], self._y + 2.8, FONT, _BODY_SIZE)
            self._rows_on_page += 1

    def _draw_cells(self, texts: Sequence[str], baseline: float, font: str, size: float) -> None:
        text = self._require_canvas().beginText()
        text.setFont(font, size)
        for i, value in enumerate(texts):
            if not value:
                continue
            room = self._widths[i] - 2 * _PAD
            width = pdfmetrics.stringWidth(value, font, size)
            x = self._lefts[i] + _PAD
            if self._numeric[i]:
                if width > room:
                    # A cut number would read as another number: squeeze it instead.
                    text.setHorizScale(100 * room / width)
                    text.setTextOrigin(x, baseline)
                    text.textOut(value)
                    text.setHorizScale(100)
                    continue
                x += room - width
            elif width > room:
                value = self._clip(value, font, size, room)
            text.setTextOrigin(x, baseline)
            text.textOut(value)
        self._require_canvas().drawText(text)

    @staticmethod
    def _clip(value: str, font: str, size: float, room: float) -> str:
        """The longest prefix of ``value`` that fits ``room`` with an ellipsis."""
        if pdfmetrics.stringWidth(value, font, size) <= room:
            return value
        # No glyph of the font is narrower than ~0.2 em: search only what could fit.
        lo, hi = 0, min(len(value), int(room / (size * 0.2)) + 1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if pdfmetrics.stringWidth(value[:mid] + _ELLIPSIS, font, size) <= room:
                lo = mid
            else:
                hi = mid - 1
        return value[:lo].rstrip() + _ELLIPSIS
