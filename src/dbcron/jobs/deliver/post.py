"""One JSON POST with a timeout, retries of the POST alone, and optional HMAC signing.

Only the delivery is retried: the query and the files are not made again.
Connection errors, timeouts, 408, 429 and 5xx answers are worth another try
(after 1 s, 2 s, 4 s ..., or the receiver's Retry-After up to 30 s); any other
4xx is a mistake in the task (a wrong URL, a refused token) and fails at once.
No error text holds the URL: a chat webhook's URL is its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0


class DeliveryFailed(Exception):
    """The receiver did not take the POST; the message says why, without the URL."""


@dataclass(frozen=True)
class Posted:
    status: int
    attempts: int


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,sha256=<hex>`` over "<t>.<body>": the time stops replays."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},sha256={mac.hexdigest()}"


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float, retries: int,
              sleep: Callable[[float], None] = time.sleep) -> Posted:
    attempt = 0
    while True:
        attempt += 1
        answer = _try(url, body, headers, timeout)
        if answer.status is not None:
            return Posted(answer.status, attempt)
        if answer.final or attempt > retries:
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            raise DeliveryFailed(f"{answer.why}{tries}")
        sleep(answer.wait or min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class _Answer:
    status: int | None = None  # set when the receiver took the POST
    why: str = ""
    final: bool = False  # trying again cannot help
    wait: float = 0.0  # the receiver's Retry-After; 0: our own backoff


def _try(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> _Answer:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "dbcron", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
            return _Answer(status=response.status)
    except urllib.error.HTTPError as exc:
        why = f"HTTP {exc.code} {exc.reason}".strip()
        if exc.code not in RETRY_STATUSES:
            return _Answer(why=why, final=True)
        after = exc.headers.get("Retry-After", "")
        return _Answer(why=why, wait=min(float(after), MAX_BACKOFF) if after.isdigit() else 0)
    except TimeoutError:
        return _Answer(why=f"no answer within {timeout:g}s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return _Answer(why=f"no answer within {timeout:g}s")
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        return _Answer(why=f"cannot connect: {text}")
    except OSError as exc:  # reset mid-answer
        return _Answer(why=f"connection failed: {exc.strerror or type(exc).__name__}")
