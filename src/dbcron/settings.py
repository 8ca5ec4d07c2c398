"""Settings: DBCRON_* from the environment, an optional .env, and CLI flags, in rising priority.

One validated object built once at the process edge and passed down; each
value remembers where it came from so `manage-tasks config` can say so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dbcron.errors import SettingsError

SECRET_SETTINGS = {"smtp_password"}
_CHOICES = {"smtp_security": ("none", "starttls", "ssl"), "log_format": ("text", "json")}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    store: str
    timezone: str = "UTC"
    max_workers: int = 4
    output_dir: Path = Path("var/output")
    outbox_dir: Path = Path("var/outbox")
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_security: str = "none"
    smtp_from: str = "dbcron@localhost"
    smtp_timeout: float = 30.0
    max_attachment_mb: float = 10.0
    publish_dir: Path | None = None  # where files too large to mail are copied for recipients
    publish_url: str | None = None  # the address that directory is served at
    log_format: str = "text"
    log_level: str = "INFO"
    drain_seconds: float = 30.0
    retry_backoff_seconds: float = 30.0
    # How long a claimed run stays its daemon's without a heartbeat renewing it.
    lease_seconds: float = 60.0
    poll_seconds: float = 5.0
    keep_history_days: int = 90
    keep_output_days: int = 14
    metrics_address: str | None = None
    allowed_source_vars: str | None = None
    call_modules: str | None = None
    http_address: str | None = None
    http_rate_limit: int = 120  # requests per minute per token (or client without one)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "dbcron.pid"

    @property
    def max_attachment_bytes(self) -> int:
        """The attachment limit in bytes as sent (base64), from DBCRON_MAX_ATTACHMENT_MB."""
        return int(self.max_attachment_mb * 1024 * 1024)

    @property
    def source_allowlist(self) -> tuple[str, ...]:
        """Variables besides DBCRON_SOURCE_* that task sources may read (dbcron.sources)."""
        from dbcron.sources import parse_allowlist

        return parse_allowlist(self.allowed_source_vars)

    @property
    def call_allowlist(self) -> tuple[str, ...]:
        """Module prefixes whose functions call tasks may run (dbcron.callables)."""
        from dbcron.callables import parse_modules

        return parse_modules(self.call_modules)

    def describe(self) -> list[tuple[str, str, str]]:
        """(DBCRON_ name, value with secrets masked, where it came from) for `config`."""
        from dbcron.secrets import mask_secrets

        rows = []
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if f.name in SECRET_SETTINGS and value:
                shown = "***"
            else:
                shown = mask_secrets("" if value is None else str(value))
            rows.append((env_name(f.name), shown, self.sources.get(f.name, "default")))
        return rows


def env_name(name: str) -> str:
    return "DBCRON_" + name.upper()


def _is_setting(key: str) -> bool:
    # DBCRON_SOURCE_<NAME> are named task sources and DBCRON_SECRET_<NAME> the secrets of
    # webhooks and monitors (dbcron.sources), not settings.
    return key.startswith("DBCRON_") and not key.startswith(("DBCRON_SOURCE_", "DBCRON_SECRET_"))


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge .env < environment < overrides, validate, and fill derived defaults."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    raw: dict[str, tuple[str, str]] = {}
    dotenv = cwd / ".env"
    if _is_file(dotenv):
        from dotenv import dotenv_values  # only paid for when a .env exists

        for key, value in dotenv_values(dotenv).items():
            if _is_setting(key) and value is not None:
                raw[key[7:].lower()] = (value, f"{dotenv}")
    for key, value in environ.items():
        if _is_setting(key):
            raw[key[7:].lower()] = (value, "environment")
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = (str(value), "command line")

    known = {f.name: f for f in fields(Settings) if f.name != "sources"}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        names = ", ".join(env_name(k) for k in unknown)
        raise SettingsError(f"unknown setting {names}; valid: {', '.join(map(env_name, known))}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (text, origin) in raw.items():
        values[name] = _convert(name, text, known[name].type)
        sources[name] = origin

    state_dir = Path(
        values.get("state_dir") or environ.get("STATE_DIRECTORY", "").split(":")[0] or "var"
    )
    if not state_dir.is_absolute():
        state_dir = cwd / state_dir
    values["state_dir"] = state_dir
    if "state_dir" not in sources and environ.get("STATE_DIRECTORY"):
        sources["state_dir"] = "STATE_DIRECTORY (systemd)"
    values.setdefault("store", f"sqlite:///{state_dir / 'dbcron.db'}")
    values.setdefault("output_dir", state_dir / "output")
    values.setdefault("outbox_dir", state_dir / "outbox")
    if values.get("smtp_security") == "ssl" and "smtp_port" not in values:
        values["smtp_port"] = 465
    settings = Settings(**values, sources=sources)
    _check(settings)
    from dbcron.secrets import remember_login, remember_url

    # From here on, these exact values are masked wherever they are quoted back.
    remember_login(settings.smtp_user, settings.smtp_password)
    remember_url(settings.store)
    return settings


def load_environment(cwd: Path | None = None) -> None:
    """Put a .env file's variables into the process environment (set ones win).

    Task sources name `DBCRON_SOURCE_SALES`; like systemd's EnvironmentFile=, a .env
    beside the working directory is where such variables live on a checkout.
    """
    dotenv = (Path.cwd() if cwd is None else cwd) / ".env"
    if _is_file(dotenv):
        from dotenv import load_dotenv

        load_dotenv(dotenv, override=False)


def _is_file(path: Path) -> bool:
    """False, not PermissionError, when run from a directory this user cannot read."""
    try:
        return path.is_file()
    except OSError:
        return False


def _convert(name: str, text: str, kind: Any) -> Any:
    kind = str(kind)
    try:
        if "int" in kind and "Path" not in kind:
            return int(text)
        if "float" in kind:
            return float(text)
    except ValueError:
        raise SettingsError(f"{env_name(name)}={text!r} is not a number") from None
    if "Path" in kind:
        return Path(text)
    if name in _CHOICES and text not in _CHOICES[name]:
        raise SettingsError(
            f"{env_name(name)}={text!r} is not valid; use one of {', '.join(_CHOICES[name])}"
        )
    if name == "log_level":
        text = text.upper()
        if text not in _LEVELS:
            raise SettingsError(f"{env_name(name)}={text!r}; use one of {', '.join(_LEVELS)}")
    return text or None


def _check(settings: Settings) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"DBCRON_TIMEZONE={settings.timezone!r} is not an IANA zone (e.g. UTC, Europe/London)"
        ) from None
    from dbcron.callables import parse_modules
    from dbcron.sources import parse_allowlist

    try:
        parse_allowlist(settings.allowed_source_vars)
        parse_modules(settings.call_modules)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if settings.max_workers < 1:
        raise SettingsError("DBCRON_MAX_WORKERS must be at least 1")
    if settings.http_rate_limit < 1:
        raise SettingsError("DBCRON_HTTP_RATE_LIMIT (requests per minute) must be at least 1")
    for name in (
        "drain_seconds", "poll_seconds", "smtp_timeout", "max_attachment_mb",
        "retry_backoff_seconds", "lease_seconds",
    ):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{env_name(name)} must be greater than 0")
