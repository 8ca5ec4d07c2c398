"""How a cell reads to a person: numbers without float noise, column formats, widths.

One source for the csv, pdf and mail writers, so a report's files and its mail
show the same digits:

- a float is shown as the shortest text that reads back as the same float
  once rounded to 15 significant digits (Excel's precision), so a sum stored
  as ``230.98000000000002`` reads ``230.98`` and ``5.0`` reads ``5``;
- a Decimal keeps its scale (``12.50`` stays ``12.50``, never ``1.25E+1``);
- a column ``format`` is an Excel number format code, a subset that also has
  a text rendering here (``#,##0.00``, ``0.0%``, ``"$"#,##0;("$"#,##0)``,
  ``yyyy-mm-dd``, ``dd.mm.yyyy hh:mm``); the xlsx writer stores the code
  itself, so Excel applies it to the real number.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

FORMAT_EXAMPLES = '"#,##0.00", "0.0%", "0", "yyyy-mm-dd", "dd.mm.yyyy hh:mm"'
# Characters Excel shows as themselves in a format code without quotes.
_LITERALS = set("$-+/():!^&'~{}<>=  €£¥,.")
_DATE_TOKEN = re.compile(r"yyyy|yy|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|AM/PM", re.IGNORECASE)
_MONTHS = [dt.date(2000, m, 1).strftime("%B") for m in range(1, 13)]
_DAYS = [dt.date(2000, 1, d).strftime("%A") for d in range(3, 10)]  # 2000-01-03 is a Monday


def plain_text_number(value: float | Decimal | int) -> str:
    """A number without float noise: see the module docstring."""
    if isinstance(value, float):
        # Two decimals of at most 15 digits never share a double, so the 15-digit
        # rounding with trailing zeros dropped is already the shortest text that
        # reads back as the rounded float (5.0 reads "5", 1e20 "1e+20"), and costs
        # no more than repr().
        return f"{value:.15g}"
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    return str(value)


def is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


@dataclass(frozen=True)
class _Section:
    prefix: str
    suffix: str
    grouping: bool
    min_int: int
    min_dec: int
    max_dec: int
    percent: bool
    digits: bool = True  # False: a literal-only section, such as "-" for zero


@dataclass(frozen=True)
class NumberFormat:
    """A parsed format code; ``render`` gives the text, or None when it does not apply."""

    code: str
    sections: tuple[_Section, ...] = ()
    date_parts: tuple[str, ...] = ()  # tokens and literals of a date format

    @property
    def is_date(self) -> bool:
        return bool(self.date_parts)

    def render(self, value: object) -> str | None:
        if self.is_date:
            if isinstance(value, dt.date | dt.time):
                return self._render_date(value)
            return None
        if not is_number(value) or not self.sections:
            return None
        assert isinstance(value, int | float | Decimal)
        number = Decimal(plain_text_number(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite():
            return None
        section = self.sections[0]
        if number < 0 and len(self.sections) > 1:
            section, number = self.sections[1], -number
        elif number == 0 and len(self.sections) > 2:
            section = self.sections[2]
        return _render_number(section, number)

    def _render_date(self, value: dt.date | dt.time) -> str:
        twelve = "tok:am/pm" in (p.lower() for p in self.date_parts)
        return "".join(
            part[4:] if part.startswith("lit:") else _date_token(value, part[4:].lower(), twelve)
            for part in self.date_parts
        )


def _date_token(value: dt.date | dt.time, token: str, twelve: bool) -> str:
    day = value if isinstance(value, dt.date) else None
    clock = value if isinstance(value, dt.datetime | dt.time) else None
    if token in ("yyyy", "yy", "mmmm", "mmm", "mm", "m", "dddd", "ddd", "dd", "d"):
        if day is None:
            return ""
        return {
            "yyyy": f"{day.year:04d}",
            "yy": f"{day.year % 100:02d}",
            "mmmm": _MONTHS[day.month - 1],
            "mmm": _MONTHS[day.month - 1][:3],
            "mm": f"{day.month:02d}",
            "m": str(day.month),
            "dddd": _DAYS[day.weekday()],
            "ddd": _DAYS[day.weekday()][:3],
            "dd": f"{day.day:02d}",
            "d": str(day.day),
        }[token]
    hour = clock.hour if clock else 0
    if token in ("min", "mmin"):
        minute = clock.minute if clock else 0
        return f"{minute:0{len(token) - 2}d}"
    if token == "am/pm":
        return "AM" if hour < 12 else "PM"
    if token in ("h", "hh"):
        if twelve:
            hour = hour % 12 or 12
        return f"{hour:0{len(token)}d}"
    second = clock.second if clock else 0
    return f"{second:0{len(token)}d}"


def _render_number(section: _Section, number: Decimal) -> str:
    if not section.digits:
        return section.prefix
    if section.percent:
        number *= 100
    negative = number < 0
    number = abs(number).quantize(Decimal(1).scaleb(-section.max_dec), rounding=ROUND_HALF_UP)
    digits = format(number, "f")
    whole, _, frac = digits.partition(".")
    frac = frac.rstrip("0").ljust(section.min_dec, "0")
    whole = whole.lstrip("0").rjust(section.min_int, "0")
    if section.grouping:
        whole = f"{int(whole or 0):,}" if whole else ""
    text = whole + ("." + frac if frac else "")
    if negative and text.strip("0.,"):
        text = "-" + text
    return section.prefix + text + section.suffix


def parse_format(code: str) -> NumberFormat:
    """Parse an Excel format code of the supported subset, or raise ValueError saying why."""
    if not code.strip():
        raise ValueError(f"an empty format: use a code such as {FORMAT_EXAMPLES}")
    if code.strip().lower() == "general":
        return NumberFormat(code)
    if "[" in code:
        raise ValueError(
            f"format {code!r}: colours and locale codes in [...] are not supported; "
            f"use a code such as {FORMAT_EXAMPLES}"
        )
    plain = re.sub(r'"[^"]*"|\\.', "", code)
    if _DATE_TOKEN.search(re.sub(r"(?i)e[+-]", "", plain)) and not re.search(r"[0#?]", plain):
        return NumberFormat(code, date_parts=_parse_date(code))
    sections = code.split(";")
    if len(sections) > 3:
        raise ValueError(f"format {code!r}: at most 3 sections (positive;negative;zero)")
    return NumberFormat(
        code, sections=tuple(_parse_section(code, s, i > 0) for i, s in enumerate(sections))
    )


def _parse_date(code: str) -> tuple[str, ...]:
    parts: list[str] = []
    i = 0
    while i < len(code):
        ch = code[i]
        if ch == '"':
            end = code.find('"', i + 1)
            if end < 0:
                raise ValueError(f"format {code!r}: a quote is not closed")
            parts.append("lit:" + code[i + 1 : end])
            i = end + 1
        elif ch == "\\" and i + 1 < len(code):
            parts.append("lit:" + code[i + 1])
            i += 2
        elif match := _DATE_TOKEN.match(code, i):
            parts.append("tok:" + match.group())
            i = match.end()
        elif ch in _LITERALS or ch in " .:T,-/":
            parts.append("lit:" + ch)
            i += 1
        else:
            raise ValueError(
                f"format {code!r}: {ch!r} is not a date code (yyyy yy mmmm mmm mm m dddd ddd "
                f"dd d hh h mm ss AM/PM); quote literal text, e.g. \"at\""
            )
    return _minutes(parts)


def _minutes(parts: list[str]) -> tuple[str, ...]:
    """Excel reads m/mm as minutes right after an hour or right before seconds."""
    tokens = [i for i, p in enumerate(parts) if p.startswith("tok:")]
    for n, i in enumerate(tokens):
        token = parts[i][4:].lower()
        if token not in ("m", "mm"):
            continue
        before = parts[tokens[n - 1]][4:].lower() if n else ""
        after = parts[tokens[n + 1]][4:].lower() if n + 1 < len(tokens) else ""
        if before in ("h", "hh") or after in ("s", "ss"):
            parts[i] = "tok:" + ("min" if token == "m" else "mmin")
    return tuple(parts)


def _parse_section(code: str, section: str, literal_ok: bool) -> _Section:
    prefix: list[str] = []
    suffix: list[str] = []
    pattern: list[str] = []
    percent = False
    i = 0
    while i < len(section):
        ch = section[i]
        target = suffix if pattern else prefix
        if ch == '"':
            end = section.find('"', i + 1)
            if end < 0:
                raise ValueError(f"format {code!r}: a quote is not closed")
            target.append(section[i + 1 : end])
            i = end + 1
            continue
        if ch == "\\" and i + 1 < len(section):
            target.append(section[i + 1])
            i += 2
            continue
        if ch in "0#?" or (ch in ",." and pattern and not suffix):
            pattern.append(ch)
        elif ch == "%":
            percent = True
            suffix.append("%")
        elif ch in "eE" and section[i + 1 : i + 2] in ("+", "-"):
            raise ValueError(
                f"format {code!r}: scientific notation is not supported; "
                f"use a code such as {FORMAT_EXAMPLES}"
            )
        elif ch == "." and not pattern:
            pattern.append(ch)
        elif ch in _LITERALS:
            target.append(ch)
        else:
            raise ValueError(
                f"format {code!r}: {ch!r} is not a number format code (0 # ? , . %); "
                f'quote literal text, e.g. "kg"; examples: {FORMAT_EXAMPLES}'
            )
        i += 1
    text = "".join(pattern)
    if not text.strip(",.") and literal_ok:
        return _Section("".join(prefix + suffix), "", False, 0, 0, 0, percent, digits=False)
    if not text.strip(",."):
        raise ValueError(
            f"format {code!r}: no digit placeholder (0 or #); examples: {FORMAT_EXAMPLES}"
        )
    if text.endswith(","):
        raise ValueError(f"format {code!r}: scaling by a trailing comma is not supported")
    whole, _, frac = text.partition(".")
    frac_digits = frac.replace(",", "")
    return _Section(
        prefix="".join(prefix),
        suffix="".join(suffix),
        grouping="," in whole,
        min_int=whole.count("0"),
        min_dec=len(frac_digits) - len(frac_digits.lstrip("0")),
        max_dec=len(frac_digits),
        percent=percent,
    )


def display_width(text: str) -> int:
    """Columns ``text`` takes in a monospaced font: East-Asian wide characters take two,
    combining marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def split_at_point(text: str) -> tuple[str, str]:
    """(integer part, the rest from the decimal point) so numbers line up on the point.

    Without a point the split falls after the last digit (``12%`` -> ``12``, ``%``).
    """
    point = text.find(".")
    if point < 0:
        point = len(text)
        while point and not text[point - 1].isdigit():
            point -= 1
        point = point or len(text)
    return text[:point], text[point:]


def align_on_point(texts: Sequence[str]) -> list[str]:
    """Pad numbers' texts so their decimal points (or last digits) fall in one column."""
    parts = [split_at_point(t) if t else ("", "") for t in texts]
    head = max((display_width(h) for h, _ in parts), default=0)
    tail = max((display_width(t) for _, t in parts), default=0)
    return [
        " " * (head - display_width(h)) + h + t + " " * (tail - display_width(t)) if h or t else ""
        for h, t in parts
    ]


__all__ = [
    "NumberFormat",
    "align_on_point",
    "display_width",
    "is_number",
    "parse_format",
    "plain_text_number",
    "split_at_point",
]
