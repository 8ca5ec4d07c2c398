"""Templating: the slot's date variables as a pure table, and the sandbox's refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dbcron.errors import TemplateError
from dbcron.templating import render, render_params, variables

UTC_ZONE = ZoneInfo("UTC")
KOLKATA = ZoneInfo("Asia/Kolkata")
KEYS = (
    "today",
    "yesterday",
    "tomorrow",
    "week_start",
    "month_start",
    "last_month_start",
    "last_month_end",
    "year_start",
)


@pytest.mark.parametrize(
    ("slot", "tz", "expected"),
    [
        pytest.param(
            datetime(2026, 3, 1, 9, tzinfo=UTC), UTC_ZONE,
            ("2026-03-01", "2026-02-28", "2026-03-02", "2026-02-23",
             "2026-03-01", "2026-02-01", "2026-02-28", "2026-01-01"),
            id="first-of-march-after-short-february",
        ),
        pytest.param(
            datetime(2024, 3, 1, 9, tzinfo=UTC), UTC_ZONE,
            ("2024-03-01", "2024-02-29", "2024-03-02", "2024-02-26",
             "2024-03-01", "2024-02-01", "2024-02-29", "2024-01-01"),
            id="leap-year-march",
        ),
        pytest.param(
            datetime(2024, 2, 29, 12, tzinfo=UTC), UTC_ZONE,
            ("2024-02-29", "2024-02-28", "2024-03-01", "2024-02-26",
             "2024-02-01", "2024-01-01", "2024-01-31", "2024-01-01"),
            id="leap-day",
        ),
        pytest.param(
            datetime(2026, 1, 1, 0, 30, tzinfo=UTC), UTC_ZONE,
            ("2026-01-01", "2025-12-31", "2026-01-02", "2025-12-29",
             "2026-01-01", "2025-12-01", "2025-12-31", "2026-01-01"),
            id="new-year-week-starts-last-year",
        ),
        pytest.param(
            datetime(2026, 12, 31, 23, 0, tzinfo=UTC), UTC_ZONE,
            ("2026-12-31", "2026-12-30", "2027-01-01", "2026-12-28",
             "2026-12-01", "2026-11-01", "2026-11-30", "2026-01-01"),
            id="new-years-eve-utc",
        ),
        pytest.param(
            # 23:00 UTC on new year's eve is 04:30 on 1 January in Kolkata.
            datetime(2026, 12, 31, 23, 0, tzinfo=UTC), KOLKATA,
            ("2027-01-01", "2026-12-31", "2027-01-02", "2026-12-28",
             "2027-01-01", "2026-12-01", "2026-12-31", "2027-01-01"),
            id="new-years-eve-utc-is-new-year-in-kolkata",
        ),
        pytest.param(
            datetime(2026, 5, 31, 18, 29, tzinfo=UTC), KOLKATA,
            ("2026-05-31", "2026-05-30", "2026-06-01", "2026-05-25",
             "2026-05-01", "2026-04-01", "2026-04-30", "2026-01-01"),
            id="kolkata-one-minute-before-midnight",
        ),
        pytest.param(
            datetime(2026, 5, 31, 18, 30, tzinfo=UTC), KOLKATA,
            ("2026-06-01", "2026-05-31", "2026-06-02", "2026-06-01",
             "2026-06-01", "2026-05-01", "2026-05-31", "2026-01-01"),
            id="kolkata-midnight-new-month-monday",
        ),
    ],
)  # fmt: skip
def test_date_variables(slot: datetime, tz: ZoneInfo, expected: tuple[str, ...]) -> None:
    values = variables(slot, tz, "daily-sales")
    assert tuple(values[k] for k in KEYS) == expected


def test_now_slot_task_and_days_ago_are_in_the_task_zone() -> None:
    values = variables(datetime(2026, 3, 1, 3, 30, tzinfo=UTC), KOLKATA, "daily-sales")
    assert values["task"] == "daily-sales"
    assert values["now"] == "2026-03-01T09:00:00+05:30"
    assert values["slot"] == datetime(2026, 3, 1, 9, 0, tzinfo=KOLKATA)
    assert render("{{ days_ago(0) }} {{ days_ago(7) }} {{ days_ago(29) }}", values) == (
        "2026-03-01 2026-02-22 2026-01-31"
    )
    assert render("{{ slot.strftime('%B %Y') }} {{ task | upper }}", values) == (
        "March 2026 DAILY-SALES"
    )


def test_naive_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        variables(datetime(2026, 3, 1, 9), UTC_ZONE, "t")


VARS = variables(datetime(2026, 3, 1, 9, tzinfo=UTC), UTC_ZONE, "t")


def test_typo_is_an_error_naming_the_variable_and_the_template() -> None:
    with pytest.raises(TemplateError) as caught:
        render("Sales {{ yesteday }}", VARS, "subject")
    message = str(caught.value)
    assert message.startswith("subject 'Sales {{ yesteday }}': 'yesteday' is undefined")
    assert "yesterday" in message  # the known variables are listed


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ slot.__class__ }}", "access to attribute '__class__' of 'datetime' object is unsafe"),
        ("{{ days_ago.__globals__ }}", "access to attribute '__globals__'"),
        ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str'"),
        ("{{ task.__len__() }}", "access to attribute '__len__'"),
        ("{{ days_ago.__code__.co_consts }}", "access to attribute '__code__'"),
    ],
)
def test_sandbox_refuses_internals(template: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        render(template, VARS, "title")


def test_immutable_sandbox_refuses_mutation() -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render("{% set xs = [1] %}{{ xs.append(2) }}", VARS)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{% if %}", "syntax error on line 1"),
        ("{{ days_ago('x') }}", "days_ago() takes a whole number of days"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
    ],
)
def test_other_errors_say_what_is_wrong(template: str, problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, VARS, "filename")
    assert str(caught.value).startswith(f"filename {template!r}: ")
    assert problem in str(caught.value)


def test_params_render_strings_and_keep_other_values() -> None:
    params = {"day": "{{ yesterday }}", "limit": 10, "regions": ["a", "b"], "flag": True}
    assert render_params(params, VARS) == {
        "day": "2026-02-28",
        "limit": 10,
        "regions": ["a", "b"],
        "flag": True,
    }
    with pytest.raises(TemplateError) as caught:
        render_params({"day": "{{ nope }}"}, VARS)
    assert str(caught.value).startswith("param 'day' '{{ nope }}': 'nope' is undefined")
