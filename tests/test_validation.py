"""Task validation: every bad input names the place, the field, the value and what is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbcron.errors import InvalidTask
from dbcron.model import Task, json_schema
from dbcron.services.task_files import read_documents
from dbcron.validation import parse_task, parse_tasks

BASE: dict[str, Any] = {
    "name": "daily-sales",
    "kind": "report",
    "schedule": {"cron": "0 9 * * mon-fri", "timezone": "Asia/Kolkata"},
    "source": "sales",
    "query": "SELECT 1",
}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidTask) as info:
        parse_task(data, "tasks/x.yaml")
    return info.value.problems


def with_(**changes: Any) -> dict[str, Any]:
    data = {**BASE, **changes}
    return {k: v for k, v in data.items() if v is not None}


def test_design_example_is_valid_and_round_trips() -> None:
    data = {
        **BASE,
        "description": "Yesterday's sales by region",
        "schedule": {
            "cron": "0 9 * * mon-fri", "timezone": "Asia/Kolkata", "jitter": "0s",
            "start": None, "end": None, "max_runs": None,
            "dst": {"gap": "shift", "overlap": "first"},
        },
        "policy": {"catchup": "latest", "grace": "1h", "overlap": "skip", "timeout": "15m",
                   "retries": 2},
        "params": {"day": "{{ yesterday }}"},
        "export": {"formats": ["xlsx", "pdf"], "filename": "sales-{{ yesterday }}",
                   "title": "Sales by region, {{ yesterday }}"},
        "email": {"to": ["manager@example.com"], "cc": [], "subject": "Sales {{ yesterday }}",
                  "send": "always"},
        "notify": {"on_failure": ["ops@example.com"]},
    }
    task = parse_task(data, "x")
    stored = task.to_data()
    assert stored["policy"] == {"retries": 2}
    assert Task.model_validate(stored) == task


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"schedul": {"cron": "0 9 * * *"}, "schedule": None},
         ["tasks/x.yaml: task 'daily-sales': schedule: is required",
          "tasks/x.yaml: task 'daily-sales': schedul: unknown field 'schedul'; did you mean "
          "'schedule'? valid fields: name, description, kind, enabled, schedule, policy, source, "
          "query, statements, params, row_limit, max_rows_affected, condition, export, email, "
          "burst, notify, monitor, deliver, ready, call, args, kwargs"]),
        ({"schedule": {"cron": "0 9 * * mon-fri", "timezon": "UTC"}},
         ["tasks/x.yaml: task 'daily-sales': schedule.timezon: unknown field 'timezon'; did you "
          "mean 'timezone'? valid fields: cron, every, at, timezone, jitter, start, end, "
          "max_runs, dst, calendar, on_holiday, business_day, business_days"]),
        ({"schedule": {"cron": "0 9 * * fri-mon-x"}},
         ["tasks/x.yaml: task 'daily-sales': schedule.cron: day of week: 'mon-x' is not a "
          "number in 0-7"]),
        ({"schedule": {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}},
         ["tasks/x.yaml: task 'daily-sales': schedule.timezone: unknown timezone "
          "'Mars/Olympus': use an IANA name such as UTC, Europe/London, America/New_York, "
          "Asia/Kolkata"]),
        ({"policy": {"timeout": "15 minutes"}},
         ["tasks/x.yaml: task 'daily-sales': policy.timeout: bad duration '15 minutes': "
          "expected a number with a unit s, m, h, d or w, e.g. 30s, 15m, 2h, 1d, 1h30m"]),
        ({"export": {"formats": ["xlsx", "docx"]}},
         ["tasks/x.yaml: task 'daily-sales': export.formats.1: Input should be 'xlsx', 'pdf' "
          "or 'csv' (got 'docx')"]),
        ({"kind": "reprot"},
         ["tasks/x.yaml: task 'daily-sales': kind: Input should be 'report', 'sql', 'alert' or "
          "'call' (got 'reprot')"]),
        ({"name": "Daily Sales"},
         ["tasks/x.yaml: task 'Daily Sales': name: 'Daily Sales' is not a valid name: use "
          "lower-case letters, digits, '-' and '_', starting with a letter or digit "
          "(e.g. daily-sales)"]),
        ({"schedule": {"cron": "0 9 * * *", "every": "1h"}},
         ["tasks/x.yaml: task 'daily-sales': schedule: give exactly one of cron, every, at "
          "(got cron, every)"]),
        ({"query": None},
         ["tasks/x.yaml: task 'daily-sales': (task): a report task needs 'query'"]),
        ({"statements": ["DELETE FROM x"]},
         ["tasks/x.yaml: task 'daily-sales': (task): 'statements' is not used by a report task "
          "(it takes: burst, deliver, email, export, params, query, row_limit, source)"]),
        ({"kind": "alert", "condition": "waste_kg >> 50", "email": {"to": ["a@b.c"]}},
         ["tasks/x.yaml: task 'daily-sales': condition: bad condition 'waste_kg >> 50': use "
          "'rows' (any row returned) or 'column op value' with op one of < <= > >= == !=, "
          "e.g. 'waste_kg > 50'"]),
        ({"export": {"columns": {"amount": {"format": "0 kg"}}}},
         ["tasks/x.yaml: task 'daily-sales': export.columns.amount.format: format '0 kg': 'k' "
          "is not a number format code (0 # ? , . %); quote literal text, e.g. \"kg\"; "
          "examples: \"#,##0.00\", \"0.0%\", \"0\", \"yyyy-mm-dd\", \"dd.mm.yyyy hh:mm\""]),
        ({"export": {"columns": {"amount": {"lable": "Amount"}}}},
         ["tasks/x.yaml: task 'daily-sales': export.columns.amount.lable: unknown field "
          "'lable'; did you mean 'label'? valid fields: format, label, wrap"]),
        ({"export": {"csv": {"delimiter": "x"}}},
         ["tasks/x.yaml: task 'daily-sales': export.csv.delimiter: delimiter 'x' cannot be "
          "used: use one of , ; | or a tab"]),
    ],
)
def test_bad_fields_are_named_with_what_is_valid(changes: dict[str, Any],
                                                 expected: list[str]) -> None:
    assert problems(with_(**changes)) == expected


def test_source_password_is_masked_in_errors() -> None:
    lines = problems(with_(source=["postgresql://u:hunter2@h/db"]))
    assert "hunter2" not in "\n".join(lines)


def test_duplicate_names_across_files() -> None:
    with pytest.raises(InvalidTask) as info:
        parse_tasks([("a.yaml", BASE), ("b.yaml", BASE)])
    assert info.value.problems == [
        "b.yaml: duplicate task name 'daily-sales' (also in a.yaml); names must be unique"
    ]


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nkind: report\n  schedule: oops\n")
    with pytest.raises(InvalidTask) as info:
        read_documents([path])
    assert info.value.problems == [
        f"{path}: line 3, column 11: invalid YAML: mapping values are not allowed in this context"
    ]


def test_a_file_may_hold_a_list_under_tasks(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump({"tasks": [BASE, {**BASE, "name": "other"}]}))
    items = read_documents([path])
    assert [origin for origin, _ in items] == [f"{path} (tasks[0])", f"{path} (tasks[1])"]


def test_json_schema_describes_the_task() -> None:
    schema = json_schema()
    assert schema["title"] == "dbcron task"
    assert set(schema["required"]) == {"name", "kind", "schedule"}
    assert schema["properties"]["kind"]["enum"] == ["report", "sql", "alert", "call"]
    assert schema["$defs"]["Policy"]["properties"]["timeout"]["type"] == "string"
