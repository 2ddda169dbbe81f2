"""``Request``: lazy views of the scope, and a body that can be read, peeked and replayed."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from asgikit.datastructures import Address
from asgikit.exceptions import ClientDisconnect, HTTPException
from asgikit.middleware.exception_handlers import exception_handlers
from asgikit.middleware.http_middleware import CallNext, http_middleware
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import SendRecorder, body_receive, disconnect_after, make_scope
from tests.servers.live import serve

# -- Scope views -------------------------------------------------------------


def test_request_parses_nothing_until_asked() -> None:
    # A scope whose parts would fail to parse: building the request is fine.
    scope = make_scope(query_string=b"&".join([b"a"] * 5000), headers=[(b"host", b"h")])
    request = Request(scope)
    assert request.method == "GET"
    with pytest.raises(HTTPException) as info:
        _ = request.query_params
    assert info.value.status_code == 400


def test_request_views_are_cached() -> None:
    request = Request(make_scope(query_string=b"a=1", headers=[(b"host", b"h")]))
    assert request.url is request.url
    assert request.headers is request.headers
    assert request.query_params is request.query_params
    assert request.cookies is request.cookies


def test_request_url_headers_query() -> None:
    scope = make_scope(
        "POST",
        "/api/items",
        root_path="/api",
        query_string=b"q=a+b&q=c",
        headers=[(b"host", b"example.com"), (b"x-thing", b"1")],
    )
    request = Request(scope)
    assert request.method == "POST"
    assert str(request.url) == "http://example.com/api/items?q=a+b&q=c"
    assert str(request.base_url) == "http://example.com/api/"
    assert request.path == "/items"
    assert request.headers["X-Thing"] == "1"
    assert request.query_params.getlist("q") == ["a b", "c"]


def test_request_is_a_mapping_over_the_scope() -> None:
    scope = make_scope()
    request = Request(scope)
    assert request["method"] == "GET"
    assert set(request) == set(scope)
    assert len(request) == len(scope)


def test_request_cookies_from_every_cookie_header_first_wins() -> None:
    scope = make_scope(
        headers=[(b"cookie", b'a=1; b="two"'), (b"cookie", b"a=ignored; c=3; caf\xe9=\xff")]
    )
    assert Request(scope).cookies == {"a": "1", "b": "two", "c": "3", "caf\xe9": "\xff"}


def test_request_without_cookie_header_has_no_cookies() -> None:
    assert Request(make_scope()).cookies == {}


def test_request_client_state_path_params() -> None:
    scope = make_scope(path_params={"id": 3}, state={"db": "conn"})
    request = Request(scope)
    assert request.client == Address("127.0.0.1", 50000)
    assert request.client.host == "127.0.0.1"
    assert request.state.db == "conn"
    request.state.extra = 1
    assert scope["state"]["extra"] == 1
    assert request.path_params == {"id": 3}


def test_request_without_client_state_or_path_params() -> None:
    scope = make_scope()
    del scope["client"]
    request = Request(scope)
    assert request.client is None
    assert request.path_params == {}
    request.state.x = 1
    assert scope["state"] == {"x": 1}


def test_request_session_needs_the_middleware() -> None:
    with pytest.raises(RuntimeError, match="sessions middleware"):
        _ = Request(make_scope()).session
    assert Request(make_scope(session={"a": 1})).session == {"a": 1}


# -- Body --------------------------------------------------------------------


async def test_body_joins_chunks_and_can_be_read_twice() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab", b"", b"cd"))
    assert await request.body() == b"abcd"
    assert await request.body() == b"abcd"


async def test_empty_body() -> None:
    request = Request(make_scope("POST"), body_receive())
    assert await request.body() == b""


async def test_body_then_stream_gives_the_body() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab", b"cd"))
    await request.body()
    assert [chunk async for chunk in request.stream()] == [b"abcd"]


async def test_stream_gives_chunks_as_they_come() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab", b"", b"cd"))
    assert [chunk async for chunk in request.stream()] == [b"ab", b"cd"]


async def test_stream_then_body_is_an_error() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab", b"cd"))
    async for _ in request.stream():
        pass
    with pytest.raises(RuntimeError, match="stream"):
        await request.body()
    with pytest.raises(RuntimeError, match="stream"):
        await request.peek(1)
    with pytest.raises(RuntimeError, match="stream"):
        async for _ in request.stream():
            pass


async def test_peek_keeps_what_it_read_for_body() -> None:
    request = Request(make_scope("POST"), body_receive(b"abc", b"def", b"gh"))
    assert await request.peek(4) == b"abcd"
    assert await request.peek(2) == b"ab"
    assert await request.body() == b"abcdefgh"


async def test_peek_past_the_end_gives_the_whole_body() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab"))
    assert await request.peek(100) == b"ab"
    assert [c async for c in request.stream()] == [b"ab"]


async def _inner_body_app(result: dict[str, Any]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        result["body"] = await Request(scope, receive).body()

    return app


@pytest.mark.parametrize("peek", [0, 1, 3, 5, 100])
async def test_a_middleware_that_peeks_leaves_the_body_intact_inside(peek: int) -> None:
    result: dict[str, Any] = {}
    inner = await _inner_body_app(result)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await request.peek(peek)
        await inner(scope, request.receive, send)

    await middleware(make_scope("POST"), body_receive(b"abc", b"de", b"f"), _no_send)
    assert result["body"] == b"abcdef"


@pytest.mark.parametrize("chunks", [(), (b"abc",), (b"a", b"b", b"")])
async def test_a_middleware_that_reads_the_whole_body_leaves_it_intact_inside(
    chunks: tuple[bytes, ...],
) -> None:
    result: dict[str, Any] = {}
    inner = await _inner_body_app(result)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        outer = await request.body()
        await inner(scope, request.receive, send)
        result["outer"] = outer

    await middleware(make_scope("POST"), body_receive(*chunks), _no_send)
    assert result["body"] == result["outer"] == b"".join(chunks)


async def test_replayed_receive_gives_messages_in_order_then_the_server_receive() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab", b"cd", b"ef", disconnect=True))
    await request.peek(3)
    receive = request.receive
    messages = [await receive() for _ in range(4)]
    assert messages == [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": True},
        {"type": "http.request", "body": b"ef", "more_body": False},
        {"type": "http.disconnect"},
    ]


async def test_receive_without_reading_is_the_server_receive() -> None:
    receive = body_receive(b"x")
    assert Request(make_scope(), receive).receive is receive


async def test_json_body() -> None:
    request = Request(make_scope("POST"), body_receive(b'{"a": [1, ', b'"\xc3\xa9"]}'))
    assert await request.json() == {"a": [1, "é"]}


@pytest.mark.parametrize(
    "body", [b"", b"{", b"{'a': 1}", b"\xff\xfe\xfa", b'"\xff"', b"[" * 100_000, b"NaN]"]
)
async def test_malformed_json_is_a_400(body: bytes) -> None:
    request = Request(make_scope("POST"), body_receive(body))
    with pytest.raises(HTTPException) as info:
        await request.json()
    assert info.value.status_code == 400
    assert "Malformed JSON" in info.value.detail


async def test_body_over_max_size_by_content_length_is_a_413_without_reading() -> None:
    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    scope = make_scope("POST", headers=[(b"content-length", b"11")])
    with pytest.raises(HTTPException) as info:
        await Request(scope, receive).body(max_size=10)
    assert info.value.status_code == 413


async def test_body_over_max_size_while_streaming_is_a_413() -> None:
    request = Request(make_scope("POST"), body_receive(b"12345", b"67890", b"X", b"more"))
    with pytest.raises(HTTPException) as info:
        await request.body(max_size=10)
    assert info.value.status_code == 413
    with pytest.raises(HTTPException):
        await request.json(max_size=10)


async def test_body_at_max_size_is_fine_and_none_lifts_the_limit() -> None:
    assert await Request(make_scope(), body_receive(b"1234", b"5")).body(max_size=5) == b"12345"
    assert await Request(make_scope(), body_receive(b"x" * 100)).body(max_size=None) == b"x" * 100


async def test_body_over_max_size_after_a_peek_is_a_413() -> None:
    request = Request(make_scope("POST"), body_receive(b"0123456789"))
    await request.peek(10)
    with pytest.raises(HTTPException) as info:
        await request.body(max_size=5)
    assert info.value.status_code == 413


async def test_a_body_already_read_is_checked_against_a_smaller_max_size() -> None:
    request = Request(make_scope("POST"), body_receive(b"0123456789"))
    await request.body()
    with pytest.raises(HTTPException) as info:
        await request.body(max_size=5)
    assert info.value.status_code == 413


async def test_disconnect_mid_body_raises_client_disconnect() -> None:
    request = Request(make_scope("POST"), disconnect_after(b"abc"))
    with pytest.raises(ClientDisconnect):
        await request.body()
    assert await request.is_disconnected()


async def test_disconnect_mid_stream_raises_client_disconnect() -> None:
    request = Request(make_scope("POST"), disconnect_after(b"abc"))
    stream = request.stream()
    assert await stream.__anext__() == b"abc"
    with pytest.raises(ClientDisconnect):
        await stream.__anext__()


async def test_request_built_without_receive_cannot_read_a_body() -> None:
    with pytest.raises(RuntimeError, match="without a receive"):
        await Request(make_scope()).body()


# -- is_disconnected ---------------------------------------------------------


async def test_is_disconnected_false_keeps_the_body() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab", b"cd"))
    assert not await request.is_disconnected()
    assert not await request.is_disconnected()
    assert await request.body() == b"abcd"


async def test_is_disconnected_false_while_the_client_waits() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab"))
    assert await request.body() == b"ab"
    assert not await request.is_disconnected()


async def test_is_disconnected_true_after_the_body() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab", disconnect=True))
    assert await request.body() == b"ab"
    assert await request.is_disconnected()
    assert await request.is_disconnected()


async def test_is_disconnected_true_before_the_body_ends() -> None:
    request = Request(make_scope("POST"), disconnect_after(b"ab"))
    assert not await request.is_disconnected()  # reads and keeps "ab"
    assert await request.is_disconnected()
    assert await request.peek(2) == b"ab"


async def test_is_disconnected_is_shared_by_requests_on_one_scope() -> None:
    scope = make_scope("POST")
    first = Request(scope, body_receive(b"x", disconnect=True))
    await first.body()
    assert await first.is_disconnected()

    async def never() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    assert await Request(scope, never).is_disconnected()


async def test_replayed_receive_reports_a_known_disconnect() -> None:
    request = Request(make_scope("POST"), body_receive(b"ab", disconnect=True))
    await request.body()
    assert await request.is_disconnected()
    receive = request.receive
    assert (await receive())["body"] == b"ab"
    assert await receive() == {"type": "http.disconnect"}


async def _no_send(message: Message) -> None:
    raise AssertionError(f"nothing should be sent: {message}")


@pytest.mark.parametrize("declared", [b"\xb2", b"\xb9\xb3", b"1" * 5000, b"0" * 5000 + b"7"])
async def test_a_content_length_python_cannot_int_is_no_500(declared: bytes) -> None:
    # "²".isdigit() is true but int("²") fails; int() refuses 5000 digits.
    request = Request(
        make_scope("POST", headers=[(b"content-length", declared)]), body_receive(b"1234567")
    )
    if declared.startswith(b"1" * 20):
        with pytest.raises(HTTPException) as caught:
            await request.body(max_size=100)
        assert caught.value.status_code == 413
    else:
        assert await request.body(max_size=100) == b"1234567"


# -- One body for every Request over a scope (issue 13 #1) -------------------


async def test_a_second_request_over_the_same_scope_gets_the_body_read_by_the_first() -> None:
    scope = make_scope("POST")
    receive = body_receive(b"ab", b"cd")
    assert await Request(scope, receive).body() == b"abcd"
    with anyio.fail_after(5):
        second = Request(scope, receive)
        assert await second.body() == b"abcd"
        assert [c async for c in Request(scope, receive).stream()] == [b"abcd"]
        assert await Request(scope, receive).peek(3) == b"abc"


async def test_a_body_peeked_to_its_end_is_there_for_a_second_request() -> None:
    scope = make_scope("POST")
    receive = body_receive(b"ab")
    assert await Request(scope, receive).peek(10) == b"ab"
    with anyio.fail_after(5):
        assert await Request(scope, receive).body() == b"ab"


async def test_a_body_streamed_away_is_a_clear_error_at_once_for_a_second_request() -> None:
    scope = make_scope("POST")
    receive = body_receive(b"ab", b"cd")
    assert [c async for c in Request(scope, receive).stream()] == [b"ab", b"cd"]
    with anyio.fail_after(5):
        with pytest.raises(RuntimeError, match=r"stream\(\)"):
            await Request(scope, receive).body()
        with pytest.raises(RuntimeError, match=r"stream\(\)"):
            async for _ in Request(scope, receive).stream():
                pass


async def test_a_form_read_by_the_endpoint_is_the_form_a_second_request_sees() -> None:
    scope = make_scope("POST", headers=[(b"content-type", b"application/x-www-form-urlencoded")])
    receive = body_receive(b"a=1&b=2")
    form = await Request(scope, receive).form()
    with anyio.fail_after(5):
        second = Request(scope, receive)
        assert await second.form() is form
        with pytest.raises(RuntimeError, match=r"form\(\)"):
            await second.body()


class BodyError(Exception):
    pass


async def reads_then_fails(request: Request) -> PlainTextResponse:
    await request.body()
    raise BodyError


async def streams_then_fails(request: Request) -> PlainTextResponse:
    async for _ in request.stream():
        pass
    raise BodyError


async def reads_json(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(await request.json()))


async def handler_echoes_the_body(request: Request, exc: Exception) -> PlainTextResponse:
    try:
        body = await request.body()
    except RuntimeError as error:
        return PlainTextResponse(f"no body: {error}", status_code=500)
    return PlainTextResponse(b"handler saw " + body, status_code=400)


async def reads_after_the_app(request: Request, call_next: CallNext) -> Any:
    response = await call_next(request)
    response.headers["x-body"] = (await request.body()).decode()
    return response


def exception_handler_app() -> ASGIApp:
    return exception_handlers(
        router(
            route("/read/{id:int}", reads_then_fails, methods=["POST"]),
            route("/stream", streams_then_fails, methods=["POST"]),
        ),
        {BodyError: handler_echoes_the_body},
    )


def middleware_app() -> ASGIApp:
    return http_middleware(reads_after_the_app, router(route("/", reads_json, methods=["POST"])))


def drained_receive(*chunks: bytes) -> Receive:
    """The body, then a failure: a real server would wait for the disconnect here."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        raise AssertionError("receive() called after the body ended: a server waits here")

    return receive


async def call(app: ASGIApp, path: str, *chunks: bytes) -> SendRecorder:
    send = SendRecorder()
    await app(make_scope("POST", path), drained_receive(*chunks), send)
    return send


async def test_an_exception_handler_reads_the_body_the_endpoint_read() -> None:
    send = await call(exception_handler_app(), "/read/1", b"pay", b"load")
    assert send.status == 400
    assert send.body == b"handler saw payload"


async def test_an_exception_handler_gets_a_clear_error_for_a_streamed_away_body() -> None:
    send = await call(exception_handler_app(), "/stream", b"payload")
    assert send.status == 500
    assert b"stream()" in send.body


async def test_an_http_middleware_reads_the_body_after_the_endpoint_read_it() -> None:
    with anyio.fail_after(10):
        async with TestClient(middleware_app()) as client:
            response = await client.post("/", content=b'{"a": 1}')
    assert response.text == "{'a': 1}"
    assert response.headers["x-body"] == '{"a": 1}'


def test_an_exception_handler_reads_a_consumed_body_under_uvicorn() -> None:
    with serve(exception_handler_app()) as base, httpx.Client(base_url=base, timeout=5) as client:
        response = client.post("/read/7", content=b"x" * 100_000)
        assert response.status_code == 400
        assert response.text == "handler saw " + "x" * 100_000


def test_an_http_middleware_reads_a_consumed_body_under_uvicorn() -> None:
    with serve(middleware_app()) as base, httpx.Client(base_url=base, timeout=10) as client:
        response = client.post("/", content=b"[1, 2]")
        assert response.headers["x-body"] == "[1, 2]"


# -- Starlette's test_requests.py, behaviour by behaviour ----------------------
#
# Deliberate differences: Request takes (scope, receive), no send, so there is
# no send_push_promise (HTTP/2 push is gone from browsers) nor
# send_early_hints; stream() hands each chunk out once, so a second stream()
# over a body being streamed is a RuntimeError rather than a second reader
# sharing the chunks; a repeated cookie name keeps its first value (RFC 6265
# §5.4 puts the most specific first; Starlette keeps the last);
# is_disconnected() tells only what receive() has ready without waiting (see
# its docstring), so after a response it may say False where Starlette's
# TestClient says True.  Starlette's state-object and url_for-in-a-Starlette-
# app tests cover Starlette's own application object (no counterpart).


def echo_request_app() -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        data = {
            "method": request.method,
            "url": str(request.url),
            "params": dict(request.query_params),
            "headers": dict(request.headers),
            "body": body.decode(),
            "path": [scope["path"], scope["raw_path"].decode()],
        }
        await JSONResponse(data)(scope, receive, send)

    return app


def test_request_method_url_query_headers_body_through_the_test_client() -> None:
    # Not entered: the app answers http only, so no lifespan.
    client = TestClient(echo_request_app())
    data = client.get("/123?a=abc&b=456").json()
    assert data["method"] == "GET"
    assert data["url"] == "http://testserver/123?a=abc&b=456"
    assert data["params"] == {"a": "abc", "b": "456"}
    assert data["headers"]["host"] == "testserver"
    assert data["headers"]["user-agent"] == "testclient"
    assert data["body"] == ""
    assert client.get("https://example.org:123/").json()["url"] == "https://example.org:123/"
    assert client.post("/", json={"a": "123"}).json()["body"] == '{"a":"123"}'
    assert client.post("/", content=b"abc").json()["body"] == "abc"

    def chunked() -> Any:
        yield b"foo"
        yield b"bar"

    assert client.post("/", content=chunked()).json()["body"] == "foobar"
    assert client.get("/he%2Fllo").json()["path"] == ["/he/llo", "/he%2Fllo"]


@pytest.mark.parametrize(
    ("client", "expected"),
    [(["client", 42], Address("client", 42)), (None, None), ("absent", None)],
)
def test_request_client_from_a_list_none_or_nothing(client: Any, expected: Any) -> None:
    scope: Scope = {"type": "http"}
    if client != "absent":
        scope["client"] = client
    assert Request(scope).client == expected


def test_request_over_a_bare_scope_is_a_mapping() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/abc/"})
    assert request["method"] == "GET"
    assert dict(request) == {"type": "http", "method": "GET", "path": "/abc/"}
    assert len(request) == 3


@pytest.mark.parametrize(
    "messages",
    [
        [{"body": b"123", "more_body": True}, {"body": b""}],
        [{"body": b"", "more_body": True}, {"body": b"123"}],
        [{"body": b"12", "more_body": True}, {"body": b"3"}],
        [{"body": b"123", "more_body": True}, {"body": b"", "more_body": True}, {"body": b""}],
    ],
)
async def test_body_from_messages_with_empty_chunks_anywhere(messages: list[Message]) -> None:
    pending = list(messages)

    async def receive() -> Message:
        return {"type": "http.request", **pending.pop(0)}

    assert await Request({"type": "http"}, receive).body() == b"123"


async def test_a_second_stream_while_one_is_streaming_is_a_runtime_error() -> None:
    request = Request(make_scope("POST"), body_receive(b"1", b"2", b"3"))
    first = request.stream()
    second = request.stream()
    assert await first.__anext__() == b"1"
    with pytest.raises(RuntimeError, match=r"stream\(\)"):
        await second.__anext__()
    assert [chunk async for chunk in first] == [b"2", b"3"]


async def test_form_urlencoded_and_as_a_context_manager() -> None:
    scope = make_scope("POST", headers=[(b"content-type", b"application/x-www-form-urlencoded")])
    form = await Request(scope, body_receive(b"abc=123+%40")).form()
    assert dict(form) == {"abc": "123 @"}
    scope = make_scope("POST", headers=[(b"content-type", b"application/x-www-form-urlencoded")])
    async with Request(scope, body_receive(b"abc=123+%40")).form() as form:
        assert dict(form) == {"abc": "123 @"}


async def test_request_close_closes_the_files_of_its_form() -> None:
    boundary = b"B"
    body = (
        b'--B\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\n'
        b"data\r\n--B--\r\n"
    )
    scope = make_scope(
        "POST", headers=[(b"content-type", b"multipart/form-data; boundary=" + boundary)]
    )
    request = Request(scope, body_receive(body))
    upload = (await request.form())["f"]
    assert not isinstance(upload, str)
    assert not upload.file.closed
    await request.close()
    assert upload.file.closed
    await Request(make_scope()).close()  # nothing read, nothing to close


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("chips=ahoy; vienna=finger", {"chips": "ahoy", "vienna": "finger"}),
        (
            'keebler="E=mc2; L=\\"Loves\\"; fudge=\\012;"',
            {"keebler": '"E=mc2', "L": '\\"Loves\\"', "fudge": "\\012", "": '"'},
        ),
        ("keebler=E=mc2", {"keebler": "E=mc2"}),
        ("key:term=value:term", {"key:term": "value:term"}),
        ("a=b; c=[; d=r; f=h", {"a": "b", "c": "[", "d": "r", "f": "h"}),
        ("a=b; Domain=example.com", {"a": "b", "Domain": "example.com"}),
        ("a=b; h=i; a=c", {"a": "b", "h": "i"}),
        (
            "abc=def; unnamed; django_language=en",
            {"": "unnamed", "abc": "def", "django_language": "en"},
        ),
        ('a=b; "; c=d', {"a": "b", "": '"', "c": "d"}),
        ("a b c=d e = f; gh=i", {"a b c": "d e = f", "gh": "i"}),
        ('a   b,c<>@:/[]?{}=d  "  =e,f g', {"a   b,c<>@:/[]?{}": 'd  "  =e,f g'}),
        ("  =  b  ;  ;  =  ;   c  =  ;  ", {"": "b", "c": ""}),
    ],
)
def test_request_cookies_as_browsers_send_them(header: str, expected: dict[str, str]) -> None:
    scope = make_scope(headers=[(b"cookie", header.encode())])
    assert Request(scope).cookies == expected


def test_request_cookies_lenient_with_json_in_a_value() -> None:
    tough = (
        "provider-oauth-nonce=validAsciiblabla; "
        'okta-oauth-redirect-params={"responseType":"code","scopes":["openid","email"],'
        '"urls":{"issuer":"https://x.okta.com/oauth2/authServer"}}; '
        "importantCookie=importantValue; sessionCookie=importantSessionValue"
    )
    cookies = Request(make_scope(headers=[(b"cookie", tough.encode())])).cookies
    assert set(cookies) == {
        "provider-oauth-nonce",
        "okta-oauth-redirect-params",
        "importantCookie",
        "sessionCookie",
    }


def test_url_for_outside_a_router_is_a_clear_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="router"):
        Request(make_scope()).url_for("index")


async def test_a_body_cut_off_at_max_size_is_an_error_for_a_second_request_not_cut_short() -> None:
    scope = make_scope("POST")
    receive = drained_receive(b"abc", b"def", b"ghi")
    first = Request(scope, receive)
    with pytest.raises(HTTPException):
        await first.body(max_size=4)
    with pytest.raises(RuntimeError, match="max_size"):
        await Request(scope, receive).body()
    # The request that stopped may still read on, with a larger limit.
    assert await first.body(max_size=None) == b"abcdefghi"
    assert await Request(scope, receive).body() == b"abcdefghi"


async def test_a_partly_peeked_body_is_an_error_for_a_second_request_until_handed_inward() -> None:
    scope = make_scope("POST")
    receive = drained_receive(b"abc", b"def")
    outer = Request(scope, receive)
    assert await outer.peek(2) == b"ab"
    with pytest.raises(RuntimeError, match=r"peek\(\)"):
        await Request(scope, receive).body()
    # Handed inward, the app inside reads all of it; then everyone can.
    assert await Request(dict(scope), outer.receive).body() == b"abcdef"
    assert await Request(scope, receive).body() == b"abcdef"


async def test_the_receive_of_a_second_request_replays_the_body_the_first_read() -> None:
    scope = make_scope("POST")
    receive = drained_receive(b"ab", b"cd")
    assert await Request(scope, receive).body() == b"abcd"
    inner = Request(scope, receive).receive
    assert await inner() == {"type": "http.request", "body": b"abcd", "more_body": False}
