"""Mail for a run: deliver it by SMTP or into an outbox, and retry outages.

The runner's one import for mail: composing (``mailmessage``) and the default
body (``mailbody``) live next door and are re-exported here.

Building and sending are separate steps so that a retry sends the same bytes:
the exports are not rebuilt, and the Message-ID, derived from task and slot,
stays the same, so a duplicate from a retry, a restart or a second daemon can
be recognised (and is dropped by many servers and clients).
"""

from __future__ import annotations

import email.policy
import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol

from dbcron.jobs.export._files import DIR_MODE
from dbcron.jobs.mail.body import render_default_body
from dbcron.jobs.mail.message import atomic_file, build_message, make_message_id, parse_address
from dbcron.secrets import mask_secrets, remember_login

__all__ = [
    "MailError",
    "Mailer",
    "OutboxMailer",
    "PermanentMailError",
    "SmtpConfig",
    "SmtpMailer",
    "TransientMailError",
    "build_message",
    "make_message_id",
    "parse_address",
    "render_default_body",
    "send_with_retry",
]

log = logging.getLogger("dbcron.mail")

Security = Literal["none", "starttls", "ssl"]
SECURITY_VALUES: tuple[Security, ...] = ("none", "starttls", "ssl")

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._@+=-]")


class MailError(Exception):
    """A mail was not delivered; the message says why and never holds the password."""


class TransientMailError(MailError):
    """Worth retrying: the server is unreachable, slow or answered 4xx."""


class PermanentMailError(MailError):
    """Retrying will not help (5xx, login refused, TLS mismatch): fix the settings or address."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    user: str | None
    # repr=False: the config ends up in log lines and tracebacks.
    password: str | None = field(repr=False)
    security: Security
    timeout: float
    sender: str

    def __post_init__(self) -> None:
        if self.security not in SECURITY_VALUES:
            raise ValueError(
                f"SMTP security {self.security!r} is not one of {', '.join(SECURITY_VALUES)}"
            )
        if self.timeout <= 0:
            raise ValueError(f"SMTP timeout must be positive, not {self.timeout!r}")


class Mailer(Protocol):
    def send(self, msg: EmailMessage) -> None: ...


class SmtpMailer:
    """Deliver through an SMTP server; one connection per message, as runs are minutes apart."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        remember_login(config.user, config.password)

    def send(self, msg: EmailMessage) -> None:
        cfg = self._config
        try:
            smtp = self._connect()
            try:
                if cfg.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.user:
                    smtp.login(cfg.user, cfg.password or "")
                refused = smtp.send_message(msg, from_addr=cfg.sender)
            finally:
                _quit_quietly(smtp)
        except (smtplib.SMTPException, OSError) as exc:
            kind, reason = _classify(exc, cfg)
            raise kind(self._describe(reason)) from exc
        if refused:
            # The others already have it: a retry would send them a duplicate.
            raise PermanentMailError(
                self._describe(f"delivered, but refused for {_refusals(refused)}")
            )

    def _connect(self) -> smtplib.SMTP:
        cfg = self._config
        if cfg.security == "ssl":
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        return smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)

    def _describe(self, reason: str) -> str:
        # Servers echo what they were sent (the password, or the AUTH PLAIN blob);
        # never let it reach a run's error.
        return mask_secrets(f"SMTP {self._config.host}:{self._config.port}: {reason}")


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    # QUIT failing after the message was accepted must not turn into an error,
    # or the retry would deliver the message twice.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _classify(exc: OSError, cfg: SmtpConfig) -> tuple[type[MailError], str]:
    # smtplib.SMTPException is an OSError and SSLError is an OSError too:
    # the order of these checks matters.
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        kind = TransientMailError if all(400 <= c < 500 for c in codes) else PermanentMailError
        return kind, f"all recipients refused: {_refusals(exc.recipients)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = TransientMailError if 400 <= exc.smtp_code < 500 else PermanentMailError
        reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return kind, f"login as {cfg.user!r} refused: {reply}"
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return kind, f"sender {exc.sender} refused: {reply}"
        if isinstance(exc, smtplib.SMTPDataError):
            return kind, f"message refused: {reply}"
        return kind, reply
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a read timeout as a disconnect; the timeout is the news.
        if isinstance(exc.__context__, TimeoutError):
            return TransientMailError, f"no answer within {cfg.timeout:g}s"
        return TransientMailError, f"connection closed by the server ({exc})"
    if isinstance(exc, smtplib.SMTPException):
        # Missing STARTTLS or AUTH support, no common AUTH mechanism: settings.
        return PermanentMailError, str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentMailError, f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return PermanentMailError, (
            f"TLS failed ({exc.reason or exc}); does security={cfg.security!r} "
            f"match what port {cfg.port} expects?"
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransientMailError, "connection refused"
    if isinstance(exc, TimeoutError):
        return TransientMailError, f"no answer within {cfg.timeout:g}s"
    if isinstance(exc, socket.gaierror):
        return TransientMailError, f"cannot resolve the host name ({exc.strerror})"
    return TransientMailError, exc.strerror or str(exc)


def _refusals(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{addr} ({code} {_text(reply)})" for addr, (code, reply) in recipients.items()
    )


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


class OutboxMailer:
    """Write each message to ``<outbox>/<Message-ID>.eml`` instead of sending it.

    Used when no SMTP host is set (the demo). The name comes from the
    Message-ID, so a retried or repeated slot replaces its own file.
    """

    def __init__(self, outbox_dir: Path) -> None:
        self._dir = outbox_dir

    def send(self, msg: EmailMessage) -> None:
        path = self.path_for(msg)
        try:
            self._dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            with atomic_file(path) as out:
                out.write(msg.as_bytes(policy=email.policy.SMTP))
        except OSError as exc:
            raise PermanentMailError(f"cannot write {path}: {exc.strerror or exc}") from exc
        log.info("mail %s written to %s", msg["Message-ID"], path)

    def path_for(self, msg: EmailMessage) -> Path:
        message_id = str(msg["Message-ID"] or "").strip().strip("<>")
        if not message_id:
            raise PermanentMailError("the message has no Message-ID; build it with build_message()")
        # "/" and friends become "_", so the name cannot leave the outbox.
        name = _UNSAFE_FILENAME.sub("_", message_id).lstrip(".")[:200]
        return self._dir / f"{name}.eml"


def send_with_retry(
    mailer: Mailer,
    msg: EmailMessage,
    *,
    attempts: int = 4,
    backoff: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send ``msg``, retrying transient failures after ``backoff``, then twice that, ...

    Permanent failures are raised at once. The same message object is sent
    each time, so the exports are built once and the Message-ID never changes.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    delay = backoff
    for attempt in range(1, attempts + 1):
        try:
            mailer.send(msg)
            return
        except TransientMailError as exc:
            if attempt == attempts:
                raise TransientMailError(f"{exc} (gave up after {attempts} attempts)") from exc
            log.warning(
                "mail %s: attempt %d of %d failed, retrying in %gs: %s",
                msg["Message-ID"],
                attempt,
                attempts,
                delay,
                exc,
            )
            sleep(delay)
            delay *= 2
