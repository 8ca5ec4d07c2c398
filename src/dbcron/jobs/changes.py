"""Change-aware delivery: `send: if_changed` and `only_new`, as the rows stream past.

A result's fingerprint ignores row order (a query without ORDER BY may return
the same rows in another order): it is a sum of per-row hashes. `only_new`
keeps a 64-bit hash per key in the store and drops rows whose key is already
there before any writer sees them.

To say what changed, `if_changed` also keeps a 64-bit hash of each row of the
mail (and of its key, with `email.changes.key`), up to MAX_TRACKED_ROWS rows:
past that the memory of a run would grow with its result, so a larger result
is mailed as "changed" without counts.

The store is read before the query (and, when the result differs, for the
last mail's rows) and written only after the mail went out; a dry run reads
and never writes.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dbcron.jobs.types import JobError, JobRequest

if TYPE_CHECKING:
    from dbcron.store import SentResult
    from dbcron.store.sent_results import RowHashes

_MOD = 2**128
# Rows a mail's change counts cover. A run holds its rows' hashes (160 to 190 bytes a
# row) and, to count, the last mail's: about 40 MB at the limit (docs/benchmarks.md).
# A larger result is mailed as "changed" without counts, at the fingerprint's flat cost.
MAX_TRACKED_ROWS = 100_000


def row_hash(row: Sequence[Any]) -> int:
    """A row's 128-bit hash; `repr` tells 1 from '1' and keeps Decimal scale."""
    return int.from_bytes(hashlib.blake2b(repr(tuple(row)).encode(), digest_size=16).digest())


def key_hash(values: Sequence[Any]) -> int:
    """A key's hash as a signed 64-bit integer (what a BIGINT column holds)."""
    digest = hashlib.blake2b(repr(tuple(values)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, signed=True)


def short_hash(full: int) -> int:
    """The top 64 bits of a row's hash, signed (what a BIGINT column holds)."""
    top = full >> 64
    return top - 2**64 if top >= 2**63 else top


@dataclass(frozen=True)
class RowChanges:
    added: int
    removed: int
    changed: int | None  # None without email.changes.key: a moved row is removed + added


def count_changes(before: RowHashes, now: RowHashes, keyed: bool) -> RowChanges:
    """Rows in `now` and not `before` are added, the other way removed (as multisets: a
    repeated row counts each time); by key, an added and a removed row of one key are
    one changed row."""
    added: Counter[int | None] = Counter()
    removed: Counter[int | None] = Counter()
    for mine, other, into in ((now, before, added), (before, now, removed)):
        for h, (key, copies) in mine.items():
            extra = copies - other.get(h, (None, 0))[1]
            if extra > 0:
                into[key] += extra
    if not keyed:
        return RowChanges(added.total(), removed.total(), None)
    changed = sum(min(n, removed[key]) for key, n in added.items() if key is not None)
    return RowChanges(added.total() - changed, removed.total() - changed, changed)


def describe_changes(found: RowChanges | None, rows_now: int, rows_before: int) -> str:
    """What the mail says changed; `found` None: the rows were not counted one by one."""
    if found is None:
        if max(rows_now, rows_before) > MAX_TRACKED_ROWS:
            return (f"the result changed (over {MAX_TRACKED_ROWS:,} rows, not counted row "
                    "by row)")
        return "the result changed"
    if not (found.added or found.removed or found.changed):
        # Same rows, other fingerprint: only the column names are left to differ.
        return "the same rows under other column names"
    counts = [f"{found.added:,} row{'' if found.added == 1 else 's'} added",
              f"{found.removed:,} removed"]
    if found.changed is not None:
        counts.append(f"{found.changed:,} changed")
    return ", ".join(counts)


def fingerprint(columns: Sequence[str], row_sum: int, rows: int) -> str:
    head = json.dumps([list(columns), rows, row_sum])
    return hashlib.sha256(head.encode()).hexdigest()


@dataclass
class ChangeTracker:
    """One run's view of what its task delivered before, and what this run adds."""

    task: str
    if_changed: bool
    key: list[str]
    previous: SentResult | None
    known: set[int]
    changes_key: list[str] = field(default_factory=list)  # email.changes.key
    columns: list[str] = field(default_factory=list)
    key_index: list[int] = field(default_factory=list)
    changes_index: list[int] = field(default_factory=list)
    row_sum: int = 0
    rows: int = 0  # rows kept (all of them without only_new)
    seen: int = 0  # rows the query returned
    new_keys: set[int] = field(default_factory=set)
    # The kept rows' hashes (if_changed), until there are more than MAX_TRACKED_ROWS.
    row_hashes: dict[int, tuple[int | None, int]] | None = None
    found: RowChanges | None = None  # what changed since the last mail, once counted

    @classmethod
    def for_request(cls, request: JobRequest) -> ChangeTracker | None:
        """None when the task uses neither `send: if_changed` nor `only_new`."""
        email = request.task.email
        if email is None or (email.send != "if_changed" and email.only_new is None):
            return None
        from dbcron.errors import StoreError
        from dbcron.store import open_store

        key = list(email.only_new.key) if email.only_new else []
        if_changed = email.send == "if_changed"
        changes_key = list(email.changes.key) if email.changes else []
        previous, known = None, set()
        try:
            store = open_store(request.settings.store, create=not request.dry_run)
        except StoreError:
            if not request.dry_run:
                raise
        else:
            try:
                previous = store.sent.last(request.task.name)
                known = store.sent.known_keys(request.task.name) if key else set()
            finally:
                store.close()
        return cls(request.task.name, if_changed, key, previous, known, changes_key,
                   row_hashes={} if if_changed else None)

    def start(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.key_index = self._find("email.only_new.key", self.key)
        self.changes_index = self._find("email.changes.key", self.changes_key)

    def _find(self, option: str, names: list[str]) -> list[int]:
        missing = [k for k in names if k not in self.columns]
        if missing:
            raise JobError(
                f"{option} names {', '.join(repr(k) for k in missing)}, which the "
                f"query does not return (its columns: {', '.join(self.columns)})",
                retryable=False,
            )
        return [self.columns.index(k) for k in names]

    def take(self, batch: list[Sequence[Any]]) -> list[Sequence[Any]]:
        """The batch less rows already delivered (only_new); every kept row is fingerprinted."""
        self.seen += len(batch)
        if self.key:
            kept = []
            for row in batch:
                h = key_hash([row[i] for i in self.key_index])
                if h not in self.known and h not in self.new_keys:
                    self.new_keys.add(h)
                    kept.append(row)
            batch = kept
        tracked = self.row_hashes
        for row in batch:
            full = row_hash(row)
            self.row_sum = (self.row_sum + full) % _MOD
            if tracked is not None:
                short = short_hash(full)
                key = (key_hash([row[i] for i in self.changes_index]) if self.changes_index
                       else None)
                tracked[short] = (key, tracked.get(short, (key, 0))[1] + 1)
        self.rows += len(batch)
        if self.rows > MAX_TRACKED_ROWS:
            self.row_hashes = None  # from here on the fingerprint alone: memory stays flat
        return batch

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.columns, self.row_sum, self.rows)

    def count(self, request: JobRequest) -> None:
        """What changed since the last mail, row by row, when it can be told: the result
        differs and both it and the last mail's were kept row by row."""
        previous = self.previous
        if (not self.if_changed or self.row_hashes is None or previous is None
                or previous.fingerprint == self.fingerprint
                or previous.rows > MAX_TRACKED_ROWS):
            return
        from dbcron.store import open_store

        # The previous lookup found a store, so it is there for a dry run as well.
        store = open_store(request.settings.store, create=not request.dry_run)
        try:
            before = store.sent.last_rows(self.task)
        finally:
            store.close()
        if before is not None:
            self.found = count_changes(before, self.row_hashes, bool(self.changes_key))

    def since(self) -> str:
        """What changed since the last mail, for the mail and the run's summary; empty
        before the first mail."""
        if not self.if_changed or self.previous is None:
            return ""
        sent = self.previous.scheduled_for
        what = describe_changes(self.found, self.rows, self.previous.rows)
        return f"since the mail for {sent:%Y-%m-%d %H:%M} UTC: {what}"

    def skip_reason(self) -> str:
        """Why this result is not mailed, or '' when it goes out."""
        if self.key and not self.rows:
            return f"no new rows (of {self.seen:,}): nothing sent (only_new)"
        if self.if_changed and self.previous and self.previous.fingerprint == self.fingerprint:
            sent = self.previous.scheduled_for
            return (f"same result as the mail for {sent:%Y-%m-%d %H:%M} UTC: nothing sent "
                    "(send: if_changed)")
        return ""

    def variables(self) -> dict[str, Any]:
        """For the subject and body: how many rows are new, and what changed since last time."""
        found: dict[str, Any] = {"new_rows": self.rows if self.key else None,
                                 "total_rows": self.seen}
        if self.if_changed:
            found["changed"] = self.previous is None or (
                self.previous.fingerprint != self.fingerprint)
            found["previous_rows"] = self.previous.rows if self.previous else None
            counted = self.found
            found["rows_added"] = counted.added if counted else None
            found["rows_removed"] = counted.removed if counted else None
            found["rows_changed"] = counted.changed if counted else None
        return found

    def remember(self, request: JobRequest) -> None:
        """After the mail went out: this result is the last delivered, its keys are known."""
        from dbcron.store import open_store

        now = datetime.now(UTC)
        store = open_store(request.settings.store)
        try:
            if self.if_changed:
                store.sent.record(self.task, self.fingerprint, self.rows, request.slot,
                                  now, self.row_hashes)
            if self.new_keys:
                store.sent.add_keys(self.task, self.new_keys, now)
        finally:
            store.close()
