#!/usr/bin/env bash
# Regenerates docs/report-scripts.png: a real run of a report whose rows hold
# 東京, मुंबई, القاهرة, תל אביב and Zürich, its PDF page rendered by pdftoppm.
# Needs the venv (make install), poppler-utils and the fonts named in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DBCRON_STATE_DIR="$work/state" DBCRON_SOURCE_CITIES="sqlite:///$work/cities.db"

python - "$work/cities.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE sales (city TEXT, country TEXT, orders INTEGER, amount REAL, note TEXT)")
db.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", [
    ("東京", "日本", 412, 98234.5 + 0.1 + 0.2, "本社"),
    ("मुंबई", "भारत", 87, 12040.98, "पश्चिमी क्षेत्र"),
    ("القاهرة", "مصر", 23, 230.98000000000002, "مكتب المبيعات"),
    ("תל אביב", "ישראל", 9, 1792.3900000000008, "משרד חדש"),
    ("Zürich", "Schweiz", 150, 45210.0, "Hauptsitz Süd: the head office moved in March, so this quarter holds two months of the old office and one of the new one, and the note wraps in its column"),
])
db.commit()
PY

mkdir -p "$work/tasks"
cat >"$work/tasks/city-sales.yaml" <<'YAML'
name: city-sales
description: Sales by city
kind: report
schedule: {cron: "0 9 * * mon-fri", timezone: Europe/Zurich}
source: cities
query: SELECT city, country, orders, amount, note FROM sales ORDER BY amount DESC
export:
  formats: [pdf]
  filename: city-sales
  title: "Sales by city, {{ yesterday }}"
  columns:
    city: {label: City}
    country: {label: Country}
    orders: {label: Orders, format: "#,##0"}
    amount: {label: Amount, format: "#,##0.00"}
    note: {label: Note, wrap: true}
email:
  to: [manager@example.com]
YAML
manage-tasks apply "$work/tasks" >/dev/null
manage-tasks run city-sales --dry-run --as-of 2026-11-20 --out "$work/out"
pdftoppm -r 150 -png -singlefile -x 30 -y 40 -W 880 -H 260 "$work/out/city-sales.pdf" docs/report-scripts
echo "wrote docs/report-scripts.png"
