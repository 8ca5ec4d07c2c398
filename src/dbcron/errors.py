"""Small typed exceptions that carry what the user needs to fix the problem."""

from __future__ import annotations


class DbcronError(Exception):
    """Base of every error the CLI turns into a one-line message and exit code 1."""


class InvalidTask(DbcronError):
    """One or more task definitions are invalid; `problems` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class TaskNotFound(DbcronError):
    def __init__(self, name: str, known: list[str]) -> None:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        super().__init__(f"no task named '{name}'{hint}; 'manage-tasks list' shows them")
        self.name = name


class SettingsError(DbcronError):
    """A DBCRON_* setting has a value that cannot be used."""


class StoreError(DbcronError):
    """The store cannot be opened or is newer than this version of dbcron."""


class ImportFileError(DbcronError):
    """A tasks.json of the older tool that cannot be imported."""


class TemplateError(DbcronError):
    """A task's template (subject, file name, title, parameter) cannot be rendered.

    Trying again renders it the same way, so a run does not retry it.
    """


class DaemonError(DbcronError):
    """The daemon cannot start (another one holds the store, the store cannot open)."""
