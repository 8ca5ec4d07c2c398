"""Logging: text, journald priorities, JSON, and no secret in any line."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbcron.logs import (
    JsonFormatter,
    SecretFilter,
    TextFormatter,
    configure_logging,
    syslog_priority,
)

TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ")


def _record(
    level: int = logging.INFO,
    msg: str = "ran %s",
    args: tuple[object, ...] = ("daily-sales",),
    **extra: object,
) -> logging.LogRecord:
    record = logging.LogRecord("dbcron.runner", level, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("dbcron")
    saved = (list(root.handlers), root.level, ours.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    ours.setLevel(saved[2])
    logging.captureWarnings(False)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 3),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
    ],
)
def test_syslog_priority(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_text_line_is_timestamped() -> None:
    line = TextFormatter(journald=False).format(_record())
    assert TIMESTAMPED.match(line)
    assert line.endswith(" INFO dbcron.runner: ran daily-sales")


@pytest.mark.parametrize(
    ("level", "prefix"),
    [(logging.ERROR, "<3>ERROR"), (logging.WARNING, "<4>WARNING"), (logging.DEBUG, "<7>DEBUG")],
)
def test_journald_text_has_priority_and_no_timestamp(level: int, prefix: str) -> None:
    line = TextFormatter(journald=True).format(_record(level))
    assert line == f"{prefix} dbcron.runner: ran daily-sales"


def test_journald_traceback_lines_all_carry_the_priority() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record(logging.ERROR)
        record.exc_info = sys.exc_info()
    lines = TextFormatter(journald=True).format(record).split("\n")
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: boom"


def test_json_line_has_fields_and_extras() -> None:
    record = _record(
        task="daily-sales",
        slot="2026-11-20T09:00:00+00:00",
        status="succeeded",
        duration=1.25,
        rows=42,
    )
    doc = json.loads(JsonFormatter(journald=False).format(record))
    assert doc["level"] == "INFO"
    assert doc["logger"] == "dbcron.runner"
    assert doc["message"] == "ran daily-sales"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$", doc["ts"])
    assert {k: doc[k] for k in ("task", "slot", "status", "duration", "rows")} == {
        "task": "daily-sales",
        "slot": "2026-11-20T09:00:00+00:00",
        "status": "succeeded",
        "duration": 1.25,
        "rows": 42,
    }


def test_json_under_journald_is_prefixed_and_one_line() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = _record(logging.ERROR)
        record.exc_info = sys.exc_info()
    line = JsonFormatter(journald=True).format(record)
    assert line.startswith("<3>{")
    assert "\n" not in line
    assert "ValueError: bad\nvalue" in json.loads(line[3:])["exc"]


def test_secret_filter_masks_message_args_traceback_and_extras() -> None:
    try:
        raise ConnectionError("cannot reach postgresql://app:tb-secret@db/x")
    except ConnectionError:
        record = _record(
            logging.ERROR,
            "source %s failed",
            ("postgresql://app:arg-secret@db/x",),
            error="password=extra-secret",
        )
        record.exc_info = sys.exc_info()
    assert SecretFilter().filter(record)
    line = JsonFormatter(journald=False).format(record)
    for secret in ("tb-secret", "arg-secret", "extra-secret"):
        assert secret not in line
    assert "postgresql://app:***@db/x" in line


def test_configure_logging_end_to_end(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging({}, level="debug", fmt="text")
    logging.getLogger("dbcron.store").debug("store at %s", "postgresql://u:hunter2@h/db")
    logging.getLogger("apscheduler.scheduler").info("library chatter")
    logging.getLogger("apscheduler.scheduler").warning("library warning")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert TIMESTAMPED.match(err[0])
    assert err[0].endswith("DEBUG dbcron.store: store at postgresql://u:***@h/db")
    assert err[1].endswith("WARNING apscheduler.scheduler: library warning")


def test_secret_filter_lets_bad_format_args_through_to_the_handler() -> None:
    # Raising here would hit the code that logged; the handler reports it instead.
    record = _record(logging.ERROR, "%d rows", ("many",))
    assert SecretFilter().filter(record)
    assert (record.msg, record.args) == ("%d rows", ("many",))


def test_configure_logging_twice_keeps_one_handler(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging({"DBCRON_LOG_FORMAT": "json"})
    configure_logging({"DBCRON_LOG_FORMAT": "json"})
    logging.getLogger("dbcron.daemon").info("once", extra={"tasks": 3})
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["tasks"] for line in lines] == [3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "xml"}, "log format 'xml' is not one of: text, json"),
        (
            {"level": "loud"},
            "log level 'loud' is not one of: DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
    ],
)
def test_bad_arguments_are_rejected(
    restore_logging: None, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        configure_logging({}, **kwargs)
    assert str(excinfo.value) == message


CHILD = """
import logging, os
from dbcron.logs import configure_logging
configure_logging(os.environ)
log = logging.getLogger("dbcron.runner")
log.info("run started")
log.warning("slow source")
log.error("run failed: %s", "postgresql://u:hunter2@db/x")
"""


def _run_child(tmp_path: Path, fmt: str, journal_stream: str | None) -> list[str]:
    """Run CHILD with stderr on a file whose dev:ino may be announced as the journal."""
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        stat = os.fstat(err.fileno())
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        src = str(Path(__file__).resolve().parents[1] / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env["DBCRON_LOG_FORMAT"] = fmt
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream.format(dev=stat.st_dev, ino=stat.st_ino)
        subprocess.run([sys.executable, "-c", CHILD], stderr=err, env=env, check=True, timeout=30)
    return err_path.read_text().splitlines()


def test_subprocess_under_journald_gets_priorities(tmp_path: Path) -> None:
    lines = _run_child(tmp_path, "text", "{dev}:{ino}")
    assert lines == [
        "<6>INFO dbcron.runner: run started",
        "<4>WARNING dbcron.runner: slow source",
        "<3>ERROR dbcron.runner: run failed: postgresql://u:***@db/x",
    ]


def test_subprocess_json_under_journald(tmp_path: Path) -> None:
    lines = _run_child(tmp_path, "json", "{dev}:{ino}")
    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>"]
    assert json.loads(lines[2][3:])["message"] == "run failed: postgresql://u:***@db/x"


def test_subprocess_with_foreign_journal_stream_is_timestamped(tmp_path: Path) -> None:
    # An inherited JOURNAL_STREAM that is not our stderr must not switch journald mode on.
    lines = _run_child(tmp_path, "text", "{dev}:1")
    assert len(lines) == 3
    assert all(TIMESTAMPED.match(line) for line in lines)
    assert lines[2].endswith("ERROR dbcron.runner: run failed: postgresql://u:***@db/x")


def test_log_lines_mask_secrets_by_structure() -> None:
    # A library logging its config dict, or an ODBC string URL-encoded in a URL.
    record = _record(logging.ERROR, "connect %r via %s", (
        {"host": "db", "password": "dict-secret"},
        "mssql+pyodbc:///?odbc_connect=DSN%3Dx%3BPWD%3Dodbc-secret%3B",
    ))
    assert SecretFilter().filter(record)
    for line in (JsonFormatter(journald=False).format(record), logging.Formatter().format(record)):
        assert "dict-secret" not in line and "odbc-secret" not in line
        assert "'password': '***'" in line and "PWD%3D***%3B" in line
