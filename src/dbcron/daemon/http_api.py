"""The daemon's HTTP API and status page, served when DBCRON_HTTP_ADDRESS is set.

Standard library only (``ThreadingHTTPServer``): a handful of JSON routes do
not earn a web framework, and the CLI never imports this module. Plain HTTP:
TLS belongs to a reverse proxy in front (docs/http-api.md).

Security, in order of the checks:
- a token is read only from ``Authorization: Bearer`` (or, for the status
  page's forms, from the POSTed form body), never from cookies or URLs; no
  cookie is ever set and no CORS header is sent, so another site's page can
  neither send the header nor read an answer: CSRF-safe by construction;
- every request is counted against a token bucket per valid token, or per
  client address when the token is missing or wrong (so guessing tokens is
  throttled too), and answered 429 with Retry-After when it is empty;
- read scope may GET; write scope may also POST run-now, enable, disable and
  ready signals.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from dbcron.errors import DbcronError, TaskNotFound
from dbcron.services.signals import NoSignalGate
from dbcron.settings import Settings
from dbcron.store import Store, TokenRow
from dbcron.vocabulary import RUN_STATUSES, RunStatus

if TYPE_CHECKING:
    from dbcron.daemon.status_page import PageData

log = logging.getLogger("dbcron.http")
MAX_BODY = 16 * 1024  # a token, a task name, a date; anything bigger is not ours
MAX_BUCKETS = 10_000  # past this many clients, forget the ones that are idle
RUN_ID_WAIT = 3.0  # seconds a run-now answer waits for the daemon to name the run
FAILED: tuple[RunStatus, ...] = ("failed", "timed_out", "interrupted")


class RateLimiter:
    """A token bucket per key: `per_minute` requests, refilled evenly; pure given `now`."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float:
        """0 when allowed; otherwise the seconds until the next request would be."""
        with self._lock:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            level, last = self._buckets.get(key, (self.capacity, now))
            level = min(self.capacity, level + (now - last) * self.refill)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.refill

    def _forget_full(self, now: float) -> None:
        """A bucket refilled to the brim is the same as none: drop those (many clients)."""
        full = [k for k, (level, last) in self._buckets.items()
                if level + (now - last) * self.refill >= self.capacity]
        for key in full:
            del self._buckets[key]


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, data: Any, *headers: tuple[str, str]) -> Reply:
    body = json.dumps(data, ensure_ascii=False, default=str).encode()
    return Reply(status, body, "application/json", headers)


def _error(status: int, message: str, *headers: tuple[str, str]) -> Reply:
    return _json(status, {"error": message}, *headers)


def _html(status: int, page: str) -> Reply:
    return Reply(status, page.encode(), "text/html; charset=utf-8")


def openapi_document() -> bytes:
    return resources.files("dbcron.daemon").joinpath("openapi.json").read_bytes()


class Api:
    """Routes, auth and the rate limit; independent of the socket so errors stay plain data."""

    def __init__(self, store: Store, settings: Settings, clock: Callable[[], datetime],
                 on_change: Callable[[], None], wake: Callable[[], None]) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.on_change = on_change  # tasks changed: reload
        self.wake = wake  # a ready signal came: waiting runs look at their gate now
        self.limiter = RateLimiter(settings.http_rate_limit)

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes,
               client: str) -> Reply:
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        form = _form(body) if method == "POST" and path in ("/", "/ui/run") else {}
        presented = _bearer(headers.get("authorization", "")) or form.get("token")
        token = self.store.tokens.find(presented) if presented else None
        wait = self.limiter.take(f"token:{token.name}" if token else f"client:{client}",
                                 time.monotonic())
        if wait:
            return _error(429, "too many requests; slow down",
                          ("Retry-After", str(max(1, round(wait)))))
        if path == "/openapi.json" and method == "GET":
            return Reply(200, openapi_document())
        if path == "/" or path.startswith("/ui/"):
            return self._page(method, path, presented, token, form)
        if not path.startswith("/api/v1/"):
            return _error(404, f"no such path {path}; see /openapi.json")
        if presented is None:
            return _error(401, "missing token: send 'Authorization: Bearer <token>'",
                          ("WWW-Authenticate", 'Bearer realm="dbcron"'))
        if token is None:
            return _error(401, "invalid or revoked token",
                          ("WWW-Authenticate", 'Bearer realm="dbcron", error="invalid_token"'))
        try:
            return self._api(method, path.removeprefix("/api/v1"), parse_qs(url.query), token,
                             body)
        except TaskNotFound as exc:
            return _error(404, str(exc))
        except NoSignalGate as exc:
            return _error(409, str(exc))
        except DbcronError as exc:
            return _error(400, str(exc))

    # --- JSON API -----------------------------------------------------------------------

    def _api(self, method: str, path: str, query: dict[str, list[str]], token: TokenRow,
             body: bytes) -> Reply:
        from dbcron.services import runs, tasks

        now = self.clock()
        parts = path.strip("/").split("/")
        if method == "GET":
            if parts == ["status"]:
                return _json(200, runs.status(self.store, self.settings, now).to_json())
            if parts == ["tasks"]:
                return _json(200, [t.to_json() for t in
                                   tasks.listing(self.store, self.settings, now)])
            if len(parts) == 2 and parts[0] == "tasks":
                return _json(200, tasks.detail(self.store, parts[1], self.settings, now))
            if parts == ["runs"]:
                return self._runs(query, now)
            if len(parts) == 2 and parts[0] == "runs" and parts[1].isdigit():
                run = self.store.runs.get(int(parts[1]))
                if run is None:
                    return _error(404, f"no run {parts[1]}")
                ledger = self.store.deliveries.of_runs([run.id])[run.id]
                return _json(200, {**run.to_json(),
                                   "deliveries": [d.to_json() for d in ledger]})
            return _error(404, f"no such path /api/v1{path}; see /openapi.json")
        if method != "POST":
            return _error(405, f"{method} is not allowed; GET reads, POST acts",
                          ("Allow", "GET, POST"))
        if len(parts) != 3 or parts[0] != "tasks" or parts[2] not in ("run", "enable",
                                                                       "disable", "ready"):
            return _error(404, f"no such path /api/v1{path}; see /openapi.json")
        if token.scope != "write":
            return _error(403, f"token '{token.name}' has read scope; this needs a write token")
        name, action = parts[1], parts[2]
        if action == "run":
            return _json(202, self.run_now(name, now))
        if action == "ready":
            return self._ready(name, body, token, now)
        changed = tasks.set_enabled(self.store, name, action == "enable", now)
        if changed:
            self.on_change()
        log.info("http: %s %sd by token %s", name, action, token.name)
        return _json(200, {"task": name, "enabled": action == "enable", "changed": changed})

    def _runs(self, query: dict[str, list[str]], now: datetime) -> Reply:
        from dbcron.services import runs

        task = query.get("task", [None])[0]
        status = query.get("status", [None])[0]
        if status is not None and status not in RUN_STATUSES:
            return _error(400, f"status={status!r}; use one of {', '.join(RUN_STATUSES)}")
        limit_text = query.get("limit", ["50"])[0]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
            return _error(400, f"limit={limit_text!r}; use a whole number from 1 to 1000")
        since_text = query.get("since", [None])[0]
        since = (runs.parse_since(since_text, now, self.settings.timezone)
                 if since_text else None)
        found = runs.history(self.store, task, status, since, int(limit_text))
        return _json(200, [r.to_json() for r in found])

    def _ready(self, name: str, body: bytes, token: TokenRow, now: datetime) -> Reply:
        """Record a ready signal and wake the loop, so a run waiting for it goes on at once."""
        from dbcron.services.signals import parse_day, receive

        try:
            fields = json.loads(body) if body.strip() else {}
        except ValueError:
            return _error(400, 'the body is not JSON: send {"date": "YYYY-MM-DD"} or nothing')
        if not isinstance(fields, dict) or set(fields) - {"date"}:
            return _error(400, 'the body takes one field, "date" (YYYY-MM-DD); '
                          "leave it out for today in the task's timezone")
        day = parse_day(fields["date"], "date") if "date" in fields else None
        signal = receive(self.store, self.settings, name, day, now, f"http token {token.name}")
        self.wake()
        log.info("http: ready signal for %s, %s, by token %s", name, signal.business_date,
                 token.name)
        return _json(200, {"task": name, "date": signal.business_date.isoformat(),
                           "received_at": signal.received_at.isoformat()})

    def run_now(self, name: str, now: datetime) -> dict[str, Any]:
        """Ask the daemon's loop to run `name`, as `manage-tasks run` does; wait briefly
        for the run id so the caller can follow it at /api/v1/runs/{id}."""
        from dbcron.services.tasks import get

        get(self.store, name)
        # The loop takes requests every tick (1 s), as it does for `manage-tasks run`.
        request_id = self.store.daemons.request_run(name, now)
        deadline = time.monotonic() + RUN_ID_WAIT
        run_id = None
        while run_id is None and time.monotonic() < deadline:
            _taker, run_id = self.store.daemons.answer_of(request_id)
            if run_id is None:
                time.sleep(0.1)
        log.info("http: run-now of %s requested (request %d, run %s)", name, request_id, run_id)
        return {"task": name, "request_id": request_id, "run_id": run_id}

    # --- the status page ----------------------------------------------------------------

    def _page(self, method: str, path: str, presented: str | None, token: TokenRow | None,
              form: dict[str, str]) -> Reply:
        from dbcron.daemon import status_page

        if method not in ("GET", "POST") or path not in ("/", "/ui/run"):
            return _error(404, f"no such page {path}")
        if presented is None:
            return _html(200, status_page.sign_in())
        if token is None:
            return _html(401, status_page.sign_in("That token is not valid (or was revoked)."))
        message = None
        if path == "/ui/run":
            if method != "POST":
                return _error(405, "run-now is a POST", ("Allow", "POST"))
            if token.scope != "write":
                return _html(403, status_page.sign_in("Run now needs a write token."))
            name = form.get("task", "")
            try:
                answer = self.run_now(name, self.clock())
            except TaskNotFound as exc:
                message = str(exc)
            else:
                message = f"Run of {name} requested" + (
                    f": run {answer['run_id']}." if answer["run_id"] else
                    "; the daemon has not started it yet.")
        return _html(200, status_page.status_page(self.page_data(), presented,
                                                  token.scope == "write", message))

    def page_data(self) -> PageData:
        from dbcron.daemon.status_page import PageData
        from dbcron.services import runs, tasks

        now = self.clock()
        failures = [r for status in FAILED for r in self.store.runs.history(
            status=status, since=now - timedelta(days=7), limit=20)]
        failures.sort(key=lambda r: r.scheduled_for, reverse=True)
        return PageData(runs.status(self.store, self.settings, now),
                        tasks.listing(self.store, self.settings, now), failures[:20], now)


def _bearer(header: str) -> str | None:
    match = re.fullmatch(r"\s*Bearer\s+(\S+)\s*", header, re.IGNORECASE)
    return match.group(1) if match else None


def _form(body: bytes) -> dict[str, str]:
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    return {k: v[0] for k, v in fields.items()}


SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    # No script may run at all; forms may only post back here; no framing (clickjacking).
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
     "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
)


class _Handler(BaseHTTPRequestHandler):
    server_version = "dbcron"
    protocol_version = "HTTP/1.1"
    api: Api  # set on the subclass made per server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length_text = self.headers.get("Content-Length", "0")
        length = int(length_text) if length_text.isdigit() else -1
        if length < 0 or length > MAX_BODY:
            reply = _error(413, f"request body over {MAX_BODY} bytes")
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                reply = self.api.handle(method, self.path, headers, body, self.client_address[0])
            except Exception:  # the store briefly down: a 503, never a dead server thread
                log.exception("http: %s %s failed", method, urlsplit(self.path).path)
                reply = _error(503, "the store is not answering; try again shortly")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in SECURITY_HEADERS + reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def version_string(self) -> str:
        return self.server_version  # no Python version for scanners to match

    def log_message(self, format: str, *args: Any) -> None:
        # Paths only (no query, no headers): nothing secret reaches the log.
        log.debug("http: %s %s -> %s", self.command, urlsplit(self.path).path,
                  args[1] if len(args) > 1 else "")


class HttpServer:
    """The listening socket on a thread of its own; started and stopped by the daemon."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, address: str) -> tuple[str, int]:
        """Bind and serve; returns the bound (host, port): port 0 picks a free one."""
        import socket

        from dbcron.daemon.metrics import parse_address

        host, port = parse_address(address, "HTTP address")
        handler = type("Handler", (_Handler,), {"api": self.api})
        server_class = type("Server", (ThreadingHTTPServer,), {
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET,
            "daemon_threads": True,
        })
        self._server = server_class((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="dbcron-http",
                                        daemon=True)
        self._thread.start()
        return host, self._server.server_address[1]

    def stop(self) -> None:
        from dbcron.daemon.metrics import stop_serving

        stop_serving(self._server, self._thread)
        self._server = self._thread = None
