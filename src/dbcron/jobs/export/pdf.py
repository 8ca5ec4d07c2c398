"""PDF export: a table drawn on a reportlab canvas, page by page, in flat memory.

platypus' LongTable lays out all rows at once (quadratic, 461 s for 100,000 rows
here); this writer draws fixed-height rows straight onto the canvas and hands
each finished page to disk (``_pdfstream``). Every page carries the title, the
subtitle (the slot), the column header and "Page x of y", where y is a form
XObject every page references and that is drawn once the total is known.

Columns are sized from the first rows; the page turns landscape when they do not
fit portrait, and text wider than its column is cut with an ellipsis, or, in a
column with ``wrap: true``, wrapped onto more lines. Numbers are right-aligned
on their decimal point and shown in the column's ``format`` if it has one. Text
is set in DejaVu Sans Condensed, embedded (subset), with fallback fonts of the
system for other scripts (``_fonts``): every script renders on any viewer, and
characters no installed font has are named in the run's log.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import zoneinfo
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfbase.pdfmetrics import stringWidth

from dbcron.cells import NumberFormat, split_at_point
from dbcron.jobs.export import ExportOptions
from dbcron.jobs.export._files import AtomicFile, Sampler
from dbcron.jobs.export._fonts import FontChain
from dbcron.jobs.export._pdfstream import StreamingCanvas
from dbcron.jobs.export._values import as_text

log = logging.getLogger("dbcron.jobs")

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
_WRAP_LEADING = 8.5  # line distance inside a wrapped cell
_SAMPLE_ROWS = 200
_ELLIPSIS = "…"
_TOTAL_FORM = "dbcronPageTotal"
_STRIPE = (0.94, 0.95, 0.97)
_RULE = (0.55, 0.55, 0.55)
_GREY = (0.35, 0.35, 0.35)

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NUMERIC = (int, float, Decimal)


def _register_fonts() -> tuple[FontChain, FontChain]:
    """The regular and bold chains; the bundled TTFs register once per process."""
    return (
        FontChain(FONT, _FONT_FILES[FONT], bold=False),
        FontChain(FONT_BOLD, _FONT_FILES[FONT_BOLD], bold=True),
    )


def cell_text(value: object, tz: zoneinfo.ZoneInfo, fmt: NumberFormat | None = None) -> str:
    """How a value reads in the PDF: like the csv, but shorter where people read it."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(tz).replace(tzinfo=None)
    if fmt is not None and (shown := fmt.render(value)) is not None:
        return shown
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
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
        self._regular, self._bold = _register_fonts()
        self._sampler = Sampler(len(columns), _SAMPLE_ROWS)
        styles = options.styles(columns)
        self._formats = [s.format for s in styles]
        self._wrap = [s.wrap for s in styles]
        self._columns = [cell_text(c, options.tz) for c in options.labels(columns)]
        self._options = options
        self._path = path
        self._file = AtomicFile(path)
        self._canvas: StreamingCanvas | None = None
        self._widths: list[float] = []
        self._lefts: list[float] = []
        self._numeric: list[bool] = []
        self._tails: list[float] = []  # per numeric column: widest text from the point on
        self._tail_widths: dict[str, float] = {}
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
            canvas.setFillColorRGB(*_GREY)
            self._line(_MARGIN + _PAD, self._y - _ROW_HEIGHT + 2.5, "No rows.", self._regular)
        self._end_page()
        canvas.beginForm(_TOTAL_FORM, lowerx=0, lowery=-4, upperx=80, uppery=12)
        canvas.setFont(FONT, _SMALL_SIZE)
        canvas.setFillColorRGB(*_GREY)
        canvas.drawString(0, 0, str(self._page))
        canvas.endForm()
        canvas.save()
        self._warn_missing()
        return self._file.commit()

    def abort(self) -> None:
        self._file.abort()

    def _warn_missing(self) -> None:
        missing = sorted(self._regular.missing | self._bold.missing)
        if missing:
            names = ", ".join(f"{ch} (U+{ord(ch):04X})" for ch in missing[:20])
            more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            log.warning(
                "%s: no installed font has %s%s; they show as boxes (install a font for them, "
                "e.g. the Debian packages fonts-noto-core, fonts-droid-fallback, fonts-nanum)",
                self._path.name,
                names,
                more,
            )

    def _require_canvas(self) -> StreamingCanvas:
        if self._canvas is None:
            raise RuntimeError("the PDF layout was not made")  # _layout always runs first
        return self._canvas

    def _texts(self, row: Sequence[object]) -> list[str]:
        tz = self._options.tz
        return [cell_text(v, tz, f) for v, f in zip(row, self._formats, strict=True)]

    def _layout(self, sample: Sequence[Sequence[object]]) -> None:
        """Size the columns from the header and the first rows, then pick the page."""
        natural = [self._bold.width(c, _SMALL_SIZE) for c in self._columns]
        kinds: list[set[bool]] = [set() for _ in self._columns]  # per column: is numeric
        heads = [0.0] * len(self._columns)
        tails = [0.0] * len(self._columns)
        for row in sample:
            for i, (value, text) in enumerate(zip(row, self._texts(row), strict=True)):
                if value is None:
                    continue
                natural[i] = max(natural[i], self._regular.width(text, _BODY_SIZE))
                number = isinstance(value, _NUMERIC) and not isinstance(value, bool)
                kinds[i].add(number)
                if number:
                    head, tail = split_at_point(text)
                    heads[i] = max(heads[i], self._regular.width(head, _BODY_SIZE))
                    tails[i] = max(tails[i], self._regular.width(tail, _BODY_SIZE))
        self._numeric = [k == {True} for k in kinds]
        self._tails = tails
        # Later numbers may be longer than the first ones: leave room for 10 digits.
        digits = self._regular.width("0" * 10, _BODY_SIZE)
        natural = [
            max(w, digits + t, h + t) if num else w
            for w, num, h, t in zip(natural, self._numeric, heads, tails, strict=True)
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
        canvas.setAuthor("dbcron")
        canvas.setCreator("dbcron")
        canvas.reserve_form(_TOTAL_FORM)
        self._canvas = canvas

    def _start_page(self) -> None:
        canvas = self._require_canvas()
        self._page += 1
        self._rows_on_page = 0
        width, height = self._page_size
        top = height - _MARGIN
        room = width - 2 * _MARGIN
        canvas.setFillColorRGB(0, 0, 0)
        title = self._clip(self._options.title, self._bold, _TITLE_SIZE, room)
        self._line(_MARGIN, top - _TITLE_SIZE, title, self._bold, _TITLE_SIZE)
        canvas.setFillColorRGB(*_GREY)
        subtitle = self._clip(self._options.subtitle, self._regular, _SMALL_SIZE, room)
        self._line(_MARGIN, top - _TITLE_SIZE - 11, subtitle, self._regular)
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
        self._draw_cells(self._columns, baseline, self._bold, _SMALL_SIZE, header=True)
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
        canvas.translate(x + self._regular.width(label, _SMALL_SIZE), y)
        canvas.doForm(_TOTAL_FORM)
        canvas.restoreState()
        canvas.showPage()

    def _page_room(self) -> float:
        """Height for rows on a page below the title and header."""
        return float(self._page_size[1]) - 2 * _MARGIN - _TITLE_SIZE - 18 - _HEADER_HEIGHT

    def _wrapped(self, texts: list[str]) -> tuple[list[tuple[int, int, str]], int]:
        """Wrap the cells of wrapping columns: ``texts`` keeps each cell's first line;
        returned are the further lines as (column, line number, text) and the row's
        number of lines."""
        max_lines = max(1, int((self._page_room() - _ROW_HEIGHT) / _WRAP_LEADING) + 1)
        more: list[tuple[int, int, str]] = []
        count = 1
        for i, text in enumerate(texts):
            room = self._widths[i] - 2 * _PAD
            if self._wrap[i] and text and self._regular.width(text, _BODY_SIZE) > room:
                lines = _wrap(text, lambda t: self._regular.width(t, _BODY_SIZE), room)
                if len(lines) > max_lines:
                    lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
                texts[i] = lines[0]
                more += [(i, n, line) for n, line in enumerate(lines[1:], start=1)]
                count = max(count, len(lines))
        return more, count

    def _draw_rows(self, rows: Sequence[Sequence[object]]) -> None:
        canvas = self._require_canvas()
        bottom = _MARGIN
        wraps = any(self._wrap)
        more: list[tuple[int, int, str]] = []
        lines = 1
        for row in rows:
            texts = self._texts(row)
            if wraps:
                more, lines = self._wrapped(texts)
            height = _ROW_HEIGHT + _WRAP_LEADING * (lines - 1)
            if self._page == 0 or self._y - height < bottom:
                if self._page:
                    self._end_page()
                self._start_page()
            self._y -= height
            if self._rows_on_page % 2:
                canvas.setFillColorRGB(*_STRIPE)
                canvas.rect(_MARGIN, self._y, sum(self._widths), height, stroke=0, fill=1)
                canvas.setFillColorRGB(0, 0, 0)
            baseline = self._y + height - _ROW_HEIGHT + 2.8
            self._draw_cells(texts, baseline, self._regular, _BODY_SIZE, more=more)
            self._rows_on_page += 1

    def _draw_cells(
        self,
        texts: Sequence[str],
        baseline: float,
        chain: FontChain,
        size: float,
        header: bool = False,
        more: Sequence[tuple[int, int, str]] = (),
    ) -> None:
        """One row: each column's text on the baseline, then ``more`` wrapped lines."""
        text = self._require_canvas().beginText()
        text.setFont(chain.primary, size)
        primary = chain.primary
        cells = itertools.chain(
            zip(range(len(texts)), itertools.repeat(0), texts, strict=False), more
        )
        for i, n, value in cells:
            if not value:
                continue
            room = self._widths[i] - 2 * _PAD
            left = self._lefts[i] + _PAD
            numeric = self._numeric[i]
            y = baseline - n * _WRAP_LEADING
            # Most cells are ASCII: the first font draws them as they are, so they
            # skip the chain's run splitting (this loop is the writer's hot path).
            plain = value.isascii()
            width = stringWidth(value, primary, size) if plain else chain.width(value, size)
            x = left
            if numeric:
                x = left + room - width  # a header: right-aligned
                if not header:
                    # Right-aligned on the decimal point: the integer part ends where
                    # the column's widest fraction (or suffix) begins.
                    point = split_at_point(value)[1]
                    tail_width = self._tail_width(point, chain, size) if point else 0.0
                    x = left + room - max(self._tails[i], tail_width) - (width - tail_width)
                    if x < left:
                        x = left + room - width
                if x < left:
                    # A cut number would read as another number: squeeze it instead.
                    text.setHorizScale(100 * room / width)
                    _put(text, left, y, value, chain, size)
                    text.setHorizScale(100)
                    continue
            elif width > room:
                value = self._clip(value, chain, size, room)
                plain = value.isascii()
            if plain:
                text.setTextOrigin(x, y)
                text.textOut(value)
            else:
                _put(text, x, y, value, chain, size)
        self._require_canvas().drawText(text)

    def _tail_width(self, tail: str, chain: FontChain, size: float) -> float:
        # Fractions repeat (".25", ".5"): measuring each once halves the measuring.
        width = self._tail_widths.get(tail)
        if width is None:
            if len(self._tail_widths) > 4096:
                self._tail_widths.clear()
            width = self._tail_widths[tail] = chain.width(tail, size)
        return width

    def _line(
        self, x: float, y: float, value: str, chain: FontChain, size: float = _SMALL_SIZE
    ) -> None:
        text = self._require_canvas().beginText()
        text.setFont(chain.primary, size)
        _put(text, x, y, value, chain, size)
        self._require_canvas().drawText(text)

    @staticmethod
    def _clip(value: str, chain: FontChain, size: float, room: float) -> str:
        """The longest prefix of ``value`` that fits ``room`` with an ellipsis."""
        if chain.width(value, size) <= room:
            return value
        # No glyph of the font is narrower than ~0.2 em: search only what could fit.
        lo, hi = 0, min(len(value), int(room / (size * 0.2)) + 1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if chain.width(value[:mid] + _ELLIPSIS, size) <= room:
                lo = mid
            else:
                hi = mid - 1
        return value[:lo].rstrip() + _ELLIPSIS


def _put(text: Any, x: float, y: float, value: str, chain: FontChain, size: float) -> None:
    """Draw ``value`` at (x, y) in a text object, run by run where fonts change."""
    text.setTextOrigin(x, y)
    if chain.simple(value):
        if text._fontname != chain.primary:
            text.setFont(chain.primary, size)
        text.textOut(value)
        return
    for run in chain.runs(value, size):
        if text._fontname != run.font:
            text.setFont(run.font, size)
        text.textOut(run.text)
    if text._fontname != chain.primary:
        text.setFont(chain.primary, size)


def _wrap(text: str, width: Any, room: float) -> list[str]:
    """Greedy word wrap; a word wider than the room is broken where it must be."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if width(candidate) <= room:
            line = candidate
            continue
        if line:
            lines.append(line)
        while width(word) > room and len(word) > 1:
            cut = 1
            while cut < len(word) and width(word[: cut + 1]) <= room:
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines or [text]
