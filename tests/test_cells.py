"""How cells read: numbers without float noise, format codes, widths, point alignment."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dbcron.cells import align_on_point, display_width, parse_format, plain_text_number


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (230.98000000000002, "230.98"),
        (1792.3900000000008, "1792.39"),
        (0.1 + 0.2, "0.3"),
        (5.0, "5"),
        (-0.5, "-0.5"),
        (123456789012345.67, "123456789012346"),
        (1e20, "1e+20"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
        (Decimal("12.50"), "12.50"),
        (Decimal("1E+2"), "100"),
        (Decimal("1E-7"), "0.0000001"),
        (42, "42"),
    ],
)
def test_plain_text_number(value: float | Decimal | int, text: str) -> None:
    assert plain_text_number(value) == text


@pytest.mark.parametrize(
    ("code", "value", "text"),
    [
        ("#,##0.00", 1792.3900000000008, "1,792.39"),
        ("#,##0.00", Decimal("-1234567.005"), "-1,234,567.01"),
        ("#,##0.00", 0, "0.00"),
        ("0", Decimal("12.5"), "13"),
        ("0.0%", 0.1234, "12.3%"),
        ("#,##0.0#", 3.0, "3.0"),
        ("#,##0.0#", 3.14159, "3.14"),
        ('"$"#,##0;("$"#,##0)', -1500, "($1,500)"),
        ('0.00 "kg"', 2.5, "2.50 kg"),
        ("#,##0;-#,##0;\"-\"", 0, "-"),
        ("yyyy-mm-dd", dt.date(2026, 11, 20), "2026-11-20"),
        ("dd.mm.yyyy hh:mm", dt.datetime(2026, 11, 20, 9, 5), "20.11.2026 09:05"),
        ("mmm d, yyyy", dt.date(2026, 1, 2), "Jan 2, 2026"),
        ("h:mm AM/PM", dt.time(15, 7), "3:07 PM"),
        ("mm:ss", dt.time(0, 4, 9), "04:09"),
        ("General", 1.5, None),
        ("#,##0.00", "text", None),
        ("yyyy-mm-dd", 12, None),
    ],
)
def test_format_renders_like_excel(code: str, value: object, text: str | None) -> None:
    assert parse_format(code).render(value) == text


EXAMPLES = '"#,##0.00", "0.0%", "0", "yyyy-mm-dd", "dd.mm.yyyy hh:mm"'


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", f"an empty format: use a code such as {EXAMPLES}"),
        ("0.0E+0", f"format '0.0E+0': scientific notation is not supported; "
         f"use a code such as {EXAMPLES}"),
        ("[Red]0", f"format '[Red]0': colours and locale codes in [...] are not supported; "
         f"use a code such as {EXAMPLES}"),
        ("0 kg", f"format '0 kg': 'k' is not a number format code (0 # ? , . %); "
         f'quote literal text, e.g. "kg"; examples: {EXAMPLES}'),
        ("#,##0,", "format '#,##0,': scaling by a trailing comma is not supported"),
        ("0;0;0;0", "format '0;0;0;0': at most 3 sections (positive;negative;zero)"),
    ],
)
def test_unsupported_formats_say_why(code: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_format(code)
    assert str(caught.value) == message


def test_display_width_counts_wide_characters_twice() -> None:
    assert display_width("東京") == 4
    assert display_width("Zürich") == 6
    assert display_width("मुंबई") == 3  # two vowel signs and a nasal mark take no column
    assert display_width("\uff34\uff4f\uff4b\uff59\uff4f") == 10  # fullwidth "Tokyo"


def test_align_on_point() -> None:
    assert align_on_point(["1.5", "230.98", "12", "", "7%"]) == [
        "  1.5 ",
        "230.98",
        " 12   ",
        "",
        "  7%  ",
    ]
