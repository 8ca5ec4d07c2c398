"""What `send: if_changed` pays to say what changed: memory and time of a 100,000-row diff.

Each case streams the same rows (id, customer, amount, day) through a ChangeTracker in
batches of 5,000, as a run does; "fingerprint only" is the tracker without row hashes
(what a result over the limit costs), the others keep them, with or without
email.changes.key [id]. The diff
is against a last mail of the same size with 1% of the rows moved, 0.5% gone, 0.5% new;
the store side writes and reads those hashes in a SQLite store. Peak memory is
tracemalloc's (Python allocations) during the case. Command:

    .venv/bin/python bench/bench_changes.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from dbcron.jobs.changes import ChangeTracker, count_changes
from dbcron.store import open_store

BATCH = 5_000
NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)


def rows(n: int, shift: int = 0) -> list[tuple[Any, ...]]:
    """n rows; with shift, 1% of amounts moved, the first 0.5% gone and 0.5% new ids."""
    out = []
    for i in range(shift * n // 200, n + shift * n // 200):
        amount = Decimal(i % 1000) / 10 + (1 if shift and i % 100 == 7 else 0)
        out.append((i, f"customer {i % 997}", amount, f"2026-11-{i % 28 + 1:02d}"))
    return out


def track(data: list[tuple[Any, ...]], counted: bool, keyed: bool = True) -> ChangeTracker:
    tracker = ChangeTracker("t", True, [], None, set(), ["id"] if keyed else [],
                            row_hashes={} if counted else None)
    tracker.start(["id", "customer", "amount", "day"])
    for start in range(0, len(data), BATCH):
        tracker.take(data[start:start + BATCH])
    return tracker


def measure(label: str, case: Callable[[], object]) -> object:
    tracemalloc.start()
    cpu = time.process_time()
    result = case()
    took = time.process_time() - cpu
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"| {label} | {took:.2f} | {peak / 1e6:.1f} |")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    n = parser.parse_args().rows
    before_rows, now_rows = rows(n), rows(n, shift=1)
    print(f"{n:,} rows\n\n| case | CPU s | peak MB |\n|---|---:|---:|")
    measure("fingerprint only (over the limit)", lambda: track(now_rows, counted=False))
    measure("fingerprint and row hashes, no key",
            lambda: track(now_rows, counted=True, keyed=False))
    before = track(before_rows, counted=True).row_hashes
    now = measure("fingerprint and row hashes, key [id]", lambda: track(now_rows, counted=True))
    assert isinstance(now, ChangeTracker) and now.row_hashes is not None and before
    found = measure("count_changes against the last mail",
                    lambda: count_changes(before, now.row_hashes or {}, keyed=True))
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'store.db'}")
        measure("store: record the row hashes (SQLite)",
                lambda: store.sent.record("t", "f", n, NOW, NOW, before))
        measure("store: read them back (SQLite)", lambda: store.sent.last_rows("t"))
        store.close()
    print(f"\nfound: {found}")


if __name__ == "__main__":
    main()
