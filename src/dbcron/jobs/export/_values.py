"""How a database value reads as text, shared by the csv and pdf writers.

Conventions, kept here as their one source:
- ``None`` is empty text;
- datetimes are ISO 8601 (``2026-11-20T09:00:03``); timezone-aware ones are first
  converted to the report's timezone and keep their offset
  (``2026-11-20T09:00:03+05:30``), naive ones are written as stored;
- dates and times are ISO 8601, booleans ``true``/``false``, bytes lowercase hex;
- floats and Decimals as ``dbcron.cells.plain_text_number`` gives them: no float
  noise (``230.98``, not ``230.98000000000002``), Decimals with their scale.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

from dbcron.cells import plain_text_number


def iso_datetime(value: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(tz)
    return value.isoformat()


def as_text(value: object, tz: zoneinfo.ZoneInfo) -> str:
    """The text of any driver value, following the module's conventions."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return iso_datetime(value, tz)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, float | Decimal):
        return plain_text_number(value)
    return str(value)
