"""CSV export: UTF-8 with a BOM, RFC 4180 (CRLF, minimal quoting), a header row.

The BOM is what makes Excel (and LibreOffice) read a double-clicked file as
UTF-8, so ``Zürich`` does not arrive as ``ZÃ¼rich``; ``export.csv.encoding`` and
``export.csv.delimiter`` serve programs that want plain UTF-8, or ``;``.

Values follow ``_values``: ``None`` is an empty field, datetimes ISO 8601 with
aware ones converted to the report's timezone, floats without noise. A column
with a ``format`` in ``export.columns`` is written as that format shows it, and
a ``label`` replaces the column's name in the header. Text is written as stored,
except that a cell a spreadsheet would run as a formula (``=1+1``) gets a
leading ``'`` unless the task says ``export.csv.formulas: keep`` (``_formulas``).

Speed: most columns (int, str, date, NULL) need no conversion and go through
the C ``csv.writer`` untouched; only columns whose batch holds a type that
``str()`` would misrender (float, Decimal, bool, datetime, bytes) or that carry
a format are converted, one column at a time, so the writer stays close to a
bare ``csv.writer`` loop.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from pathlib import Path

from dbcron.cells import NumberFormat
from dbcron.jobs.export import ExportOptions
from dbcron.jobs.export._files import AtomicFile, check_widths
from dbcron.jobs.export._formulas import neutralise, neutralise_columns
from dbcron.jobs.export._values import as_text

_CONVERTED = (float, Decimal, bool, dt.datetime, bytes, bytearray, memoryview)


class CsvWriter:
    def __init__(self, path: Path, columns: Sequence[str], options: ExportOptions) -> None:
        self.rows_written = 0
        self._ncols = len(columns)
        self._text = partial(as_text, tz=options.tz)
        self._formats = [s.format for s in options.styles(columns)]
        self._file = AtomicFile(path)
        encoding = options.csv_encoding
        if encoding == "utf-8-sig":
            # The BOM by hand, then plain utf-8: TextIOWrapper encodes utf-8 in C, but
            # calls utf-8-sig's Python encoder on every row csv.writer writes (+20%).
            self._file.file.write(codecs.BOM_UTF8)
            encoding = "utf-8"
        self._stream = io.TextIOWrapper(
            self._file.file,
            encoding=encoding,
            errors="replace",
            newline="",
            write_through=False,
        )
        self._csv = csv.writer(
            self._stream,
            delimiter=options.csv_delimiter,
            lineterminator="\r\n",
            quoting=csv.QUOTE_MINIMAL,
        )
        self._formulas = options.csv_formulas
        labels = options.labels(columns)
        self._csv.writerow(labels if self._formulas == "keep" else map(neutralise, labels))

    def write(self, rows: Sequence[Sequence[object]]) -> None:
        if not rows:
            return
        check_widths(rows, self._ncols)
        columns: list[Sequence[object]] = list(zip(*rows, strict=True))
        converted = False
        for i, column in enumerate(columns):
            fmt = self._formats[i]
            types = set(map(type, column))
            if fmt is not None and fmt.code.lower() != "general":
                columns[i] = [self._formatted(fmt, v) for v in column]
                converted = True
            elif types == {float}:  # cells.plain_text_number inlined: as cheap as csv's repr()
                columns[i] = [f"{v:.15g}" for v in column]
                converted = True
            elif any(issubclass(t, _CONVERTED) for t in types):
                columns[i] = list(map(self._text, column))
                converted = True
        if self._formulas == "escape":
            converted = neutralise_columns(columns) or converted
        self._csv.writerows(zip(*columns, strict=True) if converted else rows)
        self.rows_written += len(rows)

    def _formatted(self, fmt: NumberFormat, value: object) -> str:
        text = fmt.render(value)
        return self._text(value) if text is None else text

    def close(self) -> Path:
        self._stream.flush()
        self._stream.detach()
        return self._file.commit()

    def abort(self) -> None:
        self._file.abort()
