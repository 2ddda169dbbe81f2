"""Small helpers the middleware share: raw header edits and short refusals.

Kept to what is needed on the hot path of more than one middleware: editing
the raw ASGI header list without building a headers object, and answering
a request (or refusing a WebSocket handshake) with a short plain-text body.
"""

from __future__ import annotations

from collections.abc import Iterable

from asgikit.types import Receive, Scope, Send

RawHeaders = list[tuple[bytes, bytes]]


def add_vary(headers: RawHeaders, token: bytes) -> None:
    """Add ``token`` to ``Vary`` in place, unless it (or ``*``) is listed already.

    ``Vary`` is a list header (RFC 9110 §12.5.5) and may come as several
    fields; the token is compared case-insensitively.
    """
    wanted = token.lower()
    first = -1
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            listed = [part.strip().lower() for part in value.split(b",")]
            if wanted in listed or b"*" in listed:
                return
            if first < 0:
                first = i
    if first < 0:
        headers.append((b"vary", token))
    else:
        name, value = headers[first]
        headers[first] = (name, value + b", " + token if value.strip() else token)


def has_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    """Whether a header called ``name`` (lower-case) is in the raw list."""
    return any(key.lower() == name for key, _ in headers)


def without(headers: Iterable[tuple[bytes, bytes]], names: frozenset[bytes]) -> RawHeaders:
    """A copy of the raw list without the headers called any of ``names`` (lower-case)."""
    return [(key, value) for key, value in headers if key.lower() not in names]


async def text_response(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    text: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with ``status`` and ``text`` as plain text, for HTTP and WebSocket alike.

    Used to refuse a request (and for the short ``200 OK`` of a preflight).

    A WebSocket handshake gets the HTTP response through the
    ``websocket.http.response`` extension where the server offers it, and a
    close (which the server turns into a 403) where it does not.
    """
    body = text.encode("utf-8")
    raw = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *headers,
    ]
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        prefix = "websocket."
    else:
        prefix = ""
    if scope.get("method") == "HEAD":
        body = b""
    await send({"type": prefix + "http.response.start", "status": status, "headers": raw})
    await send({"type": prefix + "http.response.body", "body": body})


__all__ = ["RawHeaders", "add_vary", "has_header", "text_response", "without"]
