"""Attacks on websocket_origin: cross-site WebSocket hijacking with look-alike origins."""

from __future__ import annotations

import pytest

from asgikit.middleware.websocket_origin import websocket_origin
from asgikit.types import Message, Receive, Scope, Send
from tests.conftest import make_scope

pytestmark = pytest.mark.anyio


async def accepted(
    headers: list[tuple[bytes, bytes]], scheme: str = "ws", **options: object
) -> bool:
    reached: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope)

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    options.setdefault("allowed_origins", ["https://*.good.example", "https://app.example"])
    scope = make_scope(type="websocket", scheme=scheme, headers=headers)
    await websocket_origin(app, **options)(scope, receive, send)  # type: ignore[arg-type]
    return bool(reached)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (b"https://a.good.example", True),
        (b"https://a.b.good.example", True),
        (b"HTTPS://A.Good.Example:443", True),
        (b"https://app.example", True),
        (b"https://app.example/", True),
        (b"https://good.example", False),  # "*." is the subdomains only
        (b"https://a.good.example.evil.example", False),
        (b"https://evil.example/.good.example", False),
        (b"https://evil.example?.good.example", False),
        (b"https://evil.example#.good.example", False),
        (b"https://evil@a.good.example", False),
        (b"https://a.good.example:8443", False),
        (b"http://a.good.example", False),
        (b"https://a_b.good.example", False),
        (b"https://app.example.evil.example", False),
        (b"https://evilapp.example", False),
        (b"null", False),
        (b"", False),
        (b"*", False),
    ],
)
async def test_origin_table(origin: bytes, allowed: bool) -> None:
    headers = [(b"host", b"ws.internal"), (b"origin", origin)]
    assert await accepted(headers) is allowed


@pytest.mark.parametrize(
    ("headers", "scheme", "allowed"),
    [
        ([(b"host", b"site.example"), (b"origin", b"http://site.example")], "ws", True),
        ([(b"host", b"site.example"), (b"origin", b"https://site.example")], "wss", True),
        ([(b"host", b"site.example"), (b"origin", b"https://site.example")], "ws", False),
        ([(b"host", b"site.example:8080"), (b"origin", b"http://site.example")], "ws", False),
        (
            [
                (b"host", b"site.example"),
                (b"host", b"evil.example"),
                (b"origin", b"http://evil.example"),
            ],
            "ws",
            False,
        ),
        ([(b"origin", b"http://site.example")], "ws", False),  # no Host to compare with
    ],
)
async def test_own_origin_is_the_first_host_with_the_scheme(
    headers: list[tuple[bytes, bytes]], scheme: str, allowed: bool
) -> None:
    assert await accepted(headers, scheme) is allowed


async def test_a_missing_origin_is_refused_when_asked() -> None:
    assert await accepted([(b"host", b"site.example")]) is True
    assert await accepted([(b"host", b"site.example")], allow_missing=False) is False
