"""compress: coding chosen by q-values, streamed with flushes, and left alone when it should be."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import brotli
import httpx
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit.middleware.compress import compress, select_encoding
from asgikit.responses import PlainTextResponse, Response
from asgikit.streaming import StreamingResponse
from asgikit.testing import TestClient
from asgikit.types import Message, Receive, Scope, Send
from tests.conftest import make_scope, run_app
from tests.middleware._fast_send import messages_through
from tests.servers.live import serve

TEXT = "hello compressible world " * 100  # 2500 bytes


async def big(scope: Scope, receive: Receive, send: Send) -> None:
    headers = {"etag": '"v1"', "vary": "Cookie"}
    await PlainTextResponse(TEXT, headers=headers)(scope, receive, send)


def get(app: object, accept: str | None, path: str = "/") -> httpx.Response:
    headers = {"accept-encoding": accept} if accept is not None else {}
    return TestClient(app).get(path, headers=headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", "gzip"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("br;q=1, zstd;q=0.5, gzip;q=0.8", "br"),
        ("gzip;q=0", None),
        ("zstd;q=0, br;q=0, *", "gzip"),
        ("*;q=0", None),
        ("*;q=0.5", "zstd"),
        ("identity", None),
        ("gzip;q=0.5, identity;q=1", None),
        ("x-gzip", "gzip"),
        ("GZIP", "gzip"),
        ("gzip;q=2", None),  # not a qvalue: the entry is ignored
        ("gzip;q=0.1234", None),
        ("gzip;q=1.000", "gzip"),
        ("gzip;q=0.5, gzip;q=0", None),  # listed twice: q=0 wins
        ("", None),
        (",,;,", None),
    ],
)
def test_select_encoding_follows_q_values(header: str, expected: str | None) -> None:
    assert select_encoding(header, ("zstd", "br", "gzip")) == expected


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_select_encoding_never_raises_and_never_picks_q0(header: str) -> None:
    choice = select_encoding(header, ("zstd", "br", "gzip"))
    assert choice in (None, "zstd", "br", "gzip")
    if choice is not None:
        assert select_encoding(header + f",{choice};q=0", ("zstd", "br", "gzip")) != choice


@pytest.mark.parametrize(
    ("accept", "decode"),
    [
        ("gzip", gzip.decompress),
        ("br", brotli.decompress),
        ("zstd", lambda data: zstandard.ZstdDecompressor().decompress(data)),
    ],
)
def test_whole_body_is_compressed_with_length_vary_and_weak_etag(
    accept: str, decode: object
) -> None:
    sent = TestClient(compress(big)).stream("GET", "/", headers={"accept-encoding": accept})
    with sent as response:
        body = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == accept
    assert int(response.headers["content-length"]) == len(body) < len(TEXT)
    assert decode(body) == TEXT.encode()  # type: ignore[operator]
    assert response.headers["vary"] == "Cookie, Accept-Encoding"
    assert response.headers["etag"] == 'W/"v1"'


async def test_without_accept_encoding_the_response_is_untouched() -> None:
    sent = await run_app(compress(big), make_scope())
    assert b"content-encoding" not in dict(sent.headers)
    assert dict(sent.headers)[b"etag"] == b'"v1"'
    assert sent.body == TEXT.encode()


UNUSABLE = [None, b"", b"identity", b"gzip;q=0, br;q=0, zstd;q=0"]


@pytest.mark.parametrize("accept", UNUSABLE)
async def test_an_answer_left_uncompressed_for_this_client_still_varies_on_accept_encoding(
    accept: bytes | None,
) -> None:
    # RFC 9110 §12.5.5: another Accept-Encoding would have got another
    # answer, so a shared cache must not hand this one to a gzip client.
    headers = [] if accept is None else [(b"accept-encoding", accept)]
    sent = await run_app(compress(big), make_scope(headers=headers))
    assert sent.header(b"content-encoding") == []
    assert sent.header(b"vary") == [b"Cookie, Accept-Encoding"]
    assert sent.header(b"etag") == [b'"v1"']
    assert sent.header(b"content-length") == [str(len(TEXT)).encode()]
    assert sent.body == TEXT.encode()


@pytest.mark.parametrize("accept", UNUSABLE)
async def test_an_uncompressed_stream_varies_on_accept_encoding_and_is_untouched(
    accept: bytes | None,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a" * 10
        yield b"b" * 10

    headers = [] if accept is None else [(b"accept-encoding", accept)]
    sent = await run_app(compress(StreamingResponse(chunks())), make_scope(headers=headers))
    assert sent.header(b"vary") == [b"Accept-Encoding"]
    assert sent.body == b"a" * 10 + b"b" * 10


@pytest.mark.parametrize("accept", [None, "gzip"])
@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b"tiny", 200),
        ({"content-encoding": "br"}, b"x" * 1000, 200),
        ({"content-type": "image/png"}, b"x" * 1000, 200),
        ({"content-type": "application/grpc"}, b"x" * 1000, 200),
        ({"cache-control": "no-transform"}, b"x" * 1000, 200),
        ({"content-range": "bytes 0-999/5000"}, b"x" * 1000, 206),
        ({}, b"", 204),
    ],
)
def test_an_answer_that_is_never_compressed_gets_no_vary(
    accept: str | None, headers: dict[str, str], body: bytes, status: int
) -> None:
    app = compress(Response(body, status, headers=headers, media_type=headers.get("content-type")))
    sent = {"accept-encoding": accept} if accept is not None else {}
    with TestClient(app).stream("GET", "/", headers=sent) as response:
        data = b"".join(response.iter_raw())
    assert "vary" not in response.headers
    assert response.headers.get("content-encoding") == headers.get("content-encoding")
    assert data == body


@pytest.mark.parametrize(
    "media_type",
    [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpc-web-text",
        "Application/GRPC; charset=utf-8",
    ],
)
@pytest.mark.parametrize("skip_media_types", [None, ()])
def test_grpc_answers_pass_untouched_even_with_a_custom_skip_list(
    media_type: str, skip_media_types: tuple[str, ...] | None
) -> None:
    # gRPC frames carry their own compression flag; an HTTP Content-Encoding
    # breaks every gRPC client.
    options = {} if skip_media_types is None else {"skip_media_types": skip_media_types}
    app = compress(Response(b"\0" * 2000, media_type=media_type), **options)  # type: ignore[arg-type]
    with TestClient(app).stream("GET", "/", headers={"accept-encoding": "gzip"}) as response:
        data = b"".join(response.iter_raw())
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert data == b"\0" * 2000


def test_an_excluded_path_gets_no_vary() -> None:
    response = get(compress(big, exclude=["/raw"]), None, "/raw/file")
    assert response.headers["vary"] == "Cookie"


async def test_a_small_body_goes_out_exactly_as_the_app_sent_it() -> None:
    messages: list[Message] = [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]},
        {"type": "http.response.body", "body": b"tiny"},
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    sent = await run_app(compress(app), make_scope(headers=[(b"accept-encoding", b"gzip")]))
    assert all(a is b for a, b in zip(sent.messages, messages, strict=True))


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b"tiny"),
        ({"content-encoding": "gzip"}, b"x" * 1000),
        ({"content-type": "image/png"}, b"x" * 1000),
        ({"content-type": "video/mp4"}, b"x" * 1000),
        ({"content-type": "text/event-stream"}, b"x" * 1000),
        ({"cache-control": "public, no-transform"}, b"x" * 1000),
    ],
)
def test_left_alone_small_encoded_compressed_types_and_no_transform(
    headers: dict[str, str], body: bytes
) -> None:
    app = compress(Response(body, headers=headers, media_type=headers.get("content-type")))
    with TestClient(app).stream("GET", "/", headers={"accept-encoding": "gzip"}) as response:
        data = b"".join(response.iter_raw())
    assert response.headers.get("content-encoding") == headers.get("content-encoding")
    assert data == body


def test_partial_content_is_left_alone() -> None:
    app = compress(
        Response(b"x" * 1000, status_code=206, headers={"content-range": "bytes 0-999/5000"})
    )
    with TestClient(app).stream("GET", "/", headers={"accept-encoding": "gzip"}) as response:
        assert "content-encoding" not in response.headers


async def test_stream_is_compressed_chunk_by_chunk_and_each_chunk_flushed() -> None:
    chunks = [b"first chunk of a stream; ", b"second chunk; ", b"last."]

    async def produce() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    app = compress(StreamingResponse(produce(), media_type="text/plain"), minimum_size=0)
    sent = await run_app(app, make_scope(headers=[(b"accept-encoding", b"gzip")]))
    assert dict(sent.headers)[b"content-encoding"] == b"gzip"
    assert b"content-length" not in dict(sent.headers)
    bodies = [m["body"] for m in sent.messages if m["type"] == "http.response.body"]
    # Each chunk can be decoded on arrival: nothing waits for the end.
    decoder = zlib.decompressobj(31)
    for chunk, body in zip(chunks, bodies, strict=False):
        assert decoder.decompress(body) == chunk
    assert gzip.decompress(sent.body) == b"".join(chunks)
    assert sent.complete


async def test_pathsend_passes_through_without_content_encoding() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"5000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": "/srv/file.txt"})

    sent = await run_app(compress(app), make_scope(headers=[(b"accept-encoding", b"gzip")]))
    assert sent.messages[0]["headers"] == [
        (b"content-type", b"text/plain"),
        (b"content-length", b"5000"),
    ]
    assert sent.messages[1] == {"type": "http.response.pathsend", "path": "/srv/file.txt"}


async def test_trailers_and_unknown_keys_pass_through() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": [], "trailers": True}
        await send(start)
        await send({"type": "http.response.body", "body": b"x" * 600, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})

    sent = await run_app(compress(app), make_scope(headers=[(b"accept-encoding", b"gzip")]))
    assert sent.messages[0]["trailers"] is True
    assert sent.messages[-1] == {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]}
    assert gzip.decompress(sent.body) == b"x" * 600


def test_head_requests_are_left_alone() -> None:
    response = TestClient(compress(big)).head("/", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(TEXT))


def test_excluded_path_is_not_compressed() -> None:
    response = get(compress(big, exclude=["/raw"]), "gzip", "/raw/file")
    assert "content-encoding" not in response.headers


def test_explicit_missing_encoding_and_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        compress(big, encodings=["deflate"])
    with pytest.raises(TypeError):
        compress(big, encodings="gzip")  # type: ignore[arg-type]
    only_gzip = compress(big, encodings=["gzip"])
    assert get(only_gzip, "br, zstd, gzip;q=0.1").headers["content-encoding"] == "gzip"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120))
async def test_any_accept_encoding_bytes_never_give_a_500(header: bytes) -> None:
    sent = await run_app(compress(big), make_scope(headers=[(b"accept-encoding", header)]))
    assert sent.status == 200


def test_through_uvicorn_httpx_decodes_the_stream() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def produce() -> AsyncIterator[bytes]:
            for i in range(50):
                yield f"line {i}\n".encode() * 20

        await StreamingResponse(produce(), media_type="text/plain")(scope, receive, send)

    with serve(compress(app), lifespan="off") as base:
        response = httpx.get(base, headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == "".join(f"line {i}\n" * 20 for i in range(50))


async def test_long_accept_encoding_values_are_not_kept_in_memory() -> None:
    import tracemalloc

    app = compress(PlainTextResponse("x" * 1000), minimum_size=10)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(200):
            value = b"gzip, " + b"x-%d, " % n + b"y" * 60_000
            answer = await run_app(app, make_scope(headers=[(b"accept-encoding", value)]))
            assert answer.header(b"content-encoding") == [b"gzip"]
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 200 distinct 60 KB values: remembering them would keep 12 MB.
    assert retained < 2_000_000, retained


async def test_an_answer_the_start_leaves_alone_goes_straight_to_the_server() -> None:
    # A small body by its Content-Length: nothing is held back, and the
    # app's send hands back the server's own awaitable for every message.
    scope = make_scope(headers=[(b"accept-encoding", b"gzip")])
    small = [(b"content-type", b"text/plain"), (b"content-length", b"1")]
    sent = await messages_through(compress, scope, small)
    assert sent[0]["headers"] is small


async def test_an_answer_compress_would_change_still_reads_the_accept_encoding() -> None:
    scope = make_scope(headers=[(b"accept-encoding", b"identity;q=0, gzip")])
    text = "x" * 5000
    recorder = await run_app(compress(PlainTextResponse(text)), scope)
    assert recorder.header(b"content-encoding") == [b"gzip"]
    body = b"".join(m.get("body", b"") for m in recorder.messages[1:])
    assert gzip.decompress(body) == text.encode()


@pytest.mark.parametrize(
    ("length", "compressed"),
    [(b"9", False), (b"499", False), (b"0499", False), (b"500", True), (b"00500", True)],
)
async def test_content_length_against_minimum_size_by_value_not_by_digits(
    length: bytes, compressed: bool
) -> None:
    size = int(length)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * size})

    scope = make_scope(headers=[(b"accept-encoding", b"gzip")])
    recorder = await run_app(compress(app), scope)
    assert (recorder.header(b"content-encoding") == [b"gzip"]) is compressed
