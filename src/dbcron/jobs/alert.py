"""An alert's condition, evaluated over the rows of its query.

``rows`` holds when the query returned any row; ``column op value`` holds when
*any* row satisfies it (the query usually selects the offending rows, and one
bad floor is enough to tell the kitchen). Pure functions: the pipeline feeds
the batches it streams anyway, so an alert reads its result once.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from dbcron.jobs.types import JobError
from dbcron.model import CONDITION

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Condition:
    text: str
    column: str | None = None  # None: the condition is "rows"
    op: str = ""
    value: Decimal | str = ""


@dataclass(frozen=True)
class Verdict:
    holds: bool
    matched: int  # rows that satisfy the condition (all rows for "rows")
    reason: str  # "condition holds: 2 rows with waste_kg > 50"


def parse_condition(text: str) -> Condition:
    """``rows`` or ``column op value``; a value that looks like a number is a Decimal."""
    if text.strip() == "rows":
        return Condition(text.strip())
    match = CONDITION.match(text)
    if match is None:
        raise JobError(f"bad condition {text!r}: use 'rows' or 'column op value'", False)
    raw = match.group("value")
    value: Decimal | str
    if _NUMBER.match(raw):
        value = Decimal(raw)
    elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        value = raw[1:-1]
    else:
        value = raw
    return Condition(
        f"{match.group('column')} {match.group('op')} {raw}",
        match.group("column"),
        match.group("op"),
        value,
    )


def row_predicate(condition: Condition, columns: Sequence[str]) -> Callable[[Sequence[Any]], bool]:
    """A test for one row; a column the query lacks is a JobError listing those it has."""
    if condition.column is None:
        return lambda row: True
    index = _column_index(condition.column, columns)
    compare = _OPS[condition.op]
    wanted = condition.value

    def test(row: Sequence[Any]) -> bool:
        cell = _comparable(row[index], wanted)
        if cell is None:
            return False  # like SQL: NULL (or a text that is no number) satisfies nothing
        return compare(cell, wanted)

    return test


def _column_index(name: str, columns: Sequence[str]) -> int:
    if name in columns:
        return list(columns).index(name)
    # PostgreSQL folds unquoted aliases to lower case, some databases to upper.
    folded = [c.lower() for c in columns]
    if name.lower() in folded:
        return folded.index(name.lower())
    raise JobError(
        f"the condition names the column {name!r}, but the query returns "
        f"{', '.join(columns) or 'no columns'}",
        retryable=False,
    )


def _comparable(cell: Any, wanted: Decimal | str) -> Decimal | str | None:
    if cell is None:
        return None
    if isinstance(wanted, Decimal):
        if isinstance(cell, bool):
            return Decimal(int(cell))
        if isinstance(cell, float):
            # str() first: Decimal(50.1) is 50.1000000000000014..., which is > 50.1.
            return Decimal(str(cell))
        if isinstance(cell, int | Decimal):
            return Decimal(cell)
        try:
            return Decimal(str(cell).strip())
        except InvalidOperation:
            return None
    if isinstance(cell, date):
        # ISO dates order as strings, so "logged_on < 2026-03-01" works.
        return cell.isoformat()
    if isinstance(cell, bool):
        return "true" if cell else "false"  # as the exports write them: "late == true"
    return str(cell)


def verdict(condition: Condition, matched: int, rows: int) -> Verdict:
    """The outcome and the sentence the mail and the run summary use."""
    if condition.column is None:
        if rows:
            return Verdict(True, rows, f"condition holds: the query returned {_rows(rows)}")
        return Verdict(False, 0, "condition does not hold: the query returned no rows")
    if matched:
        return Verdict(True, matched, f"condition holds: {_rows(matched)} with {condition.text}")
    return Verdict(
        False, 0, f"condition does not hold: no row with {condition.text} ({_rows(rows)} checked)"
    )


def evaluate(text: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Verdict:
    """The whole check in one call, for rows already in hand."""
    condition = parse_condition(text)
    test = row_predicate(condition, columns)
    total = matched = 0
    for row in rows:
        total += 1
        matched += test(row)
    return verdict(condition, matched, total)


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")
