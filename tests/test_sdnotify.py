"""sd_notify client against real unix datagram sockets made by the test."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbcron.daemon.sdnotify import Notifier, watchdog_interval


def _receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"dbcron-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    yield "@" + name, sock
    sock.close()


@pytest.mark.parametrize("kind", ["path_socket", "abstract_socket"])
def test_messages_arrive_exactly(kind: str, request: pytest.FixtureRequest) -> None:
    env_value, sock = request.getfixturevalue(kind)
    notifier = Notifier.from_env({"NOTIFY_SOCKET": env_value})
    assert notifier.enabled

    assert notifier.ready()
    assert _receive(sock) == "READY=1"
    assert notifier.reloading(123456789)
    assert _receive(sock) == "RELOADING=1\nMONOTONIC_USEC=123456789"
    assert notifier.status("12 tasks; next daily-sales at 09:00")
    assert _receive(sock) == "STATUS=12 tasks; next daily-sales at 09:00"
    assert notifier.watchdog()
    assert _receive(sock) == "WATCHDOG=1"
    assert notifier.stopping()
    assert _receive(sock) == "STOPPING=1"
    assert notifier.send(READY=1, STATUS="up")
    assert _receive(sock) == "READY=1\nSTATUS=up"
    notifier.close()


def test_newline_in_value_cannot_inject_a_field(path_socket: tuple[str, socket.socket]) -> None:
    env_value, sock = path_socket
    Notifier.from_env({"NOTIFY_SOCKET": env_value}).status("line one\nREADY=1")
    assert _receive(sock) == "STATUS=line one READY=1"


def test_without_notify_socket_nothing_happens() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()


def test_unsupported_address_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dbcron.sdnotify"):
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert "neither a path nor an @abstract socket" in caplog.text


def test_send_failure_is_swallowed_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    with caplog.at_level(logging.WARNING, logger="dbcron.sdnotify"):
        assert not notifier.ready()
        assert not notifier.watchdog()
        assert not notifier.stopping()
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "junk"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_watchdog_interval_defaults_to_own_pid() -> None:
    environ = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(environ) == 1.0
