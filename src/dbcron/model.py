"""The task model: one definition behind YAML files, tasks.json import, prompts and the store.

Validation happens here once; the store keeps `Task.to_data()` (plain JSON), and
readers that only need the schedule (`list`, `next`) use that data without
importing pydantic, which keeps the CLI fast.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from dbcron import cron, durations, sources

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
EARLIEST_AT_YEAR = 2000
KINDS = ("report", "sql", "alert", "call")
FORMATS = ("xlsx", "pdf", "csv")
CONDITION = re.compile(
    r"^\s*(?P<column>[A-Za-z_]\w*)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[^<>=!\s].*?)\s*$"
)

Duration = Annotated[
    timedelta,
    BeforeValidator(durations.parse_duration),
    PlainSerializer(durations.format_duration, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\s*(\d+\s*[smhdw]\s*)+$", "examples": ["30s", "15m", "2h"]}
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dst(_Strict):
    """What a wall time that DST skips or repeats does."""

    gap: Literal["shift", "skip"] = "shift"
    overlap: Literal["first", "both"] = "first"


class Schedule(_Strict):
    """When: exactly one of cron, every, at; times without offset are in `timezone`."""

    cron: str | None = None
    every: Duration | None = None
    at: datetime | None = None
    timezone: str | None = Field(None, description="IANA zone; default DBCRON_TIMEZONE (UTC)")
    jitter: Duration = timedelta(0)
    start: datetime | None = None
    end: datetime | None = None
    max_runs: int | None = Field(None, ge=1, description="stop after N successful runs")
    dst: Dst = Dst()

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            cron.parse_cron(value)
        return value

    @field_validator("every")
    @classmethod
    def _every(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            check_timezone(value)
        return value

    @field_validator("at")
    @classmethod
    def _at(cls, value: datetime | None) -> datetime | None:
        # A one-off that long past never fires and is surely a typo; a recent
        # past date is left to the catch-up policy (a run missed while down).
        if value is not None and value.year < EARLIEST_AT_YEAR:
            raise ValueError(
                f"{value.date().isoformat()} is before {EARLIEST_AT_YEAR}: the task would never "
                "run; give the date and time it should run, e.g. 2026-12-01T09:00"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        given = [k for k in ("cron", "every", "at") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of cron, every, at"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.start and self.end and _naive(self.end) <= _naive(self.start):
            raise ValueError("end must be after start")
        return self


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None) if value.tzinfo is None else value


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as UTC, Europe/London, "
            "America/New_York, Asia/Kolkata"
        ) from None


class Policy(_Strict):
    """How runs behave: catch-up after downtime, lateness, overlap, timeout, retries."""

    catchup: Literal["none", "latest", "all"] = "latest"
    grace: Duration = timedelta(hours=1)
    overlap: Literal["skip", "queue", "allow"] = "skip"
    timeout: Duration = timedelta(minutes=15)
    retries: int = Field(0, ge=0, le=10)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value


class CsvOptions(_Strict):
    """How CSV files are written."""

    formulas: Literal["escape", "keep"] = Field(
        "escape",
        description="escape: text starting with = + - @ tab or CR gets a leading ' so a "
        "spreadsheet shows it instead of running it (OWASP); keep: write it as stored",
    )


class Export(_Strict):
    formats: list[Literal["xlsx", "pdf", "csv"]] = Field(
        default_factory=lambda: ["xlsx"]  # type: ignore[arg-type]
    )
    filename: str = "{{ task }}-{{ today }}"
    title: str | None = None
    csv: CsvOptions = CsvOptions()

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one of xlsx, pdf, csv")
        return list(dict.fromkeys(value))


_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")


def _plain_address(value: str) -> str:
    # Mail headers may carry RFC 2047 encoded-words, addresses may not: the
    # sender refuses it at every run, so refuse it once, here.
    if _ENCODED_WORD.search(value):
        raise ValueError(
            f"{value!r} holds an encoded-word (=?charset?q?...?=), which an address cannot "
            "hold; write the plain address, e.g. boss@example.com"
        )
    return value


Address = Annotated[
    str,
    Field(pattern=r"^[^@\s,;<>\r\n]+@[^@\s,;<>\r\n]+$"),
    AfterValidator(_plain_address),
]


class Email(_Strict):
    to: list[Address] = Field(min_length=1)
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(default_factory=list)
    subject: str | None = None
    body: str | None = Field(None, description="Jinja2 template; default: summary and rows")
    send: Literal["always", "if_rows", "if_empty"] = "always"


class Notify(_Strict):
    on_failure: list[Address] = Field(default_factory=list)


_KIND_FIELDS: dict[str, set[str]] = {
    "report": {"source", "query", "params", "export", "email", "row_limit"},
    "alert": {"source", "query", "params", "condition", "email", "export", "row_limit"},
    "sql": {"source", "statements", "params", "max_rows_affected"},
    "call": {"call", "args", "kwargs"},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "report": ("source", "query"),
    "alert": ("source", "query", "condition", "email"),
    "sql": ("source", "statements"),
    "call": ("call",),
}
_OPTIONAL_KIND_FIELDS = {f for fields in _KIND_FIELDS.values() for f in fields}


class Task(_Strict):
    """A scheduled unit of work; `kind` decides which of the later fields apply."""

    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    description: str = ""
    kind: Literal["report", "sql", "alert", "call"]
    enabled: bool = True
    schedule: Schedule
    policy: Policy = Policy()
    source: str | None = Field(
        None,
        description="a named source (sales = $DBCRON_SOURCE_SALES) or a SQLAlchemy URL "
        "without a password, whose ${VAR} references the operator allowed",
    )
    query: str | None = None
    statements: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    row_limit: int | None = Field(None, ge=1)
    max_rows_affected: int | None = Field(None, ge=0)
    condition: str | None = Field(None, description="'rows' or 'column op value'")
    export: Export | None = None
    email: Email | None = None
    notify: Notify = Notify()
    call: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("condition")
    @classmethod
    def _condition(cls, value: str | None) -> str | None:
        if value is not None and value.strip() != "rows" and not CONDITION.match(value):
            raise ValueError(
                f"bad condition {value!r}: use 'rows' (any row returned) or "
                "'column op value' with op one of < <= > >= == !=, e.g. 'waste_kg > 50'"
            )
        return value

    @field_validator("statements")
    @classmethod
    def _statements(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not [s for s in value if s.strip()]:
            raise ValueError("give at least one SQL statement")
        return value

    @model_validator(mode="after")
    def _fits_kind(self) -> Task:
        for name in _REQUIRED[self.kind]:
            if getattr(self, name) in (None, [], ""):
                raise ValueError(f"a {self.kind} task needs '{name}'")
        allowed = _KIND_FIELDS[self.kind]
        for name in sorted(_OPTIONAL_KIND_FIELDS - allowed):
            if name in self.model_fields_set and getattr(self, name) not in (None, [], {}):
                raise ValueError(
                    f"'{name}' is not used by a {self.kind} task "
                    f"(it takes: {', '.join(sorted(allowed))})"
                )
        return self

    def to_data(self) -> dict[str, Any]:
        """The JSON-ready form the store keeps and `show`/`export` print."""
        return self.model_dump(mode="json", exclude_defaults=True, exclude_none=True)

    def env_refs(self) -> list[str]:
        """Environment variables this task reads at run time (its source's)."""
        return sources.variables(self.source) if self.source else []


def json_schema() -> dict[str, Any]:
    """Published so editors can complete tasks/*.yaml."""
    schema = Task.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dbcron task"
    return schema
