"""What a run produces and where it goes: exports, mail, bursts, channels, monitors."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from dbcron import cells, sources
from dbcron.model.base import NAME_PATTERN, Duration, _Strict
from dbcron.vocabulary import (
    ChannelType,
    CsvEncoding,
    CsvFormulas,
    Format,
    SendRule,
    TooLarge,
)


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


ADDRESS_PATTERN = r"^[^@\s,;<>\r\n]+@[^@\s,;<>\r\n]+$"
Address = Annotated[
    str,
    Field(pattern=ADDRESS_PATTERN),
    AfterValidator(_plain_address),
]


class OnlyNew(_Strict):
    """Mail only rows whose key was not in an earlier mail of this task."""

    key: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description="the columns that identify a row, e.g. [order_id]"
    )


class Changes(_Strict):
    """How `send: if_changed` counts what changed: by key, a row whose values moved is one
    changed row rather than one removed and one added."""

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
    changes: Changes | None = None
    too_large: TooLarge = Field(
        "zip",
        description="attachments over DBCRON_MAX_ATTACHMENT_MB even zipped: zip (leave them "
        "out with a note) or split (several mails, each within the limit, files cut by rows)",
    )

    @model_validator(mode="after")
    def _changes_need_if_changed(self) -> Email:
        if self.changes is not None and self.send != "if_changed":
            raise ValueError(f"'changes' counts what changed since the last mail of send: "
                             f"if_changed, but send is '{self.send}': set send: if_changed, "
                             "or leave 'changes' out")
        return self


class Burst(_Strict):
    """One mail and file set per distinct value of `column`, each with only its rows."""

    column: str = Field(min_length=1, description="the result column holding the address")
    max: int = Field(100, ge=1, le=10_000,
                     description="at most this many recipients per run; the rest fail")


class Notify(_Strict):
    on_failure: list[Address] = Field(default_factory=list)




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


class MailChannel(_Strict):
    """A mail of its own in `deliver:`, for a second audience (`email:` stays the primary
    mail): its own recipients, subject, body and send rule, its own Message-ID per slot."""

    type: Literal["mail"]
    name: str | None = Field(None, pattern=NAME_PATTERN, max_length=64,
                             description="label in history, resend and its Message-ID; "
                             "default: mail")
    to: list[Address]
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(default_factory=list)
    subject: str | None = Field(None, description="Jinja2; default: the email: subject")
    body: str | None = Field(None, description="Jinja2 template; default: summary and rows")
    send: SendRule = "always"
    attach: bool = Field(True, description="false: this mail goes without the files (its "
                         "default body still names them)")

    @property
    def label(self) -> str:
        return self.name or self.type

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one address")
        return value


# One entry of `deliver:`: its `type` says which (webhook, slack, teams or mail).
Deliver = Annotated[Channel | MailChannel, Field(discriminator="type")]


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
