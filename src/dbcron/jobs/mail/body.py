"""The default body of a report mail: what ran, for which slot, how late, and a preview.

The HTML part is a Jinja2 template with autoescaping on, so a cell holding
``<script>`` arrives as text, not markup: escaping is structural rather than a
call someone can forget. Styles are inline because mail clients drop ``<style>``.

Cells read as in the files (``dbcron.cells``): floats without noise, a column's
``format`` applied, numbers lined up on their decimal point. The plain-text
table pads by display width, so a column of 東京 lines up in a monospaced font.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import jinja2

from dbcron.cells import NumberFormat, align_on_point, display_width, is_number, plain_text_number

PREVIEW_ROWS = 20
LATE_AFTER = timedelta(minutes=1)
# A wide cell would stretch the plain-text table past any screen; the HTML
# table wraps, so it only needs a limit against pathological values.
_TEXT_CELL_WIDTH = 40
_HTML_CELL_CHARS = 500

_CELL = "border: 1px solid #ccc; padding: 4px 8px;"
_CSS = {
    "label": "padding: 2px 12px 2px 0; color: #666;",
    "fact": "padding: 2px 0;",
    "th": f"{_CELL} background: #f0f0f0; text-align: left;",
    "td": _CELL,
    "number": f"{_CELL} text-align: right; white-space: pre; font-variant-numeric: tabular-nums;",
}
_HTML = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    """\
<!DOCTYPE html>
<html>
<body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; color: #222;">
<h2 style="font-size: 18px; margin: 0 0 8px 0;">{{ title }}</h2>
{% if description %}
<p style="margin: 0 0 12px 0;">{{ description }}</p>
{% endif %}
<table style="border-collapse: collapse; margin: 0 0 12px 0;">
{% for label, value in facts %}
<tr><td style="{{ css.label }}">{{ label }}</td><td style="{{ css.fact }}">{{ value }}</td></tr>
{% endfor %}
</table>
{% if changes %}
<p style="margin: 0 0 12px 0;">{{ changes }}</p>
{% endif %}
{% if columns %}
<table style="border-collapse: collapse; font-size: 13px;">
<thead><tr>
{% for column in columns %}
<th style="{{ css.th }}">{{ column }}</th>
{% endfor %}
</tr></thead>
<tbody>
{% for row in rows %}
<tr>
{% for value, numeric in row %}
<td style="{{ css.number if numeric else css.td }}">{{ value }}</td>
{% endfor %}
</tr>
{% endfor %}
</tbody>
</table>
{% if preview_note %}
<p style="color: #666; font-size: 12px;">{{ preview_note }}</p>
{% endif %}
{% endif %}
</body>
</html>
"""
)


def render_default_body(
    *,
    task: str,
    description: str,
    slot: datetime,
    late_by: timedelta | None,
    row_count: int | None,
    columns: Sequence[str],
    first_rows: Sequence[Sequence[object]],
    files: Sequence[str],
    title: str = "",
    formats: Sequence[NumberFormat | None] = (),
    changes: str = "",
) -> tuple[str, str]:
    """Return ``(plain text, html)`` for a run's mail.

    The report's ``title`` heads it (the task's handle when there is none),
    ``columns`` are the headers as the files show them (labels), ``formats``
    each column's format or None, ``changes`` a sentence on what changed since
    the last mail (``send: if_changed``), shown under the facts. ``slot`` is
    shown in its own timezone (the task's), because that is the day and hour
    the report is about. Only the first 20 rows are shown; the attachments
    hold the rest.
    """
    heading = title or task
    # The title defaults to the description: do not say it twice.
    description = "\n".join(line for line in description.split("\n") if line != heading)
    facts = _facts(slot, late_by, row_count, files)
    rows = [list(row) for row in first_rows[:PREVIEW_ROWS]]
    note = _preview_note(len(rows), row_count)
    cells, numeric = _cells(rows, len(columns), formats)

    text_parts = [f"{heading}\n{description}" if description else heading]
    text_parts.append("\n".join(f"{label}: {value}" for label, value in facts))
    if changes:
        text_parts.append(changes)
    if columns:
        text_parts.append(_text_table(columns, cells, numeric))
        if note:
            text_parts.append(note)
    text = "\n\n".join(text_parts) + "\n"

    html = _HTML.render(
        title=heading,
        description=description,
        facts=facts,
        columns=list(columns),
        rows=[
            [(v[:_HTML_CELL_CHARS], num) for v, num in zip(row, numeric, strict=False)]
            for row in _figure_padded(cells, numeric)
        ],
        preview_note=note,
        changes=changes,
        css=_CSS,
    )
    return text, html


def _cells(
    rows: Sequence[Sequence[object]], ncols: int, formats: Sequence[NumberFormat | None]
) -> tuple[list[list[str]], list[bool]]:
    """Each cell's text, and per column whether it holds numbers (right-aligned)."""
    fmts = [*formats, *[None] * (ncols - len(formats))]
    cells = [[_cell(v, fmts[i] if i < ncols else None) for i, v in enumerate(row)] for row in rows]
    numeric = [
        all(is_number(row[i]) for row in rows if i < len(row) and row[i] is not None)
        for i in range(ncols)
    ]
    return cells, numeric


def _figure_padded(cells: list[list[str]], numeric: list[bool]) -> list[list[str]]:
    """For HTML: numbers padded after the point with figure spaces, so that right
    alignment in tabular digits lines the points up."""
    out = [list(row) for row in cells]
    for i, num in enumerate(numeric):
        if not num:
            continue
        texts = [row[i] if i < len(row) else "" for row in cells]
        for row, padded in zip(out, align_on_point(texts), strict=True):
            if i < len(row):
                row[i] = padded.strip(" ") + _figure_tail(padded)
    return out


def _figure_tail(padded: str) -> str:
    # The trailing spaces align_on_point added, as figure spaces (one digit wide),
    # the first a punctuation space (one point wide) when the number has no point.
    pad = len(padded) - len(padded.rstrip(" "))
    if not pad:
        return ""
    has_point = "." in padded
    return ("\u2007" if has_point else "\u2008") + "\u2007" * (pad - 1)


def _facts(
    slot: datetime, late_by: timedelta | None, row_count: int | None, files: Sequence[str]
) -> list[tuple[str, str]]:
    facts = [("Scheduled for", _when(slot))]
    if late_by is not None and late_by > LATE_AFTER:
        facts.append(("Started late by", _duration(late_by)))
    if row_count is not None:
        facts.append(("Rows", f"{row_count:,}"))
    if files:
        facts.append(("Files", ", ".join(files)))
    return facts


def _preview_note(shown: int, row_count: int | None) -> str:
    if row_count == 0 or (row_count is None and shown == 0):
        return "The query returned no rows."
    if row_count is not None and row_count > shown:
        return f"First {shown:,} of {row_count:,} rows; the attached files hold all of them."
    return ""


def _when(slot: datetime) -> str:
    zone = slot.tzname() or ""
    return f"{slot:%Y-%m-%d %H:%M} {zone}".rstrip()


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    return " ".join(parts) or "less than a minute"


def _cell(value: object, fmt: NumberFormat | None = None) -> str:
    if value is None:
        return ""
    if fmt is not None and (shown := fmt.render(value)) is not None:
        return shown
    if isinstance(value, float | Decimal):
        return plain_text_number(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value):,} bytes>"
    return str(value)


def _text_table(
    columns: Sequence[str], cells: Sequence[Sequence[str]], numeric: Sequence[bool]
) -> str:
    header = [_clip(str(c)) for c in columns]
    body = [[_clip(v) for v in row] for row in cells]
    for i, num in enumerate(numeric):
        if num:
            texts = [row[i] if i < len(row) else "" for row in body]
            for row, padded in zip(body, align_on_point(texts), strict=True):
                if i < len(row):
                    row[i] = padded
    widths = [display_width(h) for h in header]
    for row in body:
        for i, value in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], display_width(value))

    def pad(value: str, width: int, right: bool) -> str:
        fill = " " * (width - display_width(value))
        return fill + value if right else value + fill

    def line(values: Sequence[str]) -> str:
        return " | ".join(
            pad(v, w, num) for v, w, num in zip(values, widths, numeric, strict=False)
        ).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body)])


def _clip(value: str) -> str:
    # Line breaks inside a cell would break the table's rows apart.
    flat = " ".join(value.split("\n")).replace("\r", " ").replace("\t", " ")
    if display_width(flat) <= _TEXT_CELL_WIDTH:
        return flat
    out, used = "", 0
    for ch in flat:
        used += display_width(ch)
        if used > _TEXT_CELL_WIDTH - 1:
            break
        out += ch
    return out + "…"
