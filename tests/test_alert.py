"""Alert conditions over rows: a pure table."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from dbcron.jobs.alert import evaluate, parse_condition
from dbcron.jobs.types import JobError

COLUMNS = ["floor", "waste_kg", "logged_on"]
ROWS = [
    ("Ground floor", 21.5, date(2026, 3, 1)),
    ("2nd floor", 64.3, date(2026, 3, 2)),
    ("1st floor", None, date(2026, 3, 3)),
]


@pytest.mark.parametrize(
    ("condition", "holds", "matched"),
    [
        ("rows", True, 3),
        ("waste_kg > 50", True, 1),
        ("waste_kg > 64.3", False, 0),
        ("waste_kg >= 64.3", True, 1),
        ("waste_kg < 30", True, 1),
        ("waste_kg <= 21.5", True, 1),
        ("waste_kg == 21.5", True, 1),  # float 21.5 compared as Decimal("21.5")
        ("waste_kg != 21.5", True, 1),  # NULL satisfies nothing, as in SQL
        ("waste_kg > 1e2", False, 0),
        ("floor == '2nd floor'", True, 1),
        ('floor != "2nd floor"', True, 2),
        ("floor == Rooftop", False, 0),
        ("logged_on >= 2026-03-02", True, 2),
        ("WASTE_KG > 50", True, 1),  # column names match case-insensitively
    ],
)
def test_condition_table(condition: str, holds: bool, matched: int) -> None:
    result = evaluate(condition, COLUMNS, ROWS)
    assert (result.holds, result.matched) == (holds, matched)


def test_decimal_cells_compare_exactly() -> None:
    rows = [(Decimal("50.10"),), (Decimal("50.0"),)]
    assert evaluate("total > 50.1", ["total"], rows).matched == 0
    assert evaluate("total >= 50.1", ["total"], rows).matched == 1
    # A float that prints as 50.1 is 50.1, not 50.100000000000001...
    assert evaluate("total > 50.1", ["total"], [(50.1,)]).holds is False
    assert evaluate("n > 2", ["n"], [(3,), (True,)]).matched == 1
    # Numeric text (SQLite NUMERIC, MySQL DECIMAL as text) compares as a number.
    assert evaluate("n > 9", ["n"], [("10",), ("abc",)]).matched == 1


def test_reasons_say_why() -> None:
    assert evaluate("waste_kg > 50", COLUMNS, ROWS).reason == (
        "condition holds: 1 row with waste_kg > 50"
    )
    assert evaluate("waste_kg > 100", COLUMNS, ROWS).reason == (
        "condition does not hold: no row with waste_kg > 100 (3 rows checked)"
    )
    assert evaluate("rows", COLUMNS, ROWS).reason == "condition holds: the query returned 3 rows"
    assert evaluate("rows", COLUMNS, []).reason == (
        "condition does not hold: the query returned no rows"
    )
    assert evaluate("waste_kg>50", COLUMNS, ROWS * 2).reason == (
        "condition holds: 2 rows with waste_kg > 50"
    )


def test_missing_column_names_the_columns_there_are() -> None:
    with pytest.raises(JobError) as caught:
        evaluate("weight > 50", COLUMNS, ROWS)
    assert str(caught.value) == (
        "the condition names the column 'weight', but the query returns "
        "floor, waste_kg, logged_on"
    )
    assert caught.value.retryable is False


def test_parse_condition() -> None:
    parsed = parse_condition("  waste_kg>=50.5 ")
    assert (parsed.column, parsed.op, parsed.value) == ("waste_kg", ">=", Decimal("50.5"))
    assert parse_condition("rows").column is None
    with pytest.raises(JobError, match="bad condition"):
        parse_condition("waste_kg ~ 5")


def test_a_boolean_column_compares_as_the_exports_write_it() -> None:
    from dbcron.jobs.alert import evaluate

    assert evaluate("late == true", ["late"], [(True,), (False,)]).matched == 1
    assert evaluate("late != true", ["late"], [(True,), (True,)]).holds is False
