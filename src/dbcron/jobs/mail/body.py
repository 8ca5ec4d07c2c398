"""The default body of a report mail: what ran, for which slot, how late, and a preview.

The HTML part is a Jinja2 template with autoescaping on, so a cell holding
``<script>`` arrives as text, not markup: escaping is structural rather than a
call someone can forget. Styles are inline because mail clients drop ``<style>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import jinja2

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
    "number": f"{_CELL} text-align: right;",
}
_HTML = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    """\
<!DOCTYPE html>
<html>
<body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; color: #222;">
<h2 style="font-size: 18px; margin: 0 0 8px 0;">{{ task }}</h2>
{% if description %}
<p style="margin: 0 0 12px 0;">{{ description }}</p>
{% endif %}
<table style="border-collapse: collapse; margin: 0 0 12px 0;">
{% for label, value in facts %}
<tr><td style="{{ css.label }}">{{ label }}</td><td style="{{ css.fact }}">{{ value }}</td></tr>
{% endfor %}
</table>
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
) -> tuple[str, str]:
    """Return ``(plain text, html)`` for a run's mail.

    ``slot`` is shown in its own timezone (the task's), because that is the
    day and hour the report is about. Only the first 20 rows are shown; the
    attachments hold the rest.
    """
    facts = _facts(slot, late_by, row_count, files)
    rows = [list(row) for row in first_rows[:PREVIEW_ROWS]]
    note = _preview_note(len(rows), row_count)

    text_parts = [f"{task}\n{description}" if description else task]
    text_parts.append("\n".join(f"{label}: {value}" for label, value in facts))
    if columns:
        text_parts.append(_text_table(columns, rows))
        if note:
            text_parts.append(note)
    text = "\n\n".join(text_parts) + "\n"

    html = _HTML.render(
        task=task,
        description=description,
        facts=facts,
        columns=list(columns),
        rows=[[(_cell(v)[:_HTML_CELL_CHARS], _is_number(v)) for v in row] for row in rows],
        preview_note=note,
        css=_CSS,
    )
    return text, html


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


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value):,} bytes>"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _text_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    header = [_clip(str(c)) for c in columns]
    body = [[_clip(_cell(v)) for v in row] for row in rows]
    widths = [len(h) for h in header]
    for row in body:
        for i, value in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], len(value))
    numeric = [
        all(_is_number(row[i]) for row in rows if i < len(row) and row[i] is not None)
        for i in range(len(widths))
    ]

    def line(values: Sequence[str]) -> str:
        cells = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=False)
        ]
        return " | ".join(cells).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body)])


def _clip(value: str) -> str:
    # Line breaks inside a cell would break the table's rows apart.
    flat = " ".join(value.split("\n")).replace("\r", " ").replace("\t", " ")
    if len(flat) > _TEXT_CELL_WIDTH:
        return flat[: _TEXT_CELL_WIDTH - 1] + "…"
    return flat
