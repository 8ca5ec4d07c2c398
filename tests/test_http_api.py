"""The HTTP API and status page through real HTTP to a real daemon process."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from daemon_proc import wait_for
from dbcron.daemon.http_api import RateLimiter
from http_daemon import ApiDaemon, start_api_daemon

pytestmark = pytest.mark.slow
DOCS = Path(__file__).parent.parent / "docs"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiDaemon]:
    # Tests poll; the limit itself has its own test below.
    daemon = start_api_daemon(tmp_path_factory.mktemp("api"), DBCRON_HTTP_RATE_LIMIT="100000")
    yield daemon
    assert daemon.proc.stop() == 0, daemon.proc.log()


def test_rate_limiter_refills_evenly() -> None:
    limiter = RateLimiter(per_minute=2)
    assert limiter.take("a", 100.0) == 0 and limiter.take("a", 100.0) == 0
    assert limiter.take("a", 100.0) == pytest.approx(30.0)  # one request per 30 s
    assert limiter.take("b", 100.0) == 0  # keys do not share a bucket
    assert limiter.take("a", 115.0) == pytest.approx(15.0)
    assert limiter.take("a", 130.0) == 0


def test_rate_limiter_forgets_idle_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    import dbcron.daemon.http_api as http_api

    monkeypatch.setattr(http_api, "MAX_BUCKETS", 3)
    limiter = RateLimiter(per_minute=60)
    for key in ("a", "b", "c"):
        limiter.take(key, 0.0)
    limiter.take("d", 0.5)  # a, b, c are not refilled yet: kept
    assert len(limiter._buckets) == 4
    limiter.take("e", 10.0)  # now they are: forgotten
    assert sorted(limiter._buckets) == ["e"]


def test_missing_and_bad_tokens_are_refused(api: ApiDaemon) -> None:
    missing = api.call("GET", "/api/v1/tasks")
    assert (missing.status, missing.json()) == (
        401, {"error": "missing token: send 'Authorization: Bearer <token>'"})
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="dbcron"'
    bad = api.call("GET", "/api/v1/tasks", token="dbc_" + "x" * 43)
    assert (bad.status, bad.json()) == (401, {"error": "invalid or revoked token"})
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    # a token in the query string or a cookie is not a credential
    for headers, path in (({}, f"/api/v1/tasks?token={api.read_token}"),
                          ({"Cookie": f"token={api.read_token}"}, "/api/v1/tasks")):
        assert api.call("GET", path, headers=headers).status == 401
    basic = api.call("GET", "/api/v1/tasks", headers={"Authorization": f"Basic {api.read_token}"})
    assert basic.status == 401


def test_read_token_reads(api: ApiDaemon) -> None:
    tasks = api.call("GET", "/api/v1/tasks", api.read_token)
    assert tasks.status == 200 and tasks.headers["Content-Type"] == "application/json"
    by_name = {t["name"]: t for t in tasks.json()}
    assert sorted(by_name) == ["broken", "hello", "nightly-cleanup"]
    assert by_name["nightly-cleanup"]["timezone"] == "Europe/Paris"
    assert by_name["hello"]["next_run"].endswith("T09:00:00+00:00")
    one = api.call("GET", "/api/v1/tasks/hello", api.read_token).json()
    assert (one["description"], len(one["next_runs"])) == ("says hello", 5)
    status = api.call("GET", "/api/v1/status", api.read_token).json()
    assert status["daemon"]["alive"] is True and status["daemon"]["tasks_loaded"] == 3
    unknown = api.call("GET", "/api/v1/tasks/helo", api.read_token)
    assert (unknown.status, unknown.json()["error"]) == (
        404, "no task named 'helo' (did you mean 'hello'?); 'manage-tasks list' shows them")
    bad_status = api.call("GET", "/api/v1/runs?status=done", api.read_token)
    assert bad_status.status == 400
    assert bad_status.json()["error"].startswith("status='done'; use one of running, succeeded")
    assert api.call("GET", "/api/v1/runs?limit=0", api.read_token).status == 400
    assert api.call("GET", "/api/v1/runs/999999", api.read_token).status == 404
    assert api.call("GET", "/api/v2/tasks", api.read_token).status == 404


def test_read_token_cannot_write(api: ApiDaemon) -> None:
    for action in ("run", "enable", "disable"):
        answer = api.call("POST", f"/api/v1/tasks/hello/{action}", api.read_token)
        assert (answer.status, answer.json()) == (
            403, {"error": "token 'dashboard' has read scope; this needs a write token"})
    runs = api.call("GET", "/api/v1/runs?task=hello", api.read_token).json()
    assert runs == []


def test_write_token_runs_now_and_history_shows_it(api: ApiDaemon) -> None:
    answer = api.call("POST", "/api/v1/tasks/broken/run", api.write_token)
    assert answer.status == 202
    body = answer.json()
    assert body["task"] == "broken" and body["request_id"] >= 1
    run_id = body["run_id"] or wait_for(
        lambda: [r["id"] for r in api.call("GET", "/api/v1/runs?task=broken",
                                           api.read_token).json()], 10, "the run")[0]
    run = api.wait_run(run_id)
    assert (run["status"], run["trigger"]) == ("failed", "manual")
    assert "the source database is down" in run["error"]
    failed = api.call("GET", "/api/v1/runs?status=failed&since=1h", api.read_token).json()
    assert [r["id"] for r in failed] == [run_id]
    assert api.call("POST", "/api/v1/tasks/nope/run", api.write_token).status == 404


def test_disable_and_enable_reach_the_daemon(api: ApiDaemon) -> None:
    off = api.call("POST", "/api/v1/tasks/nightly-cleanup/disable", api.write_token)
    assert (off.status, off.json()) == (
        200, {"task": "nightly-cleanup", "enabled": False, "changed": True})
    # The API wakes the loop as SIGHUP would: the reload is not left to the revision poll.
    wait_for(lambda: "0 added or changed, 1 removed, 2 tasks loaded" in api.proc.log(), 10,
             "the daemon to unload the disabled task")
    again = api.call("POST", "/api/v1/tasks/nightly-cleanup/disable", api.write_token).json()
    assert again["changed"] is False
    on = api.call("POST", "/api/v1/tasks/nightly-cleanup/enable", api.write_token).json()
    assert on == {"task": "nightly-cleanup", "enabled": True, "changed": True}
    wait_for(lambda: "1 added or changed, 0 removed, 3 tasks loaded" in api.proc.log(), 10,
             "the daemon to load the task again")


def test_no_cookies_no_cors_and_strict_headers(api: ApiDaemon) -> None:
    for answer in (api.call("GET", "/"), api.call("GET", "/api/v1/tasks", api.read_token),
                   api.call("POST", "/", data=urlencode({"token": api.write_token}).encode()),
                   api.call("GET", "/openapi.json")):
        assert answer.headers["Set-Cookie"] is None
        assert answer.headers["Access-Control-Allow-Origin"] is None
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "script-src" not in answer.headers["Content-Security-Policy"]
        assert answer.headers["Server"] == "dbcron"


def test_openapi_is_served_and_matches_the_routes(api: ApiDaemon) -> None:
    served = api.call("GET", "/openapi.json")
    assert served.status == 200
    document = served.json()
    assert document == json.loads((DOCS / "openapi.json").read_text())
    assert document["openapi"].startswith("3.")
    paths = set(document["paths"])
    assert {"/api/v1/status", "/api/v1/tasks", "/api/v1/tasks/{name}", "/api/v1/runs",
            "/api/v1/runs/{id}", "/api/v1/tasks/{name}/run", "/api/v1/tasks/{name}/enable",
            "/api/v1/tasks/{name}/disable", "/api/v1/tasks/{name}/ready", "/", "/ui/run",
            "/openapi.json"} == paths


def test_status_page_without_javascript(api: ApiDaemon) -> None:
    sign_in = api.call("GET", "/")
    assert sign_in.status == 200 and "name=token" in sign_in.text
    assert "<script" not in sign_in.text
    wrong = api.call("POST", "/", data=b"token=dbc_wrong")
    assert wrong.status == 401 and "That token is not valid" in wrong.text
    read_page = api.call("POST", "/", data=urlencode({"token": api.read_token}).encode())
    assert read_page.status == 200
    assert read_page.text.count("<tr data-task=") == 3 and "Run now" not in read_page.text
    assert "<script" not in read_page.text
    # A proxy (or curl) may send the header instead of the form.
    header_page = api.call("GET", "/", api.write_token)
    assert header_page.text.count(">Run now</button>") == 3
    refused = api.call("POST", "/ui/run",
                       data=urlencode({"token": api.read_token, "task": "hello"}).encode())
    assert refused.status == 403 and "Run now needs a write token" in refused.text
    ran = api.call("POST", "/ui/run",
                   data=urlencode({"token": api.write_token, "task": "hello"}).encode())
    assert ran.status == 200
    match = re.search(r"Run of hello requested: run (\d+)\.", ran.text)
    assert match, ran.text
    assert api.wait_run(int(match.group(1)))["status"] == "succeeded"


def test_rate_limit_per_token_and_per_client(tmp_path: Path) -> None:
    api = start_api_daemon(tmp_path, DBCRON_HTTP_RATE_LIMIT="3")
    try:
        codes = [api.call("GET", "/api/v1/status", api.read_token).status for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = api.call("GET", "/api/v1/status", api.read_token)
        assert limited.json() == {"error": "too many requests; slow down"}
        assert 1 <= int(limited.headers["Retry-After"]) <= 20
        # another token has its own bucket
        assert api.call("GET", "/api/v1/status", api.write_token).status == 200
        # guessing tokens spends the client's bucket, not a fresh one per guess
        guesses = [api.call("GET", "/api/v1/status", f"dbc_guess{i}").status for i in range(4)]
        assert guesses == [401, 401, 401, 429]
    finally:
        assert api.proc.stop() == 0, api.proc.log()
    assert api.read_token not in api.proc.log() and api.write_token not in api.proc.log()


def test_a_taken_port_stops_the_daemon_with_a_clear_error(tmp_path: Path) -> None:
    import socket

    from daemon_proc import DaemonProcess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = DaemonProcess(tmp_path / "state", DBCRON_HTTP_ADDRESS=f"127.0.0.1:{port}")
        proc.start(wait_ready=False)
        assert proc.wait() == 1
        proc.stop()
    assert f"Error: DBCRON_HTTP_ADDRESS=127.0.0.1:{port}: [Errno 98] Address already in use" \
        in proc.log()
