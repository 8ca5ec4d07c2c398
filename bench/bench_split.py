"""Peak memory and time of cutting a large export by rows (email.too_large: split).

Writes a CSV of about --mb megabytes and an XLSX of --xlsx-rows rows with
dbcron's own writers (10 mixed columns, quoted text with commas and line
breaks), then cuts each into 10 MB pieces (the default DBCRON_MAX_ATTACHMENT_MB
as raw bytes) in a fresh process, and reports wall time, pieces and that
process's peak RSS. The cut streams, so RSS should not grow with the file.

    .venv/bin/python bench/bench_split.py --mb 200 --xlsx-rows 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import tempfile
import time
import zoneinfo
from pathlib import Path
from typing import Any

from dbcron.jobs.export import ExportOptions, open_writer
from dbcron.jobs.mail.parts import raw_budget

COLUMNS = ["id", "name", "note", "amount", "ratio", "day", "at", "flag", "code", "empty"]
OPTIONS = ExportOptions(title="bench", subtitle="split", tz=zoneinfo.ZoneInfo("UTC"))
BUDGET = raw_budget(10 * 1024 * 1024)


def _rows(start: int, count: int) -> list[tuple[Any, ...]]:
    base = dt.datetime(2026, 1, 1)
    return [(i, f"customer {i}", f'line one, "quoted"\r\nline two {i % 97}', i * 1.25,
             i / 7, (base + dt.timedelta(days=i % 365)).date(),
             base + dt.timedelta(seconds=i), i % 2 == 0, f"C{i:08d}", None)
            for i in range(start, start + count)]


def _write(path: Path, fmt: str, until_bytes: int = 0, rows: int = 0) -> int:
    writer = open_writer(fmt, path, COLUMNS, OPTIONS)
    written = 0
    while (until_bytes and (written == 0 or path.with_name(f".{path.name}.part").stat().st_size
                            < until_bytes)) or (rows and written < rows):
        batch = _rows(written, 5000 if not rows else min(5000, rows - written))
        writer.write(batch)
        written += len(batch)
    writer.close()
    return written


def _cut(path: str, rows: int, out: Any) -> None:
    from dbcron.jobs.export.cut import cut, remove_files

    started = time.perf_counter()
    pieces = cut(Path(path), BUDGET, COLUMNS, OPTIONS, rows)
    wall = time.perf_counter() - started
    largest = max(p.stat().st_size for p in pieces)
    remove_files(pieces)
    out.put({"pieces": len(pieces), "largest": largest, "wall": wall, "peak_mb": _peak_mb()})


def _peak_mb() -> float:
    """This process's peak RSS. Not getrusage's ru_maxrss: on Linux a forked child
    starts with its parent's high-water mark, which exec does not reset."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _measure(path: Path, rows: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_cut, args=(str(path), rows, queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the CSV")
    parser.add_argument("--xlsx-rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cases = []
        csv_path = Path(folder) / "big.csv"
        csv_rows = _write(csv_path, "csv", until_bytes=args.mb * 1024 * 1024)
        cases.append(("csv", csv_path, csv_rows))
        if args.xlsx_rows:
            xlsx_path = Path(folder) / "big.xlsx"
            cases.append(("xlsx", xlsx_path, _write(xlsx_path, "xlsx", rows=args.xlsx_rows)))
        print("| file | rows | MB | pieces | largest piece MB | wall s | peak RSS MB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for fmt, path, rows in cases:
            got = _measure(path, rows)
            print(f"| {fmt} | {rows:,} | {path.stat().st_size / 2**20:.0f} | {got['pieces']} | "
                  f"{got['largest'] / 2**20:.2f} | {got['wall']:.1f} | {got['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
