"""The task model: one definition behind YAML files, tasks.json import, prompts and the store.

Validation happens here once; the store keeps `Task.to_data()` (plain JSON), and
readers that only need the schedule (`list`, `next`) use that data without
importing pydantic, which keeps the CLI fast.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
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

from dbcron import cells, cron, durations, sources
from dbcron.vocabulary import (
    Catchup,
    ChannelType,
    CsvEncoding,
    CsvFormulas,
    DstGap,
    DstOverlap,
    Format,
    Kind,
    OnHoliday,
    Overlap,
    ReadyThen,
    SendRule,
    Weekday,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
EARLIEST_AT_YEAR = 2000
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

    gap: DstGap = "shift"
    overlap: DstOverlap = "first"


class Calendar(_Strict):
    """Which days are business days: not a weekend day, a public holiday or a listed closure."""

    country: str | None = Field(None, description="ISO 3166 code, e.g. GB, US, DE, IN")
    subdivision: str | None = Field(None, description="state, province or nation, e.g. ENG")
    holidays: list[date] = Field(default_factory=list, description="extra closed days")
    weekend: list[Weekday] = Field(
        default_factory=lambda: ["sat", "sun"]  # type: ignore[arg-type]
    )

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        supported = _countries()
        if value.upper() not in supported:
            raise ValueError(
                f"unknown country {value!r}: use an ISO 3166 code the holidays library knows, "
                f"e.g. GB, US, DE, FR, IN ({len(supported)} supported)"
            )
        return value.upper()

    @field_validator("weekend")
    @classmethod
    def _weekend(cls, value: list[str]) -> list[str]:
        value = list(dict.fromkeys(value))
        if len(value) == 7:
            raise ValueError("a weekend of all seven days leaves no business day")
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: list[date]) -> list[date]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _subdivision(self) -> Calendar:
        if self.subdivision is None:
            return self
        if self.country is None:
            raise ValueError("subdivision needs a country (e.g. country: GB, subdivision: ENG)")
        known = _countries()[self.country]
        if self.subdivision.upper() not in [s.upper() for s in known]:
            valid = ", ".join(known) if known else "none: leave subdivision out"
            raise ValueError(f"unknown subdivision {self.subdivision!r} of {self.country}: "
                             f"valid: {valid}")
        return self


def _countries() -> dict[str, list[str]]:
    # Imported here: only tasks that name a country pay for the holidays package.
    import holidays

    return dict(holidays.list_supported_countries())


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
    calendar: Calendar | None = Field(None, description="business days for a cron schedule")
    on_holiday: OnHoliday | None = Field(None, description="a cron day that is closed; "
                                         "default skip")
    business_day: int | None = Field(
        None, ge=-23, le=23, description="the Nth business day of the month; -1 = the last"
    )
    business_days: Literal["all"] | None = Field(None, description="every business day")

    @field_validator("business_day")
    @classmethod
    def _business_day(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("count from 1 (the first business day) or from -1 (the last)")
        return value

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
        self._check_days()
        return self

    def _check_days(self) -> None:
        rules = [k for k in ("on_holiday", "business_day", "business_days")
                 if getattr(self, k) is not None]
        if self.calendar is None:
            if rules:
                raise ValueError(f"{rules[0]} needs a calendar, e.g. calendar: {{country: GB}} "
                                 "(calendar: {} means weekends only)")
            return
        if self.cron is None:
            raise ValueError("a calendar works with cron (it picks days; cron gives the time), "
                             "e.g. cron: '0 9 * * *'")
        if self.business_day is not None and self.business_days is not None:
            raise ValueError("give business_day or business_days, not both")
        if self.business_day is not None and self.on_holiday is not None:
            raise ValueError("on_holiday does not apply with business_day: "
                             "the Nth business day is never a holiday")
        if self.business_day is not None or self.business_days is not None:
            parsed = cron.parse_cron(self.cron)
            if parsed.days != frozenset(range(1, 32)) or len(parsed.weekdays) != 7:
                field = "business_day" if self.business_day is not None else "business_days"
                raise ValueError(f"{field} picks the days: write the cron's day-of-month and "
                                 f"day-of-week as * (e.g. '0 9 * * *'), got {self.cron!r}")


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

    catchup: Catchup = "latest"
    grace: Duration = timedelta(hours=1)
    overlap: Overlap = "skip"
    timeout: Duration = timedelta(minutes=15)
    retries: int = Field(0, ge=0, le=10)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value


class Column(_Strict):
    """How one result column is shown in the files and the mail."""

    format: str | None = Field(
        None, description='Excel number format code, e.g. "#,##0.00", "0.0%", "yyyy-mm-dd"'
    )
    label: str | None = Field(None, description="header text instead of the column name")
    wrap: bool = Field(False, description="PDF: wrap long text onto more lines, not cut it")

    @field_validator("format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value is not None:
            cells.parse_format(value)
        return value


class Csv(_Strict):
    """CSV bytes: UTF-8 with a BOM opens right in Excel and LibreOffice by a double-click."""

    encoding: CsvEncoding = "utf-8-sig"
    delimiter: str = Field(",", min_length=1, max_length=1)
    formulas: CsvFormulas = Field(
        "escape",
        description="escape: text starting with = + - @ tab or CR gets a leading ' so a "
        "spreadsheet shows it instead of running it (OWASP); keep: write it as stored",
    )

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if value in ('"', "\r", "\n") or value.isalnum():
            raise ValueError(f"delimiter {value!r} cannot be used: use one of , ; | or a tab")
        return value


class Export(_Strict):
    formats: list[Format] = Field(
        default_factory=lambda: ["xlsx"]  # type: ignore[arg-type]
    )
    filename: str = "{{ task }}-{{ today }}"
    title: str | None = None
    columns: dict[str, Column] = Field(default_factory=dict)
    csv: Csv = Csv()

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


class OnlyNew(_Strict):
    """Mail only rows whose key was not in an earlier mail of this task."""

    key: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description="the columns that identify a row, e.g. [order_id]"
    )


class Email(_Strict):
    # Required unless the task bursts (then each mail goes to its rows' address).
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(default_factory=list)
    subject: str | None = None
    body: str | None = Field(None, description="Jinja2 template; default: summary and rows")
    send: SendRule = "always"
    only_new: OnlyNew | None = None


class Burst(_Strict):
    """One mail and file set per distinct value of `column`, each with only its rows."""

    column: str = Field(min_length=1, description="the result column holding the address")
    max: int = Field(100, ge=1, le=10_000,
                     description="at most this many recipients per run; the rest fail")


class Notify(_Strict):
    on_failure: list[Address] = Field(default_factory=list)


class Ready(_Strict):
    """Hold a run until its data is there: a query that must hold, tasks that must succeed."""

    query: str | None = Field(None, description="read-only; true first column of the first "
                              "row opens the gate; binds the task's params")
    after: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(
        default_factory=list, description="tasks that must succeed for the same date first")
    every: Duration = timedelta(minutes=5)
    until: Duration = timedelta(hours=2)
    then: ReadyThen = "skip"

    @field_validator("every")
    @classmethod
    def _every(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @model_validator(mode="after")
    def _something(self) -> Ready:
        if self.query is None and not self.after:
            raise ValueError("give a query that must hold, after: [tasks], or both")
        if self.query is not None and not self.query.strip():
            raise ValueError("query is empty")
        return self


# Header names whose values are credentials: they must come from ${VAR}, never the store.
SECRET_HEADER = re.compile(r"(?i)authorization|token|key|secret|signature|cookie|password")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
WHOLE_ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
PLAIN_URL = re.compile(r"^https?://[^/@\s?#]+(/[^\s?#]*)?$")


def _readable_secrets(text: str) -> None:
    problem = sources.secret_problem(text)
    if problem:
        raise ValueError(problem)


class Signing(_Strict):
    """HMAC-SHA256 over "<timestamp>.<body>", so a receiver can tell the POST is ours."""

    secret: str = Field(description="${VAR} holding the shared secret")
    header: str = "X-Dbcron-Signature"

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if not WHOLE_ENV_REF.match(value):
            raise ValueError("give the secret as ${VAR}; secrets never enter the store")
        _readable_secrets(value)
        return value


class Channel(_Strict):
    """One place a run's result is posted to: a JSON webhook, Slack or Teams."""

    type: ChannelType
    name: str | None = Field(None, pattern=NAME_PATTERN, max_length=64,
                             description="label in history and errors; default: the type")
    url: str = Field(description="${VAR} (chat webhook URLs are secrets) or an http(s) URL")
    title: str | None = Field(None, description="slack/teams: Jinja2; default: the subject")
    body: str | None = Field(None, description="webhook: Jinja2 rendering a JSON document")
    headers: dict[str, str] = Field(default_factory=dict, description="webhook: extra headers")
    sign: Signing | None = None
    send: SendRule = "always"
    rows: int = Field(10, ge=0, le=50, description="slack/teams: first rows shown as a table")
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(2, ge=0, le=5, description="retries of this delivery only")

    @property
    def label(self) -> str:
        return self.name or self.type

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=5):
            raise ValueError("must be from 1s to 5m")
        return value

    @model_validator(mode="after")
    def _fits_type(self) -> Channel:
        if self.type != "webhook":
            for name in ("body", "headers", "sign"):
                if getattr(self, name):
                    raise ValueError(f"'{name}' is for type webhook, not {self.type}")
            if not WHOLE_ENV_REF.match(self.url):
                raise ValueError(
                    f"url: give the {self.type} webhook URL as ${{VAR}}: the URL itself is "
                    "the secret and never enters the store"
                )
        elif not WHOLE_ENV_REF.match(self.url) and not PLAIN_URL.match(self.url):
            raise ValueError("url: use ${VAR}, or an http(s) URL without a user, password or "
                             "query string (a token in the URL belongs in ${VAR})")
        if self.type == "webhook" and self.title:
            raise ValueError("'title' is for slack and teams; a webhook's 'body' says it all")
        for text in (self.url, *self.headers.values()):
            _readable_secrets(text)
        for header, value in self.headers.items():
            if SECRET_HEADER.search(header) and not ENV_REF.search(value):
                raise ValueError(
                    f"headers.{header}: a credential must come from ${{VAR}} "
                    f"(e.g. '{header}: Bearer ${{HOOK_TOKEN}}'); secrets never enter the store"
                )
        return self


class Monitor(_Strict):
    """A dead-man's switch: pings a healthchecks-compatible URL at start, success and fail,
    so the monitor alerts when a run fails or never comes."""

    url: str = Field(description="${VAR} holding the ping URL, e.g. https://hc-ping.com/<uuid>")
    timeout: Duration = timedelta(seconds=5)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not WHOLE_ENV_REF.match(value):
            raise ValueError("give the ping URL as ${VAR}: whoever knows it can ping, so it is "
                             "a secret and never enters the store")
        _readable_secrets(value)
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(seconds=30):
            raise ValueError("must be from 1s to 30s")
        return value


_KIND_FIELDS: dict[Kind, set[str]] = {
    "report": {"source", "query", "params", "export", "email", "row_limit", "deliver",
               "burst"},
    "alert": {"source", "query", "params", "condition", "email", "export", "row_limit",
              "deliver"},
    "sql": {"source", "statements", "params", "max_rows_affected"},
    "call": {"call", "args", "kwargs"},
}
_REQUIRED: dict[Kind, tuple[str, ...]] = {
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
    kind: Kind
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
    burst: Burst | None = None
    notify: Notify = Notify()
    monitor: Monitor | None = None
    deliver: list[Channel] = Field(default_factory=list,
                                   description="webhooks, Slack, Teams (mail is 'email')")
    ready: Ready | None = None
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

    @field_validator("deliver")
    @classmethod
    def _unique_channels(cls, value: list[Channel]) -> list[Channel]:
        labels = [c.label for c in value]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"two channels are called {', '.join(twice)}: give each a 'name'")
        return value

    @model_validator(mode="after")
    def _ready(self) -> Task:
        if self.ready is None:
            return self
        if self.ready.query is not None and self.kind == "call":
            raise ValueError("ready.query needs a source: a call task can wait only "
                             "for other tasks (ready: {after: [...]})")
        if self.name in self.ready.after:
            raise ValueError(f"ready.after: a task cannot wait for itself ('{self.name}')")
        return self

    @model_validator(mode="after")
    def _fits_kind(self) -> Task:
        for name in _REQUIRED[self.kind]:
            if getattr(self, name) in (None, [], ""):
                raise ValueError(f"a {self.kind} task needs '{name}'")
        if self.email is not None and self.burst is None and not self.email.to:
            raise ValueError("email.to: give at least one address")
        if self.burst is not None:
            if self.email is None:
                raise ValueError("burst: mails each recipient, so the task needs 'email' "
                                 "(subject, body, send; leave out to, cc and bcc)")
            if self.email.to or self.email.cc or self.email.bcc:
                raise ValueError("burst: each mail goes only to the address in column "
                                 f"'{self.burst.column}'; leave out email.to, cc and bcc so "
                                 "nobody sees rows that are not theirs")
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
        """Environment variables this task reads at run time (its source's, its channels')."""
        refs = sources.variables(self.source) if self.source else []
        if self.monitor is not None:
            refs += [r for r in ENV_REF.findall(self.monitor.url) if r not in refs]
        for channel in self.deliver:
            texts = [channel.url, *channel.headers.values(), channel.sign.secret if
                     channel.sign else ""]
            refs += [ref for text in texts for ref in ENV_REF.findall(text) if ref not in refs]
        return refs


def json_schema() -> dict[str, Any]:
    """Published so editors can complete tasks/*.yaml."""
    schema = Task.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dbcron task"
    return schema
