"""When a task runs: its schedule (cron, every, at; calendars, DST), policy and data-ready gate."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from dbcron import cron
from dbcron.model.base import EARLIEST_AT_YEAR, NAME_PATTERN, Duration, _Strict
from dbcron.vocabulary import (
    Catchup,
    DstGap,
    DstOverlap,
    OnHoliday,
    Overlap,
    ReadyThen,
    Weekday,
)


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




class Ready(_Strict):
    """Hold a run until its data is there: a query that must hold, tasks that must succeed,
    a ready signal the loading job sends (all that are given must hold)."""

    query: str | None = Field(None, description="read-only; true first column of the first "
                              "row opens the gate; binds the task's params")
    after: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(
        default_factory=list, description="tasks that must succeed for the same date first")
    signal: bool = Field(False, description="wait for a ready signal for the slot's date "
                         "(POST /api/v1/tasks/{name}/ready or 'manage-tasks ready NAME')")
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
        if self.query is None and not self.after and not self.signal:
            raise ValueError("give a query that must hold, after: [tasks], signal: true, "
                             "or several of them")
        if self.query is not None and not self.query.strip():
            raise ValueError("query is empty")
        return self
