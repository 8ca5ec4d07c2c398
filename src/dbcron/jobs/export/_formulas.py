"""CSV formula injection: text a spreadsheet would run as a formula is made inert.

A CSV cell is only text, but Excel, LibreOffice and Google Sheets run a cell
starting with ``=``, ``+``, ``-`` or ``@`` (and, after a tab or CR, whatever
follows) as a formula: database text such as ``=HYPERLINK(...)`` mailed in a
report would run on the reader's machine. As OWASP recommends, such cells get
a leading ``'``, which spreadsheets show as text; numbers written as text
(``-5``, ``+1.5``) are left alone, since no formula hides in them. A task turns
this off with ``export.csv.formulas: keep`` when a program, not a person,
reads the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(text: str) -> str:
    """``=1+1`` -> ``'=1+1``; any other text unchanged."""
    if text.startswith(_TRIGGERS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def neutralise_columns(columns: list[Sequence[object]]) -> bool:
    """Neutralise the text cells of a batch, column by column, in place; True when a
    column changed (columns without a dangerous cell are left as they are, so the
    common batch costs one scan)."""
    changed = False
    for i, column in enumerate(columns):
        if _risky(column):
            columns[i] = [neutralise(v) if isinstance(v, str) else v for v in column]
            changed = True
    return changed


def _risky(column: Sequence[object]) -> bool:
    # The scan runs on every cell of every batch: number columns are skipped,
    # all-text columns joined once and searched for each trigger in C, so a
    # batch without a risky cell costs little next to the CSV formatting.
    types = set(map(type, column))
    if str not in types:
        return False
    if len(types) == 1:
        # A pre-filter: a cell holding a line break before "=" also matches,
        # and then neutralise() itself decides, cell by cell.
        joined = "\n" + "\n".join(column)  # type: ignore[arg-type]
        return any("\n" + t in joined for t in _TRIGGERS)
    return any(isinstance(v, str) and v.startswith(_TRIGGERS) for v in column)
