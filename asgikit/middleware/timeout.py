"""Deadlines for a request: ``timeout`` bounds the whole exchange and each pause in its body.

Without a deadline, a client that starts a body and never finishes it holds
a task, a socket and any spooled upload for as long as it likes.  Two
limits, each ``None`` to turn it off:

- ``body_idle``: the longest the app may wait in ``receive()`` for the next
  piece of the request body.  A client that stalls that long gets
  ``408 Request Timeout`` (RFC 9110 §15.5.9), with ``Connection: close``
  as that section asks: the rest of the body will never be read.
- ``request``: the whole exchange, from the call of the app to the last
  byte of the response.  Past it, before the response has started, the
  answer is ``408`` when the app was waiting for the body at that moment
  (the client is the slow one) and ``503 Service Unavailable`` otherwise:
  the server could not answer in time.  Not ``504``, which says that an
  *upstream* was too slow: asgikit's ``reverse_proxy`` answers ``504`` for
  its upstream, and the two stay distinguishable in the logs.  (Go's
  ``http.TimeoutHandler`` answers ``503`` for the same reason.)

Either way the app is cancelled, so its ``finally`` blocks run (spooled
files are closed) at once.  Once the last byte of the response is sent the
deadline is lifted: a background task that runs after the response is not
the client's wait.  Once the response has started nothing else can
be said: the response is cut off without its final message, so the server
closes the connection and the client sees a truncated response, never one
that looks complete.

Long-lived responses (``EventSourceResponse``, large downloads) outlive any
sensible ``request`` deadline: list their paths in ``exclude`` (they keep
``body_idle``, which a GET without a body never meets), or give them a
``timeout`` of their own.  WebSocket and lifespan scopes pass through: a
WebSocket's life is the application's business, and a dead peer is the
server's to detect (``uvicorn --ws-ping-interval``).
"""

from __future__ import annotations

import math

import anyio
import anyio.lowlevel

from asgikit._send import wrap_send
from asgikit.composition import middleware
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._http import text_response
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

_CLOSE = ((b"connection", b"close"),)


@middleware
def timeout(
    app: ASGIApp,
    *,
    request: float | None = 60.0,
    body_idle: float | None = 30.0,
    exclude: Exclude = None,
) -> ASGIApp:
    """Bound each HTTP request: ``request`` seconds in all, ``body_idle`` between body pieces.

    Before the response starts, a stalled body is answered ``408`` and a
    request past its deadline ``503``; after, the response is cut off.
    ``exclude`` (paths or a predicate) lifts the ``request`` deadline.
    """
    for name, value in (("request", request), ("body_idle", body_idle)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number of seconds, or None")
    excluded = compile_exclude(exclude)
    idle_limit = math.inf if body_idle is None else body_idle

    async def timeout_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        deadline = math.inf
        if request is not None and not (excluded is not None and excluded(scope)):
            deadline = anyio.current_time() + request
        if deadline == math.inf and body_idle is None:
            await app(scope, receive, send)
            return

        started = False
        body_done = False
        waiting_for_body = False
        body_stalled = False
        whole = anyio.CancelScope(deadline=deadline)

        async def timed_receive() -> Message:
            nonlocal body_done, waiting_for_body, body_stalled
            if body_done:
                # Past the body, receive() waits for the disconnect: no limit.
                return await receive()
            # Left set if the deadline strikes while waiting: the client's fault.
            waiting_for_body = True
            with anyio.CancelScope(deadline=anyio.current_time() + idle_limit) as idle:
                message = await receive()
            waiting_for_body = False
            if idle.cancelled_caught:
                body_stalled = True
                whole.cancel()
                await anyio.lowlevel.checkpoint()  # delivers the cancellation
                # Only reached under a shield: the client is as good as gone.
                body_done = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def on_start(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        async def on_body(message: Message) -> None:
            await send(message)
            if not message.get("more_body", False):
                # Answered: what the app does next (a background task) is
                # no longer the client's wait.
                whole.deadline = math.inf

        timed_send = wrap_send(
            send,
            {
                "http.response.start": on_start,
                "http.response.body": on_body,
                "http.response.pathsend": on_body,  # the server sends the file
            },
        )
        with whole:
            await app(scope, timed_receive, timed_send)
        if not whole.cancelled_caught or started:
            return
        if body_stalled or waiting_for_body:
            await text_response(scope, receive, send, 408, "Request Timeout", _CLOSE)
        else:
            await text_response(scope, receive, send, 503, "Service Unavailable: timed out")

    return timeout_app


__all__ = ["timeout"]
