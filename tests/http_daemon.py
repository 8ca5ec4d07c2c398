"""A real daemon serving the HTTP API on a free port, and a tiny HTTP client for tests."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

from daemon_proc import DaemonProcess, wait_for
from dbcron.store import open_store

TASKS = [
    {"name": "hello", "kind": "call", "schedule": {"cron": "0 9 * * *"},
     "call": "jobs:succeed", "description": "says hello"},
    {"name": "broken", "kind": "call", "schedule": {"every": "6h"},
     "call": "jobs:fail", "args": ["the source database is down"]},
    {"name": "nightly-cleanup", "kind": "call", "schedule": {"cron": "30 2 * * *",
                                                            "timezone": "Europe/Paris"},
     "call": "jobs:succeed"},
]


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class ApiDaemon:
    proc: DaemonProcess
    url: str
    read_token: str
    write_token: str

    def call(self, method: str, path: str, token: str | None = None, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> Answer:
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=dict(headers or {}))
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.headers, exc.read())

    def wait_run(self, run_id: int) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = self.call("GET", f"/api/v1/runs/{run_id}",
                                            self.read_token).json()
            return run if run["status"] != "running" else None

        result: dict[str, Any] = wait_for(finished, 20, f"run {run_id} to finish")
        return result


def start_api_daemon(base: Path, tasks: list[dict[str, Any]] | None = None, **env: str
                     ) -> ApiDaemon:
    """Tasks (default TASKS) and two tokens (read, write) in a fresh SQLite store, then
    the daemon."""
    state = base / "state"
    store = open_store(f"sqlite:///{state / 'dbcron.db'}")
    now = datetime.now(UTC)
    store.tasks.upsert(TASKS if tasks is None else tasks, now)
    read_token = store.tokens.create("dashboard", "read", now)
    write_token = store.tokens.create("ops", "write", now)
    store.close()
    proc = DaemonProcess(state, DBCRON_HTTP_ADDRESS="127.0.0.1:0", **env).start()
    found = wait_for(lambda: re.search(r"status page on http://([\d.]+):(\d+)/", proc.log()), 10,
                     "the HTTP address in the log")
    return ApiDaemon(proc, f"http://{found.group(1)}:{found.group(2)}", read_token, write_token)
