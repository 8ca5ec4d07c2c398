"""Prometheus metrics for the daemon, served over HTTP when an address is configured.

Off by default: ``prometheus_client`` is imported by ``Metrics()`` only, so a
daemon without ``--metrics-address`` (and every CLI command) never loads it.
The metrics live in a private ``CollectorRegistry`` rather than the global one,
so tests can build several ``Metrics`` side by side and only our series are
exported. No process collector: it reads ``/proc/stat``, which the unit's
``ProcSubset=pid`` hides, and systemd already accounts the unit's CPU and memory.

Rows are a counter (``dbcron_run_rows_total``) rather than a histogram: row
counts span from 0 to millions depending on the task, so no bucket layout fits
them all, while ``rate()`` over a counter answers the operational question
("how many rows does this task move per day").
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http.server import HTTPServer
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Report queries run from sub-second to an hour: the client's default buckets
# stop at 10 s, which would put every slow report in +Inf.
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Lateness is normally milliseconds; the tail shows a starved pool or catch-up.
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


def parse_address(address: str, what: str = "metrics address") -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` -> (host, port); ValueError says what is valid."""
    usage = "expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464"
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{what} {address!r}: {usage}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"{what} {address!r}: {host!r} is not an IPv6 address"
            ) from None
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"{what} {address!r}: put an IPv6 address in brackets, {usage}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{what} {address!r}: port must be 0-65535, {usage}")
    return host, int(port_text)


def _epoch(value: datetime | float) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            # A naive time would be read as the host's local time: refuse to guess.
            raise ValueError(f"timestamp {value.isoformat()} has no timezone")
        return value.timestamp()
    return float(value)


class Metrics:
    """The daemon's metrics; one instance per daemon, fed by the runner and the reload."""

    def __init__(self) -> None:
        import prometheus_client as prom

        self.registry: CollectorRegistry = prom.CollectorRegistry()
        reg = self.registry
        self.runs: Counter = prom.Counter(
            "dbcron_runs",
            "Finished runs by task and final status.",
            ["task", "status"],
            registry=reg,
        )
        self.duration: Histogram = prom.Histogram(
            "dbcron_run_duration_seconds",
            "Wall time of a run, start to finish.",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.lateness: Histogram = prom.Histogram(
            "dbcron_run_lateness_seconds",
            "Start time minus scheduled time of a run.",
            ["task"],
            buckets=LATENESS_BUCKETS,
            registry=reg,
        )
        self.rows: Counter = prom.Counter(
            "dbcron_run_rows", "Rows returned or affected by runs.", ["task"], registry=reg
        )
        self.last_success: Gauge = prom.Gauge(
            "dbcron_last_success_timestamp_seconds",
            "Unix time the task last succeeded.",
            ["task"],
            registry=reg,
        )
        self.tasks_loaded: Gauge = prom.Gauge(
            "dbcron_tasks_loaded", "Enabled tasks scheduled by the daemon.", registry=reg
        )
        self.up: Gauge = prom.Gauge(
            "dbcron_daemon_up", "1 while the daemon is running.", registry=reg
        )
        self.last_reload: Gauge = prom.Gauge(
            "dbcron_last_reload_timestamp_seconds",
            "Unix time of the last store (re)load.",
            registry=reg,
        )
        self.next_fire: Gauge = prom.Gauge(
            "dbcron_task_next_fire_timestamp_seconds",
            "Unix time of the slot the daemon expects to run next, per task.",
            ["task"],
            registry=reg,
        )
        self.overdue: Gauge = prom.Gauge(
            "dbcron_task_overdue",
            "1 when a task's expected slot is over a minute past with no run row for it.",
            ["task"],
            registry=reg,
        )
        self._watched: set[str] = set()
        self.gate: Counter = prom.Counter(
            "dbcron_gate_events",
            "Data-ready gate outcomes: waiting (one per look that found it shut), "
            "gave_up_skip / gave_up_run / gave_up_notify (its deadline passed).",
            ["task", "outcome"],
            registry=reg,
        )
        self.up.set(1)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_run(
        self,
        task: str,
        status: str,
        duration: float,
        lateness: float | None,
        rows: int | None,
        finished_at: datetime | float,
    ) -> None:
        """Record one finished run.

        ``lateness`` is None for runs started by hand (no slot to be late for);
        ``rows`` is None for tasks that have no rows (``call``).
        """
        self.runs.labels(task=task, status=status).inc()
        self.duration.labels(task=task).observe(duration)
        if lateness is not None:
            # A fire a few ms early (timer granularity) is not negative lateness.
            self.lateness.labels(task=task).observe(max(lateness, 0.0))
        if rows is not None:
            self.rows.labels(task=task).inc(rows)
        if status == "succeeded":
            self.last_success.labels(task=task).set(_epoch(finished_at))

    def set_expected(self, states: dict[str, tuple[datetime | None, bool]]) -> None:
        """Per task: the slot awaited and whether it is overdue; tasks not given are dropped."""
        for task in self._watched - states.keys():
            for gauge in (self.next_fire, self.overdue):
                with contextlib.suppress(KeyError):  # never set: its schedule had ended
                    gauge.remove(task)
        for task, (expected, late) in states.items():
            if expected is not None:
                self.next_fire.labels(task=task).set(_epoch(expected))
            else:
                with contextlib.suppress(KeyError):
                    self.next_fire.remove(task)
            self.overdue.labels(task=task).set(1 if late else 0)
        self._watched = set(states)

    def observe_gate(self, task: str, outcome: str) -> None:
        self.gate.labels(task=task, outcome=outcome).inc()

    def set_tasks_loaded(self, n: int) -> None:
        self.tasks_loaded.set(n)

    def reloaded(self, ts: datetime | float) -> None:
        self.last_reload.set(_epoch(ts))

    def start_server(self, address: str) -> tuple[str, int]:
        """Serve ``/metrics`` on a daemon thread; returns the bound (host, port).

        Port 0 picks a free port, which is what the returned port is for.
        """
        from prometheus_client import start_http_server

        if self._server is not None:
            raise RuntimeError("metrics server already started")
        host, port = parse_address(address)
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return host, self._server.server_port

    def stop(self) -> None:
        """Mark the daemon down and close the listening socket."""
        self.up.set(0)
        stop_serving(self._server, self._thread)
        self._server = self._thread = None


def stop_serving(server: HTTPServer | None, thread: threading.Thread | None) -> None:
    """Stop a server running on its own thread (metrics, the HTTP API) and wait for it."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)
