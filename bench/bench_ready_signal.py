"""How soon a ready signal starts the run waiting for it (issue 13, ready: {signal: true}).

    .venv/bin/python bench/bench_ready_signal.py [--tasks 10] [--via http|cli]

A real scheduler-daemon subprocess with the HTTP API on 127.0.0.1 and N `call`
tasks gated by `ready: {signal: true, every: 1h}`, so without the wake a run
would look at its gate again only after an hour. Each task is run now over the
API; once every run waits, each gets its signal, one after the other: by a real
HTTP POST (which wakes the daemon's loop), or by `manage-tasks ready NAME` in a
process of its own (which sends the daemon nothing: its tick finds the signal).
Reported: the time from the signal (sending the POST; for the CLI, the signal's
`received_at`, as its process start-up is not the daemon's) to the run's start
as the store records it, and to its end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).parent
T = TypeVar("T")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--via", choices=["http", "cli"], default="http")
    args = parser.parse_args()
    from dbcron.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        url = f"sqlite:///{state / 'dbcron.db'}"
        store = open_store(url)
        names = [f"gated-{i:03d}" for i in range(args.tasks)]
        store.tasks.upsert([{"name": n, "kind": "call", "call": "jobs:succeed",
                             "schedule": {"cron": "0 9 1 1 *"},
                             "ready": {"signal": True, "every": "1h", "until": "2h"}}
                            for n in names], datetime.now(UTC))
        token = store.tokens.create("bench", "write", datetime.now(UTC))
        log = Path(tmp) / "daemon.log"
        env = {**os.environ, "DBCRON_STATE_DIR": str(state), "DBCRON_HTTP_ADDRESS": "127.0.0.1:0",
               "DBCRON_CALL_MODULES": "jobs", "DBCRON_HTTP_RATE_LIMIT": "100000",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent / "tests"),
                                              str(HERE.parent / "src")])}
        with open(log, "wb") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-c", "from dbcron.daemon.main import main; main()"],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            found = _wait(lambda: re.search(r"status page on http://([\d.]+):(\d+)/",
                                            log.read_text(errors="replace")), 20)
            base = f"http://{found.group(1)}:{found.group(2)}"
            for name in names:
                _post(base, f"/api/v1/tasks/{name}/run", token)
            _wait(lambda: len(store.runs.history(status="waiting", limit=10_000))
                  == len(names) or None, 60)
            sent: dict[str, datetime] = {}
            for name in names:
                sent[name] = datetime.now(UTC)
                if args.via == "http":
                    _post(base, f"/api/v1/tasks/{name}/ready", token)
                    continue
                subprocess.run([sys.executable, "-c", "from dbcron.cli import main; main()",
                                "ready", name], env=env, check=True, capture_output=True)
                signal = store.signals.first(name, sent[name].date())
                assert signal is not None
                sent[name] = signal.received_at
            starts, ends = [], []
            for name, at in sent.items():
                run = _wait(lambda n=name: next(  # type: ignore[misc]
                    iter(store.runs.history(task=n, status="succeeded", limit=1)), None), 60)
                starts.append((run.started_at - at).total_seconds())
                ends.append((run.finished_at - at).total_seconds())
        finally:
            daemon.terminate()
            daemon.wait(30)
            store.close()
    how = ("POST /api/v1/tasks/NAME/ready" if args.via == "http"
           else "manage-tasks ready NAME (no SIGHUP)")
    print(f"{len(names)} gated runs, each woken by {how} (ready.every: 1h):")
    for what, values in (("signal -> run started", starts), ("signal -> run ended", ends)):
        values.sort()
        print(f"  {what}: median {statistics.median(values) * 1000:.0f} ms, "
              f"max {values[-1] * 1000:.0f} ms")


def _post(base: str, path: str, token: str) -> Any:
    request = urllib.request.Request(base + path, method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _wait(check: Callable[[], T | None], seconds: float) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"gave up after {seconds}s")


if __name__ == "__main__":
    main()
