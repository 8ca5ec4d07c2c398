"""A local HTTP server standing in for webhook receivers (Slack, Teams, an ETL endpoint).

It records every request (path, headers, body) and answers from a script of
status codes per path, so tests can make a receiver fail, time out, then take it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookServer:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # path -> answers to give in turn (status code, or a float: seconds to stall first)
    script: dict[str, list[int | float]] = field(default_factory=dict)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    state = WebhookServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            answers = state.script.get(self.path) or [200]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            if isinstance(answer, float):
                time.sleep(answer)
                answer = 200
            self.send_response(answer)
            if answer == 429:
                self.send_header("Retry-After", "1")
            reply = b"ok" if answer < 300 else b"no"
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that timed out and left: the broken pipe is the point

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)
