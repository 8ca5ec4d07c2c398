"""The task model: one definition behind YAML files, tasks.json import, prompts and the store.

Validation happens here once; the store keeps `Task.to_data()` (plain JSON), and
readers that only need the schedule (`list`, `next`) use that data without
importing pydantic, which keeps the CLI fast.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from dbcron import sources
from dbcron.model.base import CONDITION, EARLIEST_AT_YEAR, NAME_PATTERN, Duration, _Strict
from dbcron.model.delivery import (
    ENV_REF,
    Burst,
    Changes,
    Channel,
    Column,
    Csv,
    Deliver,
    Email,
    Export,
    MailChannel,
    Monitor,
    Notify,
    OnlyNew,
    Signing,
)
from dbcron.model.schedule import Calendar, Dst, Policy, Ready, Schedule, check_timezone
from dbcron.vocabulary import Kind

__all__ = [
    "CONDITION", "EARLIEST_AT_YEAR", "NAME_PATTERN", "Burst", "Calendar", "Changes",
    "Channel", "Column", "Csv", "Deliver", "Dst", "Duration", "Email", "Export", "MailChannel",
    "Monitor", "Notify", "OnlyNew", "Policy", "Ready", "Schedule", "Signing", "Task",
    "check_timezone", "json_schema",
]


_RESERVED_MAIL_NAME = re.compile(r"mail-part\d+|dry-run")

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
    deliver: list[Deliver] = Field(
        default_factory=list,
        description="webhooks, Slack, Teams, and mails for other audiences ('email' is the "
        "primary mail)")
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
    def _unique_channels(cls, value: list[Channel | MailChannel]
                         ) -> list[Channel | MailChannel]:
        labels = [c.label for c in value]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"two channels are called {', '.join(twice)}: give each a 'name'")
        return value

    @model_validator(mode="after")
    def _mail_entries(self) -> Task:
        for i, entry in enumerate(self.deliver):
            if not isinstance(entry, MailChannel):
                continue
            if self.email is not None and entry.label == "mail":
                raise ValueError(f"deliver.{i}: 'mail' is what history and resend call the "
                                 "task's email:; give this mail a name of its own, e.g. "
                                 "name: summary")
            # These names are taken: a split mail keeps part k as mail-partk.eml, and a dry
            # run's previews have the Message-ID <task>.dry-run.
            if _RESERVED_MAIL_NAME.fullmatch(entry.label):
                raise ValueError(f"deliver.{i}: the name '{entry.label}' is taken by the "
                                 "task's own mail (its parts or dry-run previews); give this "
                                 "mail another name, e.g. name: summary")
        return self

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
            if self.email.too_large == "split":
                raise ValueError("email.too_large: split is for one report mail, not a burst "
                                 "(each recipient's files are zipped or left out with a "
                                 "note); use zip, the default")
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
            if isinstance(channel, MailChannel):
                continue
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
