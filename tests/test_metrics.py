"""Metrics served over real HTTP and read back with the Prometheus text parser."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbcron.daemon.metrics import Metrics, parse_address

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(host: str, port: int) -> Samples:
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    yield m
    m.stop()


def test_scrape_after_runs(metrics: Metrics) -> None:
    host, port = metrics.start_server("127.0.0.1:0")
    assert port > 0
    finished = datetime(2026, 11, 20, 9, 0, 5, tzinfo=UTC)
    metrics.observe_run("daily-sales", "succeeded", 2.0, 0.02, 42, finished)
    metrics.observe_run("daily-sales", "succeeded", 4.0, 0.2, 8, finished.timestamp() + 60)
    metrics.observe_run("daily-sales", "failed", 0.5, 0.0, None, finished.timestamp() + 120)
    metrics.observe_run("cleanup", "timed_out", 900.0, None, 0, finished)
    metrics.set_tasks_loaded(12)
    metrics.reloaded(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))

    s = _scrape(host, port)

    assert _value(s, "dbcron_runs_total", task="daily-sales", status="succeeded") == 2
    assert _value(s, "dbcron_runs_total", task="daily-sales", status="failed") == 1
    assert _value(s, "dbcron_runs_total", task="cleanup", status="timed_out") == 1
    assert _value(s, "dbcron_run_duration_seconds_count", task="daily-sales") == 3
    assert _value(s, "dbcron_run_duration_seconds_sum", task="daily-sales") == 6.5
    assert _value(s, "dbcron_run_duration_seconds_bucket", task="daily-sales", le="2.5") == 2
    assert _value(s, "dbcron_run_duration_seconds_bucket", task="cleanup", le="600.0") == 0
    assert _value(s, "dbcron_run_duration_seconds_bucket", task="cleanup", le="1800.0") == 1
    assert _value(s, "dbcron_run_lateness_seconds_count", task="daily-sales") == 3
    assert _value(s, "dbcron_run_lateness_seconds_bucket", task="daily-sales", le="0.05") == 2
    # a run started by hand has no lateness
    assert ("dbcron_run_lateness_seconds_count", frozenset({("task", "cleanup")})) not in s
    assert _value(s, "dbcron_run_rows_total", task="daily-sales") == 50
    assert _value(s, "dbcron_run_rows_total", task="cleanup") == 0
    # last success is the second run, not the later failure
    assert _value(s, "dbcron_last_success_timestamp_seconds", task="daily-sales") == (
        finished.timestamp() + 60
    )
    assert ("dbcron_last_success_timestamp_seconds", frozenset({("task", "cleanup")})) not in s
    assert _value(s, "dbcron_tasks_loaded") == 12
    assert _value(s, "dbcron_daemon_up") == 1
    assert _value(s, "dbcron_last_reload_timestamp_seconds") == 1_795_161_600.0


def test_stop_closes_the_port(metrics: Metrics) -> None:
    host, port = metrics.start_server("127.0.0.1:0")
    assert _value(_scrape(host, port), "dbcron_daemon_up") == 1
    metrics.stop()
    assert metrics.registry.get_sample_value("dbcron_daemon_up") == 0
    with pytest.raises(urllib.error.URLError):
        _scrape(host, port)


def test_second_start_is_refused(metrics: Metrics) -> None:
    metrics.start_server("127.0.0.1:0")
    with pytest.raises(RuntimeError, match="already started"):
        metrics.start_server("127.0.0.1:0")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_ipv6_address(metrics: Metrics) -> None:
    host, port = metrics.start_server("[::1]:0")
    assert host == "::1"
    assert _value(_scrape(host, port), "dbcron_daemon_up") == 1


def test_naive_timestamp_is_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        metrics.reloaded(datetime(2026, 11, 20, 8, 0))


def test_two_instances_do_not_collide() -> None:
    # Each owns its registry; the global one would raise "Duplicated timeseries".
    a, b = Metrics(), Metrics()
    a.set_tasks_loaded(1)
    b.set_tasks_loaded(2)
    assert a.registry.get_sample_value("dbcron_tasks_loaded") == 1


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("localhost:80", ("localhost", 80)),
        ("[::1]:9464", ("::1", 9464)),
        ("[::]:0", ("::", 0)),
        (" 127.0.0.1:9464 ", ("127.0.0.1", 9464)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


USAGE = "expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("9464", f"metrics address '9464': {USAGE}"),
        (":9464", f"metrics address ':9464': {USAGE}"),
        ("", f"metrics address '': {USAGE}"),
        ("127.0.0.1:", f"metrics address '127.0.0.1:': port must be 0-65535, {USAGE}"),
        ("127.0.0.1:http", f"metrics address '127.0.0.1:http': port must be 0-65535, {USAGE}"),
        ("127.0.0.1:65536", f"metrics address '127.0.0.1:65536': port must be 0-65535, {USAGE}"),
        ("127.0.0.1:-1", f"metrics address '127.0.0.1:-1': port must be 0-65535, {USAGE}"),
        ("::1:9464", f"metrics address '::1:9464': put an IPv6 address in brackets, {USAGE}"),
        ("[nothost]:9464", "metrics address '[nothost]:9464': 'nothost' is not an IPv6 address"),
        ("[::1:9464", f"metrics address '[::1:9464': put an IPv6 address in brackets, {USAGE}"),
    ],
)
def test_parse_address_errors(address: str, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_address(address)
    assert str(excinfo.value) == message


def test_prometheus_client_is_imported_lazily() -> None:
    code = (
        "import sys, dbcron.daemon.metrics; "
        "assert 'prometheus_client' not in sys.modules, 'imported eagerly'; "
        "dbcron.daemon.metrics.Metrics(); "
        "assert 'prometheus_client' in sys.modules"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": src}, check=True, timeout=30)


def test_gate_outcomes_are_counted(metrics: Metrics) -> None:
    host, port = metrics.start_server("127.0.0.1:0")
    metrics.observe_gate("daily-sales", "waiting")
    metrics.observe_gate("daily-sales", "waiting")
    metrics.observe_gate("daily-sales", "gave_up_notify")
    s = _scrape(host, port)
    assert _value(s, "dbcron_gate_events_total", task="daily-sales", outcome="waiting") == 2
    assert _value(s, "dbcron_gate_events_total", task="daily-sales",
                  outcome="gave_up_notify") == 1
