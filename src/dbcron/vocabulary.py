"""The words dbcron's parts share: kinds, formats, run statuses, triggers, policies.

Each is a `Literal` type, so the model, the store, the click choices and mypy
agree on one list; the tuples beside them are the same lists at run time (for
`click.Choice`, error messages and SQL filters), derived with `get_args` so they
cannot drift from the types. This module imports nothing heavy: the CLI reads it.
"""

from __future__ import annotations

from typing import Literal, get_args

Kind = Literal["report", "sql", "alert", "call"]
Format = Literal["xlsx", "pdf", "csv"]
SendRule = Literal["always", "if_rows", "if_empty", "if_changed"]
Catchup = Literal["none", "latest", "all"]
Overlap = Literal["skip", "queue", "allow"]
DstGap = Literal["shift", "skip"]
DstOverlap = Literal["first", "both"]
CsvEncoding = Literal["utf-8-sig", "utf-8", "utf-16", "cp1252", "latin-1"]
# CSV text cells that a spreadsheet would run as a formula: escaped, or kept as stored.
CsvFormulas = Literal["escape", "keep"]
# Attachments over the limit even zipped: left out with a note, or the mail split into parts.
TooLarge = Literal["zip", "split"]
# Business calendars: what a slot on a closed day does, and the days a weekend holds.
OnHoliday = Literal["skip", "next", "previous"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

RunStatus = Literal[
    "running", "succeeded", "failed", "timed_out", "interrupted", "skipped", "missed", "waiting"
]
# A data-ready gate that stays shut until its deadline: skip the slot, run anyway, or fail
# it (which mails notify.on_failure).
ReadyThen = Literal["skip", "run", "notify"]
# What a finished attempt of a job reports; the runner maps it onto a RunStatus.
JobStatus = Literal["succeeded", "failed"]
# Why a run row exists: its slot came due, a late slot after downtime, `run`, a dry run,
# or `backfill` (a past slot run again on request).
Trigger = Literal["schedule", "catchup", "manual", "dry-run", "backfill"]

# Where a run's result goes besides mail: a generic JSON POST, or a chat incoming webhook.
ChannelType = Literal["webhook", "slack", "teams"]

# What an HTTP API token may do: read (GET) or also write (run now, enable, disable).
TokenScope = Literal["read", "write"]

KINDS: tuple[Kind, ...] = get_args(Kind)
FORMATS: tuple[Format, ...] = get_args(Format)
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)  # in date.weekday() order
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
# A claimed run not yet ended: working, or waiting for its data-ready gate.
LIVE_STATUSES: tuple[RunStatus, ...] = ("running", "waiting")
FINAL_STATUSES: frozenset[RunStatus] = frozenset(RUN_STATUSES) - set(LIVE_STATUSES)
# Slots that came from the schedule (as opposed to `run`): they count for catch-up.
SCHEDULED_TRIGGERS: tuple[Trigger, ...] = ("schedule", "catchup")
TOKEN_SCOPES: tuple[TokenScope, ...] = get_args(TokenScope)
CHANNEL_TYPES: tuple[ChannelType, ...] = get_args(ChannelType)
