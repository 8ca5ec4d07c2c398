"""CPU time of our export writers, this checkout against another, case by case.

On a shared machine wall time swings 3x with the neighbours' load; the CPU time
a writer spends on the same rows swings far less, and the best of a few runs,
alternating the two sides, compares like with like. Uses bench_export.py's
database (build it once with that script).

    .venv/bin/python bench/bench_export_ab.py /path/to/other/checkout [--rounds 5]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {"csv": 300_000, "xlsx": 300_000, "pdf": 20_000}
QUERY = "SELECT id, amount, name, day, at, price, ok, note, qty, city FROM t LIMIT ?"
COLUMNS = ["id", "amount", "name", "day", "at", "price", "ok", "note", "qty", "city"]


def child(src: str, fmt: str, db: Path, rows: int) -> None:
    """One writer over the rows already in memory; prints its CPU seconds."""
    sys.path.insert(0, src)
    from dbcron.jobs.export import ExportOptions, open_writer

    sqlite3.register_converter("BOOLEAN", lambda b: b == b"1")
    conn = sqlite3.connect(db, detect_types=sqlite3.PARSE_DECLTYPES)
    data = conn.execute(QUERY, (rows,)).fetchall()
    options = ExportOptions("Bench", "A/B", zoneinfo.ZoneInfo("UTC"))
    with tempfile.TemporaryDirectory() as out:
        started = time.process_time()
        writer = open_writer(fmt, Path(out) / f"x.{fmt}", COLUMNS, options)
        for i in range(0, len(data), 5000):
            writer.write(data[i : i + 5000])
        writer.close()
        print(time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the checkout to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--db", type=Path, default=Path(tempfile.gettempdir()) / "dbcron-bench.sqlite"
    )
    parser.add_argument("--child", nargs=2, metavar=("SRC", "FORMAT"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.db, CASES[args.child[1]])
        return
    sides = {"other": str(args.other / "src"), "this": str(ROOT / "src")}
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for fmt in CASES:
            for side, src in sides.items():
                out = subprocess.run(
                    [sys.executable, __file__, str(args.other), "--db", str(args.db),
                     "--child", src, fmt],
                    capture_output=True, text=True, check=True,
                )
                seconds = float(out.stdout.split()[-1])
                best[(fmt, side)] = min(seconds, best.get((fmt, side), seconds))
    print("| writer | rows | other CPU s | this CPU s | this / other |")
    print("|---|---:|---:|---:|---:|")
    for fmt, rows in CASES.items():
        other, this = best[(fmt, "other")], best[(fmt, "this")]
        print(f"| {fmt} | {rows:,} | {other:.2f} | {this:.2f} | {this / other:.2f}x |")


if __name__ == "__main__":
    main()
