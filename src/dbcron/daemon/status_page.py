"""The HTML status page: plain server-rendered HTML and forms, no JavaScript at all.

The token never travels in a cookie or a URL: the page is reached by POSTing
a token from the sign-in form (or by a GET carrying an Authorization header,
e.g. from a reverse proxy), and each run-now button is a form that carries the
token in a hidden field. A page on another site cannot forge such a POST
because it does not know the token, and no browser attaches it on its own:
that is what makes the page CSRF-safe without sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbcron.services.runs import Status
    from dbcron.services.tasks import Listed
    from dbcron.store import RunRow

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;
border-bottom:1px solid #ddd;vertical-align:top}th{background:#f4f4f4}
.succeeded{color:#17692b}.failed,.timed_out,.interrupted{color:#b00020;font-weight:600}
.missed,.skipped{color:#8a6100}.note{background:#eef6ff;padding:.5em .8em;border-radius:4px}
.error{white-space:pre-wrap;font-family:monospace;font-size:12px}
.alive{color:#17692b}.dead{color:#b00020}button{cursor:pointer}
"""


@dataclass(frozen=True)
class PageData:
    """What the page shows; gathered by the server, rendered here without I/O."""

    status: Status
    tasks: Sequence[Listed]
    failures: Sequence[RunRow]
    now: datetime


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def sign_in(message: str | None = None) -> str:
    """The form that asks for a token; POSTs it to / (never into the URL)."""
    note = f"<p class=note role=alert>{escape(message)}</p>" if message else ""
    return _page("dbcron: sign in", (
        "<h1>dbcron status</h1>" + note +
        "<form method=post action='/' autocomplete=off>"
        "<label>API token <input type=password name=token id=token size=50 required></label> "
        "<button type=submit id=show>Show status</button></form>"
        "<p>Create a token with <code>manage-tasks token create NAME --scope read</code> "
        "(<code>--scope write</code> adds the run-now buttons).</p>"
    ))


def _when(ts: datetime | None, tz: tzinfo | None = None) -> str:
    if ts is None:
        return "-"
    value = ts.astimezone(tz) if tz is not None else ts
    return escape(value.strftime("%Y-%m-%d %H:%M %z"))


def status_page(data: PageData, token: str, can_write: bool, message: str | None = None) -> str:
    """The page for a signed-in token; `token` goes only into the run-now forms."""
    s = data.status
    d = s.daemon
    alive = (f"<span class=alive>alive</span>: pid {d.pid} on {escape(d.host)}, "
             f"{d.tasks_loaded} tasks loaded, last heartbeat {_when(d.heartbeat_at)}"
             if s.alive and d else "<span class=dead>no daemon alive</span>")
    counts = ", ".join(f"{escape(k)} {v}" for k, v in sorted(s.runs_24h.items())) or "none"
    parts = [
        "<h1>dbcron status</h1>",
        f"<p class=note role=status id=message>{escape(message)}</p>" if message else "",
        f"<p id=daemon>Daemon: {alive}. Runs in the last 24 h: {counts}. "
        f"Page built {_when(data.now)}.</p>",
        "<h2>Tasks</h2><table id=tasks><thead><tr><th>Task</th><th>Kind</th><th>Schedule</th>"
        "<th>Next fire</th><th>Last slot</th><th>Last result</th>"
        + ("<th>Run</th>" if can_write else "") + "</tr></thead><tbody>",
    ]
    hidden = f"<input type=hidden name=token value='{escape(token, quote=True)}'>"
    for t in data.tasks:
        status = t.last_status or "-"
        row = (
            f"<tr data-task='{escape(t.name, quote=True)}'><td>{escape(t.name)}</td>"
            f"<td>{escape(t.kind)}</td><td>{escape(t.schedule)}"
            + ("" if t.enabled else " <em>(disabled)</em>") + "</td>"
            f"<td>{_when(t.next_run, t.timezone)}</td><td>{_when(t.last_run, t.timezone)}</td>"
            f"<td class='{escape(status, quote=True)}'>{escape(status)}</td>"
        )
        if can_write:
            row += (
                "<td><form method=post action='/ui/run'>" + hidden +
                f"<input type=hidden name=task value='{escape(t.name, quote=True)}'>"
                f"<button type=submit name=run>Run now</button></form></td>"
            )
        parts.append(row + "</tr>")
    if not data.tasks:
        parts.append("<tr><td colspan=7>no tasks in the store</td></tr>")
    parts.append("</tbody></table><h2>Recent failures</h2>")
    if data.failures:
        parts.append("<table id=failures><thead><tr><th>Run</th><th>Task</th><th>Slot</th>"
                     "<th>Status</th><th>Error</th></tr></thead><tbody>")
        for r in data.failures:
            parts.append(
                f"<tr><td>{r.id}</td><td>{escape(r.task)}</td><td>{_when(r.scheduled_for)}</td>"
                f"<td class='{escape(r.status, quote=True)}'>{escape(r.status)}</td>"
                f"<td class=error>{escape(r.error or '')}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append("<p id=failures>No failed runs in the last 7 days.</p>")
    parts.append(
        "<p><form method=post action='/'>" + hidden +
        "<button type=submit id=refresh>Refresh</button></form></p>"
    )
    return _page("dbcron status", "".join(parts))
