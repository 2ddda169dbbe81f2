"""compress against the behaviours Starlette 1.10's tests/middleware/test_gzip.py checks.

Matched behaviours are tested here or in test_compress.py; each deliberate
difference is pinned with its reason.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import anyio
import pytest

import asgikit.middleware.compress
from asgikit.middleware.compress import compress
from asgikit.testing import TestClient
from asgikit.types import Message, Receive, Scope, Send
from tests.conftest import make_scope, run_app

GZIP = [(b"accept-encoding", b"gzip")]


def replay(content_type: bytes | None, *bodies: tuple[bytes, bool], **start: Any) -> Any:
    headers = [] if content_type is None else [(b"content-type", content_type)]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers, **start})
        for body, more in bodies:
            await send({"type": "http.response.body", "body": body, "more_body": more})

    return app


def vary_of(headers: Any) -> set[str]:
    values = [v.decode() if isinstance(v, bytes) else v for v in headers]
    return {t.strip() for v in values for t in v.split(",") if t.strip()}


async def test_several_vary_fields_keep_every_token() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"vary", b"Accept-Language"), (b"vary", b"Cookie")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * 4000})

    sent = await run_app(compress(app), make_scope(headers=GZIP))
    assert sent.header(b"content-encoding") == [b"gzip"]
    assert vary_of(sent.header(b"vary")) == {"Accept-Language", "Cookie", "Accept-Encoding"}


@pytest.mark.parametrize("accept", [b"gzip", b"identity"])
async def test_early_hints_pass_through_first(accept: bytes) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload"]})
        await replay(b"text/plain", (b"hello", False))(scope, receive, send)

    sent = await run_app(
        compress(app, minimum_size=0), make_scope(headers=[(b"accept-encoding", accept)])
    )
    assert sent.messages[0] == {
        "type": "http.response.early_hint",
        "links": [b"</s.css>; rel=preload"],
    }
    body = sent.body if accept == b"identity" else zlib.decompress(sent.body, 31)
    assert body == b"hello"


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/grpc",
        b"application/grpc+proto",
        b"application/zip",
        b"audio/mpeg",
        b"font/woff2",
        b"image/png",
        b"video/mp4",
    ],
)
async def test_default_skipped_media_types(content_type: bytes) -> None:
    sent = await run_app(
        compress(replay(content_type, (b"x" * 4000, False))), make_scope(headers=GZIP)
    )
    assert (sent.body, sent.header(b"content-encoding"), sent.header(b"vary")) == (
        b"x" * 4000,
        [],
        [],
    )


async def test_svg_is_compressed_by_default() -> None:
    sent = await run_app(
        compress(replay(b"image/svg+xml", (b"x" * 4000, False))), make_scope(headers=GZIP)
    )
    assert sent.header(b"content-encoding") == [b"gzip"]
    assert sent.header(b"vary") == [b"Accept-Encoding"]


@pytest.mark.parametrize(
    ("skip", "content_type"),
    [
        (("application/zip",), b"application/zip"),
        (("text/event-stream",), b"Text/Event-Stream; charset=utf-8"),
        (("Application/ZIP; charset=utf-8",), b"application/zip"),
        (("image/*",), b"image/png"),
    ],
)
@pytest.mark.parametrize("accept", [b"gzip", b"identity"])
async def test_custom_skip_list_is_matched_normalised(
    skip: tuple[str, ...], content_type: bytes, accept: bytes
) -> None:
    # Deliberate difference in name only: Starlette's exclude_content_types
    # is skip_media_types here (exclude= is for paths, as in every piece).
    app = compress(replay(content_type, (b"x" * 4000, False)), skip_media_types=skip)
    sent = await run_app(app, make_scope(headers=[(b"accept-encoding", accept)]))
    assert (sent.body, sent.header(b"content-encoding"), sent.header(b"vary")) == (
        b"x" * 4000,
        [],
        [],
    )


async def test_a_cleared_skip_list_compresses_event_streams_but_never_grpc() -> None:
    sse = compress(replay(b"text/event-stream", (b"x" * 4000, False)), skip_media_types=())
    assert (await run_app(sse, make_scope(headers=GZIP))).header(b"content-encoding") == [b"gzip"]
    # Deliberate difference: Starlette compresses gRPC once the list is
    # cleared; an HTTP coding breaks every gRPC client, so never here.
    grpc = compress(replay(b"application/grpc+proto", (b"x" * 4000, False)), skip_media_types=())
    assert (await run_app(grpc, make_scope(headers=GZIP))).header(b"content-encoding") == []


@pytest.mark.parametrize("accept", [b"gzip", b"identity"])
@pytest.mark.parametrize("more_body", [True, False])
async def test_trailers_follow_and_no_content_length_is_invented(
    accept: bytes, more_body: bool
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"x" * 4000, "more_body": more_body})
        if more_body:
            await send({"type": "http.response.body", "body": b""})
        await send({"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")]})

    sent = await run_app(compress(app), make_scope(headers=[(b"accept-encoding", accept)]))
    body = sent.body if accept == b"identity" else zlib.decompress(sent.body, 31)
    assert body == b"x" * 4000
    assert sent.header(b"content-encoding") == ([b"gzip"] if accept == b"gzip" else [])
    # With trailers the body is chunked: a Content-Length would contradict it.
    assert sent.header(b"content-length") == []
    assert sent.messages[-1] == {
        "type": "http.response.trailers",
        "headers": [(b"grpc-status", b"0")],
    }


async def test_a_skipped_type_sends_its_start_before_the_first_body() -> None:
    events: list[str] = []
    start_sent = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
        await send(start)
        await start_sent.wait()
        await send({"type": "http.response.body", "body": b"data: hello\n\n"})

    async def send(message: Message) -> None:
        events.append(message["type"])
        start_sent.set()

    async def receive() -> Message:
        raise AssertionError("not read")

    with anyio.fail_after(10):
        await compress(app)(make_scope(headers=GZIP), receive, send)
    assert events == ["http.response.start", "http.response.body"]


async def test_an_empty_streamed_chunk_is_not_sent_as_a_flush() -> None:
    # Deliberate difference: Starlette sends a compressed empty chunk (a
    # flush marker costing bytes); nothing new to say, so nothing is sent.
    app = replay(
        b"text/plain", (b"data: first\n\n", True), (b"", True), (b"data: last\n\n", False)
    )
    sent = await run_app(compress(app), make_scope(headers=GZIP))
    bodies = [m["body"] for m in sent.messages if m["type"] == "http.response.body"]
    assert len(bodies) == 2
    decompressor = zlib.decompressobj(31)
    assert decompressor.decompress(bodies[0]) == b"data: first\n\n"
    assert decompressor.decompress(bodies[1]) == b"data: last\n\n"
    assert decompressor.eof
    assert sent.header(b"content-length") == []


async def test_large_bodies_are_compressed_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threaded: list[int] = []
    real = anyio.to_thread.run_sync

    async def watch(func: Any, *args: Any, **kwargs: Any) -> Any:
        threaded.append(len(args[-1]))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asgikit.middleware.compress, "run_sync", watch)
    chunk = hashlib.shake_256(b"stream").digest(256 * 1024)
    whole = compress(replay(b"application/json", (chunk, False)), thread_minimum_size=len(chunk))
    sent = await run_app(whole, make_scope(headers=GZIP))
    assert zlib.decompress(sent.body, 31) == chunk
    stream = compress(
        replay(b"application/json", (chunk, True), (b"tail", False)),
        thread_minimum_size=len(chunk),
    )
    sent = await run_app(stream, make_scope(headers=GZIP))
    assert zlib.decompress(sent.body, 31) == chunk + b"tail"
    small = compress(replay(b"application/json", (b"x" * 4000, False)))
    await run_app(small, make_scope(headers=GZIP))
    assert threaded == [len(chunk), len(chunk)]  # the tail and the small body stay in the loop


def test_through_the_test_client_whole_and_streamed() -> None:
    async def streamed(scope: Scope, receive: Receive, send: Send) -> None:
        await replay(b"text/plain", *[(b"x" * 400, True)] * 10, (b"", False))(scope, receive, send)

    for app, accept in ((streamed, "gzip"), (streamed, "identity")):
        response = TestClient(compress(app)).get("/", headers={"accept-encoding": accept})
        assert response.text == "x" * 4000
        assert response.headers.get("content-encoding") == (accept if accept == "gzip" else None)
        assert response.headers["vary"] == "Accept-Encoding"
        assert "content-length" not in response.headers
