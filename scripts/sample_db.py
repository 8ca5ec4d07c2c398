"""Create the demo's SQLite database: sales, a canteen menu and kitchen waste.

    python scripts/sample_db.py var/sample.db [--today 2026-03-02]

The example tasks in tasks/ run against it: daily-sales reports yesterday's
sales, nightly-cleanup deletes past menu rows, high-waste fires because one
floor wasted more than 50 kg over the last 7 days. The data is seeded, so the
same `today` always gives the same database; dates are relative to `today`.
Names include non-Latin text (Zürich, Москва, Αθήνα) so the PDF font shows.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
from datetime import date, timedelta
from pathlib import Path

SEED = 20260301
SALES_DAYS = 60
# (region, weight): how much of the trade each region does.
REGIONS = [
    ("London", 5),
    ("Zürich", 3),
    ("Москва", 3),
    ("Αθήνα", 2),
    ("São Paulo", 2),
    ("Mumbai", 3),
]
# (product, unit price)
PRODUCTS = [
    ("Espresso", 2.40),
    ("Cappuccino", 3.10),
    ("Crème brûlée", 5.80),
    ("Tiramisù", 6.20),
    ("Пельмени", 8.90),
    ("Σουβλάκι", 7.50),
    ("Smørrebrød", 9.40),
    ("Masala dosa", 6.70),
]
CHANNELS = ["shop", "online", "catering"]
DISHES = [
    "Lentil soup", "Chicken curry", "Vegetable lasagne", "Borscht", "Moussaka",
    "Fish and chips", "Falafel wrap", "Risotto ai funghi", "Pad thai", "Goulash",
]  # fmt: skip
# (floor, typical kg per day): the second floor's kitchen wastes far more.
FLOORS = [("Ground floor", 3.0), ("1st floor", 4.0), ("2nd floor", 9.5), ("Rooftop", 1.5)]

SCHEMA = """
CREATE TABLE sales (
    id INTEGER PRIMARY KEY,
    region TEXT NOT NULL,
    product TEXT NOT NULL,
    channel TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    amount NUMERIC NOT NULL,
    sold_on DATE NOT NULL
);
CREATE INDEX sales_sold_on ON sales (sold_on);
CREATE TABLE menu (
    id INTEGER PRIMARY KEY,
    menu_date DATE NOT NULL,
    dish TEXT NOT NULL
);
CREATE TABLE waste (
    id INTEGER PRIMARY KEY,
    floor TEXT NOT NULL,
    logged_on DATE NOT NULL,
    waste_kg REAL NOT NULL
);
"""


def build(path: Path, today: date) -> dict[str, int]:
    """(Re)create the database at ``path``; return the row count of each table."""
    rng = random.Random(SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO sales (region, product, channel, quantity, amount, sold_on) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            _sales(rng, today),
        )
        conn.executemany(
            "INSERT INTO menu (menu_date, dish) VALUES (?, ?)", _menu(rng, today)
        )
        conn.executemany(
            "INSERT INTO waste (floor, logged_on, waste_kg) VALUES (?, ?, ?)",
            _waste(rng, today),
        )
        counts = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("sales", "menu", "waste")
        }
    conn.close()
    return counts


def _sales(rng: random.Random, today: date) -> list[tuple[object, ...]]:
    regions = [r for r, _ in REGIONS]
    weights = [w for _, w in REGIONS]
    rows = []
    for back in range(SALES_DAYS, 0, -1):
        day = today - timedelta(days=back)
        # Weekends are quieter.
        orders = rng.randint(20, 40) if day.weekday() >= 5 else rng.randint(50, 80)
        for _ in range(orders):
            product, price = rng.choice(PRODUCTS)
            quantity = rng.choices([1, 2, 3, 5, 10, 25], [40, 25, 15, 10, 7, 3])[0]
            amount = round(quantity * price * rng.uniform(0.9, 1.1), 2)
            region = rng.choices(regions, weights)[0]
            rows.append((region, product, rng.choice(CHANNELS), quantity, amount, day.isoformat()))
    return rows


def _menu(rng: random.Random, today: date) -> list[tuple[object, ...]]:
    return [
        ((today + timedelta(days=offset)).isoformat(), dish)
        for offset in range(-14, 15)
        for dish in rng.sample(DISHES, 3)
    ]


def _waste(rng: random.Random, today: date) -> list[tuple[object, ...]]:
    return [
        (floor, (today - timedelta(days=back)).isoformat(), round(rng.uniform(0.7, 1.3) * kg, 1))
        for back in range(30, 0, -1)
        for floor, kg in FLOORS
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="SQLite file to (re)create")
    parser.add_argument("--today", type=date.fromisoformat, default=date.today(),
                        help="the date the data is relative to (default: today)")
    args = parser.parse_args(argv)
    counts = build(args.path, args.today)
    summary = ", ".join(f"{n:,} {table}" for table, n in counts.items())
    print(f"wrote {args.path}: {summary} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
