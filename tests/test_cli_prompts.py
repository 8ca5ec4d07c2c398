"""`manage-tasks add` on a real terminal: the prompts a person answers (a pty, no mocks)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path


def read_until(fd: int, text: str, timeout: float = 20) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if text.encode() in seen:
                return seen.decode()
    raise AssertionError(f"no {text!r} on the terminal; saw {seen.decode()!r}")


def test_add_prompts_on_a_terminal(state_dir: Path) -> None:
    main, child = os.openpty()
    env = {**os.environ, "DBCRON_STATE_DIR": str(state_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from dbcron.cli import main; main()", "add"],
        stdin=child, stdout=child, stderr=child, env=env, close_fds=True,
    )
    os.close(child)
    answers = [
        ("Kind", "sql"),
        ("Task name", "purge-menu"),
        ("Description", "Old menu rows"),
        ("Source name", "sqlite:///menu.db"),
        ("SQL statement", "DELETE FROM menu WHERE menu_date < date('now')"),
        ("Schedule: cron, every or at", "cron"),
        ("Cron schedule", "30 2 * * *"),
        ("Timezone", "Europe/London"),
    ]
    for prompt, answer in answers:
        read_until(main, prompt)
        os.write(main, answer.encode() + b"\r")
    read_until(main, "added purge-menu")
    assert proc.wait(timeout=20) == 0
    os.close(main)
    shown = subprocess.run(
        [sys.executable, "-c", "from dbcron.cli import main; main()", "show", "purge-menu",
         "--json"], env=env, capture_output=True, text=True, check=True,
    )
    data = json.loads(shown.stdout)
    assert data["kind"] == "sql" and data["description"] == "Old menu rows"
    assert data["statements"] == ["DELETE FROM menu WHERE menu_date < date('now')"]
    assert data["schedule"] == {"cron": "30 2 * * *", "timezone": "Europe/London"}


def test_a_bad_answer_is_asked_again_keeping_the_others(state_dir: Path) -> None:
    """Before: a bad cron at the end threw away every answer given before it."""
    main, child = os.openpty()
    env = {**os.environ, "DBCRON_STATE_DIR": str(state_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from dbcron.cli import main; main()", "add", "--kind", "call"],
        stdin=child, stdout=child, stderr=child, env=env, close_fds=True,
    )
    os.close(child)
    answers = [
        ("Task name", "tick"),
        ("Description", "Every half hour"),
        ("Function", "tests.jobs:succeed"),
        ("Schedule: cron, every or at", "cron"),
        ("Cron schedule", "99 9 * * *"),
        ("Timezone", "Mars/Olympus"),
    ]
    for prompt, answer in answers:
        read_until(main, prompt)
        os.write(main, answer.encode() + b"\r")
    seen = read_until(main, "Schedule: cron, every or at")
    assert "schedule.cron: minute: 99 is out of range 0-59" in seen
    os.write(main, b"every\r")
    read_until(main, "Every (e.g. 30m, 2h, 1d)")
    os.write(main, b"30m\r")
    seen = read_until(main, "Timezone")
    assert "schedule.timezone: unknown timezone 'Mars/Olympus'" in seen
    os.write(main, b"Europe/Paris\r")
    read_until(main, "added tick")
    assert proc.wait(timeout=20) == 0
    os.close(main)
    shown = subprocess.run(
        [sys.executable, "-c", "from dbcron.cli import main; main()", "show", "tick", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )
    data = json.loads(shown.stdout)
    assert data["description"] == "Every half hour" and data["call"] == "tests.jobs:succeed"
    assert data["schedule"] == {"every": "30m", "timezone": "Europe/Paris"}
