"""A real SMTP server for tests: aiosmtpd in a thread on 127.0.0.1, every message parsed.

Use the fixtures from a test module or conftest.py::

    pytest_plugins = ["smtp_server"]        # or: from smtp_server import smtp_server, smtp_tls

``smtp_server`` is a plain server that accepts everything; tests change its
behaviour through attributes (``fail_first``, ``fail_reply``, ``fail_at``) or
start their own ``SmtpTestServer(auth=..., tls=...)`` for AUTH and TLS.
``smtp_tls`` is a self-signed certificate for 127.0.0.1 made with the openssl
CLI; point ``SSL_CERT_FILE`` at its ``cert`` to make clients trust it.

The module is found as ``smtpd`` because pytest puts ``tests/`` first on
sys.path (rootdir-relative imports, no ``tests/__init__.py``); it shadows the
deprecated stdlib module of that name, which nothing here uses.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

FailAt = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # the user that authenticated, if any


@dataclass
class SmtpTestServer:
    """An SMTP server on a free port of 127.0.0.1, for one test.

    ``fail_first`` transactions (counted by MAIL FROM) are answered with
    ``fail_reply`` at the ``fail_at`` stage; later ones are accepted. A 4xx
    reply simulates an outage that passes, a 5xx a permanent refusal.
    """

    auth: tuple[str, str] | None = None
    # A refused login is answered with the AUTH PLAIN blob it was sent, as some
    # servers do: the client must not pass it on.
    echo_auth: bool = False
    tls: TlsFiles | None = None
    implicit_tls: bool = False
    fail_first: int = 0
    fail_reply: str = "451 4.3.0 Try again later"
    fail_at: FailAt = "data"
    # Recipients answered 550 at RCPT (a mailbox that does not exist), whatever the count.
    refuse: set[str] = field(default_factory=set)
    # Transactions (1-based, counted by MAIL FROM) answered with fail_reply, besides
    # the first fail_first: the second mail of a run, say.
    fail_transactions: set[int] = field(default_factory=set)
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[ReceivedMessage] = field(default_factory=list)
    transactions: int = 0
    auth_attempts: list[str] = field(default_factory=list)
    _controller: Controller | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> SmtpTestServer:
        context = self.tls and server_context(self.tls)
        kwargs: dict[str, Any] = {
            # A fixed name: the default, socket.getfqdn(), can wait on DNS.
            "server_hostname": "smtp.test",
            # Plain-text AUTH is what the tests need; handle_MAIL enforces the
            # login itself, because aiosmtpd warns on auth_required without TLS.
            "auth_require_tls": False,
        }
        if self.auth is not None:
            kwargs["authenticator"] = self._authenticate
        if context and self.implicit_tls:
            kwargs["ssl_context"] = context
        elif context:
            kwargs["tls_context"] = context
        # The free port is found before binding, so another process may take it
        # in between: try a few.
        for attempt in range(3):
            self.port = free_port()
            controller = Controller(self, hostname=self.host, port=self.port, **kwargs)
            try:
                controller.start()
            except OSError:
                if attempt == 2:
                    raise
                continue
            self._controller = controller
            break
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _failing(self, stage: FailAt) -> bool:
        return self.fail_at == stage and (self.transactions <= self.fail_first
                                          or self.transactions in self.fail_transactions)

    # aiosmtpd handler hooks: the server object is its own handler.

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        with self._lock:
            self.transactions += 1
        if self._failing("mail"):
            return self.fail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self._failing("rcpt"):
            return self.fail_reply
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._failing("data"):
            return self.fail_reply
        raw = cast(bytes, envelope.original_content or envelope.content)
        # Lines end in CRLF on the wire and in "\n" once stored, as a mail client
        # would store them: text parts then compare equal to what was sent.
        message = BytesParser(policy=default_policy).parsebytes(raw.replace(b"\r\n", b"\n"))
        # aiosmtpd types auth_data as None; our authenticator stores the LoginPassword.
        auth = cast(LoginPassword | None, session.auth_data)
        login = auth.login.decode() if session.authenticated and auth else None
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=message,
            raw=raw,
            # session.ssl is only set by STARTTLS; implicit TLS shows on the transport.
            tls=session.ssl is not None or _transport_is_tls(server),
            login=login,
        )
        with self._lock:
            self.messages.append(received)
        return "250 Message accepted for delivery"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.auth is None:
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        with self._lock:
            self.auth_attempts.append(login)
        ok = (login, password) == self.auth
        message = None
        if not ok and self.echo_auth:
            blob = base64.b64encode(b"\0" + data.login + b"\0" + data.password).decode()
            message = f"535 5.7.8 Authentication credentials invalid: {blob}"
        return AuthResult(success=ok, handled=False, message=message,
                          auth_data=data if ok else None)


def _transport_is_tls(server: SMTP) -> bool:
    return server.transport is not None and bool(server.transport.get_extra_info("ssl_object"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (so connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_self_signed_cert(directory: Path) -> TlsFiles:
    """A certificate for 127.0.0.1 and localhost, valid for two days."""
    files = TlsFiles(cert=directory / "cert.pem", key=directory / "key.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(files.key), "-out", str(files.cert),
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return files


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    return context


def skip_or_fail(reason: str) -> None:
    """Skip when a tool is missing on a workstation; under CI=true that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if shutil.which("openssl") is None:
        skip_or_fail("the openssl command is needed to make a test certificate")
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))
