"""Benchmark of the HTTP API and status page (issue 13), and of a burst run.

    PYTHONPATH=src .venv/bin/python bench/bench_http_api.py [--tasks 1000] [--requests 30]

HTTP: a store of N `call` tasks (mixed schedules) with one finished run each,
served by the real Api + HttpServer on 127.0.0.1 in this process; each request
is a real HTTP request with a bearer token (a fresh connection, as curl makes).
Reported: median and 95th percentile latency per endpoint.

Burst: R rows from SQLite split over K addresses into csv files and K mails
written to the outbox (no SMTP), through jobs.execute as the daemon runs it.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _store(path: Path, count: int) -> tuple[str, str]:
    from dbcron.store import Claim, open_store
    from dbcron.store.runs import FIRST_FENCE, Finished

    url = f"sqlite:///{path / 'store.db'}"
    store = open_store(url)
    now = datetime.now(UTC)
    schedules = [{"cron": "0 9 * * mon-fri", "timezone": "Europe/London"}, {"every": "30m"},
                 {"cron": "*/5 * * * *"}, {"cron": "30 2 * * *", "timezone": "Asia/Kolkata"}]
    store.tasks.upsert([{"name": f"task-{i:05d}", "kind": "call", "call": "m:f",
                         "schedule": schedules[i % len(schedules)]} for i in range(count)], now)
    claim = Claim("bench", 1, None, now + timedelta(minutes=1))
    for i in range(count):
        run_id = store.runs.claim(f"task-{i:05d}", now - timedelta(hours=1), "schedule", claim)
        assert run_id is not None
        status = "failed" if i % 50 == 0 else "succeeded"
        store.runs.update_many([(run_id, FIRST_FENCE, Finished(status, now, rows=i, error=(
            "RuntimeError: source down" if status == "failed" else None)))])
    token = store.tokens.create("bench", "write", now)
    store.close()
    return url, token


def bench_http(tasks: int, requests: int) -> list[tuple[str, float, float]]:
    from dbcron.daemon.http_api import Api, HttpServer
    from dbcron.settings import Settings
    from dbcron.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        url, token = _store(Path(tmp), tasks)
        store = open_store(url)
        settings = Settings(state_dir=Path(tmp), store=url, http_rate_limit=1_000_000)
        server = HttpServer(Api(store, settings, lambda: datetime.now(UTC), lambda: None,
                                 lambda: None))
        host, port = server.start("127.0.0.1:0")
        base = f"http://{host}:{port}"
        results = []
        cases = [("GET /api/v1/status", "/api/v1/status", None),
                 ("GET /api/v1/tasks", "/api/v1/tasks", None),
                 ("GET /api/v1/runs?limit=50", "/api/v1/runs?limit=50", None),
                 ("POST / (status page)", "/", f"token={token}".encode())]
        try:
            for label, path, form in cases:
                times = []
                for _ in range(requests):
                    request = urllib.request.Request(base + path, data=form, headers={
                        "Authorization": f"Bearer {token}"} if form is None else {})
                    started = time.perf_counter()
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        answer.read()
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                results.append((label, statistics.median(times),
                                times[int(len(times) * 0.95) - 1]))
        finally:
            server.stop()
            store.close()
    return results


def bench_burst(rows: int, recipients: int) -> tuple[float, float]:
    import sqlalchemy as sa

    from dbcron.jobs import execute
    from dbcron.jobs.types import JobRequest
    from dbcron.model import Task
    from dbcron.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        source = f"sqlite:///{tmp}/orders.db"
        engine = sa.create_engine(source)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY, owner TEXT, "
                                 "amount REAL, note TEXT)"))
            conn.execute(sa.text("INSERT INTO orders VALUES (:i, :o, :a, :n)"), [
                {"i": i, "o": f"m{i % recipients}@example.com", "a": i * 1.5, "n": f"row {i}"}
                for i in range(rows)])
        engine.dispose()
        task = Task.model_validate({
            "name": "burst", "kind": "report", "schedule": {"every": "1h"}, "source": source,
            "query": "SELECT id, owner, amount, note FROM orders", "export": {"formats": ["csv"]},
            "email": {"subject": "yours"}, "burst": {"column": "owner", "max": recipients}})
        settings = Settings(state_dir=Path(tmp), store=f"sqlite:///{tmp}/s.db",
                            output_dir=Path(tmp) / "out", outbox_dir=Path(tmp) / "outbox")
        started = time.perf_counter()
        result = execute(JobRequest(task=task, slot=datetime.now(UTC), settings=settings,
                                    timeout=600, run_id=1))
        wall = time.perf_counter() - started
        assert result.status == "succeeded", result.error
        assert len(list((Path(tmp) / "outbox").iterdir())) == recipients
    return wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--burst-rows", type=int, default=100_000)
    parser.add_argument("--burst-recipients", type=int, default=200)
    args = parser.parse_args()
    print(f"| request ({args.tasks:,} tasks) | median ms | p95 ms |\n|---|---:|---:|")
    for label, median, p95 in bench_http(args.tasks, args.requests):
        print(f"| {label} | {median:.1f} | {p95:.1f} |")
    wall, rss = bench_burst(args.burst_rows, args.burst_recipients)
    print(f"\nburst: {args.burst_rows:,} rows to {args.burst_recipients} recipients (csv + "
          f"outbox): {wall:.2f} s, {args.burst_rows / wall:,.0f} rows/s, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
