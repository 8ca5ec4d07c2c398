"""Slack and Microsoft Teams messages for a run: title, row count, first rows, files.

Pure functions of what the run produced. The shapes follow the documented
incoming-webhook formats: Slack Block Kit (``text`` as the notification
fallback plus ``blocks``; a header's text at most 150 characters, a section's
at most 3,000, at most 50 blocks) and, for Teams (Workflows / incoming
webhooks), a ``message`` with one Adaptive Card 1.5 attachment whose first rows
are a ``Table`` element.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
CELL_MAX = 40  # characters of one value in a chat table; long text helps nobody there


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())  # no newlines or tabs inside a table cell
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], limit: int) -> str:
    """Aligned monospace columns, cut at whole lines to fit `limit` characters."""
    cells = [[_cell(c) for c in columns]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > limit:
            out.append("…")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def summary_line(rows: int, shown: int, when: str) -> str:
    counted = f"{rows:,} row{'' if rows == 1 else 's'}"
    first = f", first {shown} below" if 0 < shown < rows else ""
    return f"{counted}{first} · scheduled {when}"


def files_note(files: Sequence[str], out_dir: str, mailed_to: int) -> str:
    if not files:
        return ""
    where = f"in {out_dir}" + (f" and mailed to {mailed_to} recipient"
                               f"{'' if mailed_to == 1 else 's'}" if mailed_to else "")
    return f"Files: {', '.join(files)} ({where})"


def slack_message(title: str, summary: str, columns: Sequence[str],
                  rows: Sequence[Sequence[Any]], note: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, SLACK_HEADER_MAX),
                                    "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": summary}},
    ]
    if rows and columns:
        # Inside ``` fences Slack shows text as is; the fences count toward the limit.
        table = text_table(columns, rows, SLACK_SECTION_MAX - 8)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{table}```"}})
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return {"text": _clip(f"{title}: {summary}", SLACK_SECTION_MAX), "blocks": blocks}


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def teams_message(title: str, summary: str, columns: Sequence[str],
                  rows: Sequence[Sequence[Any]], note: str) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text_block(title, size="Large", weight="Bolder"),
        _text_block(summary, isSubtle=True, spacing="None"),
    ]
    if rows and columns:
        header = {"type": "TableRow", "style": "accent", "cells": [
            {"type": "TableCell", "items": [_text_block(_cell(c), weight="Bolder")]}
            for c in columns]}
        body.append({
            "type": "Table",
            "firstRowAsHeader": True,
            "gridStyle": "accent",
            "columns": [{"width": 1} for _ in columns],
            "rows": [header] + [
                {"type": "TableRow", "cells": [
                    {"type": "TableCell", "items": [_text_block(_cell(v))]} for v in row]}
                for row in rows
            ],
        })
    if note:
        body.append(_text_block(note, isSubtle=True, size="Small"))
    return {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.5",
                "msteams": {"width": "Full"},
                "body": body,
            },
        }],
    }
