"""What every command shares: settings, the store, the clock, output helpers.

Opened lazily, so `--help` and `schema` never import SQLAlchemy.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from dbcron.settings import Settings
    from dbcron.store import Store


class App:
    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides
        self._settings: Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from dbcron.settings import load_environment, load_settings

            # Settings read .env themselves, to say which values came from it.
            environ = dict(os.environ)
            load_environment()
            self._settings = load_settings(environ, overrides=self.overrides)
        return self._settings

    @property
    def store(self) -> Store:
        """The store, created if missing: for commands that write to it."""
        return self._open(create=True)

    @property
    def existing_store(self) -> Store:
        """The store, which must exist: for commands that only read it."""
        return self._open(create=False)

    def _open(self, create: bool) -> Store:
        if self._store is None:
            from dbcron.store import open_store

            self._store = open_store(self.settings.store, create=create)
        return self._store

    def now(self) -> datetime:
        """The one place a command reads the clock; everything below takes it as an argument."""
        return datetime.now(UTC)

    def changed(self) -> None:
        """After a store change: tell a local daemon to reload, and say so."""
        from dbcron.services.local_daemon import reload_daemon

        click.echo(reload_daemon(self.settings.pidfile), err=True)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_app = click.make_pass_decorator(App)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(rows: list[list[str]], headers: list[str]) -> None:
    """Plain aligned columns, written at once (10,000 echo calls cost 100 ms)."""
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=True)]
    click.echo("\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ))


def local(ts: str | datetime | None, tz: str | tzinfo | None = None) -> str:
    """An instant for people: minutes, in the task's zone, with the offset."""
    if ts is None:
        return "-"
    value = datetime.fromisoformat(ts) if isinstance(ts, str) else ts
    if isinstance(tz, str):
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(tz)
    return _stamp(value, tz)


@lru_cache(maxsize=8192)
def _stamp(value: datetime, tz: tzinfo | None) -> str:
    # Cached: a list of 10,000 tasks shows a few hundred distinct times.
    return (value.astimezone(tz) if tz else value).strftime("%Y-%m-%d %H:%M %z")


def confirm_or_yes(question: str, yes: bool) -> None:
    """Ask on a terminal; without one, demand --yes rather than guess."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{question} Add --yes to confirm without a terminal.")
    click.confirm(question, abort=True)

