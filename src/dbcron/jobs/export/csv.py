"""CSV export: UTF-8 (no BOM), RFC 4180 (CRLF, minimal quoting), a header row.

Values follow ``_values``: ``None`` is an empty field, datetimes ISO 8601 with
aware ones converted to the report's timezone. Text is written as stored,
except that a cell a spreadsheet would run as a formula (``=1+1``) gets a
leading ``'`` unless the task says ``export.csv.formulas: keep`` (``_formulas``).

Speed: most columns (int, float, Decimal, str, date, NULL) need no conversion
and go through the C ``csv.writer`` untouched; only columns whose batch holds a
type that ``str()`` would misrender (bool, datetime, bytes) are converted, one
column at a time, so the writer stays close to a bare ``csv.writer`` loop.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from dbcron.jobs.export import ExportOptions
from dbcron.jobs.export._files import AtomicFile, check_widths
from dbcron.jobs.export._formulas import neutralise, neutralise_columns
from dbcron.jobs.export._values import as_text

_CONVERTED = (bool, dt.datetime, bytes, bytearray, memoryview)


class CsvWriter:
    def __init__(self, path: Path, columns: Sequence[str], options: ExportOptions) -> None:
        self.rows_written = 0
        self._ncols = len(columns)
        self._text = partial(as_text, tz=options.tz)
        self._file = AtomicFile(path)
        self._stream = io.TextIOWrapper(
            self._file.file, encoding="utf-8", errors="replace", newline="", write_through=False
        )
        self._csv = csv.writer(self._stream, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        self._formulas = options.csv_formulas
        self._csv.writerow(columns if self._formulas == "keep" else map(neutralise, columns))

    def write(self, rows: Sequence[Sequence[object]]) -> None:
        if not rows:
            return
        check_widths(rows, self._ncols)
        columns: list[Sequence[object]] = list(zip(*rows, strict=True))
        converted = False
        for i, column in enumerate(columns):
            if any(issubclass(t, _CONVERTED) for t in set(map(type, column))):
                columns[i] = list(map(self._text, column))
                converted = True
        if self._formulas == "escape":
            converted = neutralise_columns(columns) or converted
        self._csv.writerows(zip(*columns, strict=True) if converted else rows)
        self.rows_written += len(rows)

    def close(self) -> Path:
        self._stream.flush()
        self._stream.detach()
        return self._file.commit()

    def abort(self) -> None:
        self._file.abort()
