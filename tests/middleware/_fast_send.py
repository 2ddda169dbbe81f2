"""Shared by the header middleware's tests: the ``send`` they give the app is the cheap one.

The layer's ``send`` must be a plain function handing back the server's own
awaitable (no coroutine of its own per message, see ``asgikit._send``),
and must still leave the app's messages as the app wrote them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from asgikit.types import ASGIApp, Message, Receive, Scope, Send


class _Sent:
    """The awaitable a server's ``send`` returns here: marks the very object."""

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


async def messages_through(
    layer: Callable[[ASGIApp], ASGIApp],
    scope: Scope | None = None,
    app_headers: list[tuple[bytes, bytes]] | None = None,
) -> list[Message]:
    """Run ``layer`` around an app sending a start and a body; what reached the server.

    Asserts that each ``send`` call returned the server's awaitable itself
    and that the app's start message and its header list are unchanged.
    """
    if app_headers is None:
        app_headers = [(b"content-type", b"text/plain")]
    as_sent = list(app_headers)
    start = {"type": "http.response.start", "status": 200, "headers": app_headers}
    body = {"type": "http.response.body", "body": b"x"}
    returned: list[object] = []
    server_awaitables: list[object] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in (start, body):
            awaitable = send(message)
            returned.append(awaitable)
            await awaitable

    def server_send(message: Message) -> _Sent:
        sent.append(message)
        awaitable = _Sent()
        server_awaitables.append(awaitable)
        return awaitable

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    if scope is None:
        scope = {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "root_path": "",
            "headers": [],
            "client": ("127.0.0.1", 5000),
        }
    await layer(app)(scope, receive, server_send)
    assert len(returned) == 2
    assert all(a is b for a, b in zip(returned, server_awaitables, strict=True))
    assert start["headers"] is app_headers
    assert app_headers == as_sent
    assert sent[1] is body
    return sent
