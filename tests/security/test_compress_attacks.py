"""Attacks on compress: answers it must leave alone, and what a compressed answer may claim."""

from __future__ import annotations

import gzip

import pytest

from asgikit.middleware.compress import compress
from asgikit.types import Message, Receive, Scope, Send
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio

BODY = b"0123456789abcdef" * 200


def answer(status: int = 200, *headers: tuple[bytes, bytes], body: bytes = BODY) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), *headers],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return app


async def test_a_compressed_answer_does_not_offer_byte_ranges_of_another_representation() -> None:
    # Ranges name bytes of the identity body (compress leaves a 206 alone):
    # a client resuming the gzip stream with them would splice two
    # representations.  nginx's gzip filter drops Accept-Ranges too.
    app = compress(answer(200, (b"accept-ranges", b"bytes"), (b"etag", b'"v1"')))
    sent = await run_app(app, make_scope(headers=[(b"accept-encoding", b"gzip")]))
    assert sent.header(b"content-encoding") == [b"gzip"]
    assert gzip.decompress(sent.body) == BODY
    assert sent.header(b"accept-ranges") == []
    assert sent.header(b"etag") == [b'W/"v1"']


async def test_an_uncompressed_answer_keeps_accept_ranges() -> None:
    app = compress(answer(200, (b"accept-ranges", b"bytes")))
    sent = await run_app(app, make_scope(headers=[(b"accept-encoding", b"identity")]))
    assert sent.header(b"accept-ranges") == [b"bytes"]
    assert sent.body == BODY


@pytest.mark.parametrize(
    ("status", "headers", "method"),
    [
        (206, [(b"content-range", b"bytes 0-9/100")], "GET"),
        (200, [(b"content-range", b"bytes 0-9/100")], "GET"),
        (304, [], "GET"),
        (204, [], "GET"),
        (200, [(b"content-encoding", b"br")], "GET"),
        (200, [(b"content-encoding", b"identity")], "GET"),
        (200, [(b"cache-control", b"private, No-Transform")], "GET"),
        (200, [(b"content-type", b"application/grpc+proto")], "GET"),
        (200, [(b"content-type", b"Text/Event-Stream; charset=utf-8")], "GET"),
        (200, [(b"content-length", b"10")], "GET"),
        (200, [], "HEAD"),
    ],
)
async def test_answers_compress_must_leave_alone(
    status: int, headers: list[tuple[bytes, bytes]], method: str
) -> None:
    body = b"" if status in (204, 304) else BODY
    if any(k == b"content-length" for k, _ in headers):
        body = b"x" * 10
    app = compress(answer(status, *headers, body=body))
    sent = await run_app(
        app, make_scope(method, headers=[(b"accept-encoding", b"gzip, br, zstd")])
    )
    assert not [v for v in sent.header(b"content-encoding") if v == b"gzip"]
    assert sent.body == body


@pytest.mark.parametrize(
    "accept",
    [b"gzip;q=0", b"*;q=0", b"identity", b"gzip;q=0.0, identity", b"x" * 5000, b"gzip;q=nan"],
)
async def test_refused_or_malformed_codings_get_the_body_as_it_is(accept: bytes) -> None:
    app = compress(answer())
    sent = await run_app(app, make_scope(headers=[(b"accept-encoding", accept)]))
    assert sent.header(b"content-encoding") == []
    assert sent.body == BODY
