"""``Server-Timing`` (W3C Server Timing) with the time the app took to start its response.

The duration is measured from the moment the request reaches this
middleware to the moment the app sends ``http.response.start``, in
milliseconds — the time a browser shows as the server's in its developer
tools.  It is appended as its own ``Server-Timing`` field, after any the app
set.  The time spent streaming the body cannot go into a header that is
already sent, and is not measured.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from asgikit.composition import middleware
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

_NAME = b"server-timing"
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@middleware
def timing(
    app: ASGIApp,
    *,
    name: str = "app",
    description: str | None = None,
    exclude: Exclude = None,
) -> ASGIApp:
    """Add ``Server-Timing: <name>;dur=<ms>`` (and ``;desc="..."``) to every HTTP response."""
    if not name or not _TOKEN.issuperset(name):
        raise ValueError(f"metric name must be a token: {name!r}")
    suffix = ""
    if description is not None:
        if any(c in description for c in '"\\\r\n\0'):
            raise ValueError("description must not contain quotes, backslashes or line breaks")
        suffix = ';desc="' + description + '"'
    # One %-format a response: the name and description with their '%' doubled.
    template = (name + ";dur=").replace("%", "%%").encode("ascii") + b"%.3f"
    template += suffix.replace("%", "%%").encode("latin-1")
    excluded = compile_exclude(exclude)
    clock = time.perf_counter

    async def timing_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (excluded is not None and excluded(scope)):
            await app(scope, receive, send)
            return
        started = clock()

        # A plain function handing back the server's awaitable (see asgikit._send).
        def send_timed(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                field = (_NAME, template % ((clock() - started) * 1000))
                message = {**message}
                message["headers"] = [*message.get("headers", ()), field]
            return send(message)

        await app(scope, receive, send_timed)

    return timing_app


__all__ = ["timing"]
