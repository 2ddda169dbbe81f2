"""Responses as ASGI apps: headers, bodies, HEAD, cookies, redirects, errors."""

from __future__ import annotations

import array
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asgikit.background import BackgroundTask
from asgikit.exceptions import HTTPException
from asgikit.files import FileResponse
from asgikit.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    http_exception_response,
)
from asgikit.streaming import StreamingResponse
from asgikit.testing import TestClient
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import SendRecorder, body_receive, make_scope, run_app


async def test_response_sends_start_then_body() -> None:
    sent = await run_app(Response(b"hello", media_type="application/octet-stream"))
    assert sent.messages == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", b"5"),
                (b"content-type", b"application/octet-stream"),
            ],
        },
        {"type": "http.response.body", "body": b"hello"},
    ]


async def test_text_responses_get_a_charset_and_a_utf8_length() -> None:
    sent = await run_app(PlainTextResponse("héllo ☃"))
    assert sent.header(b"content-type") == [b"text/plain; charset=utf-8"]
    assert sent.header(b"content-length") == [str(len("héllo ☃".encode())).encode()]
    assert sent.body == "héllo ☃".encode()
    html = await run_app(HTMLResponse("<p>x</p>", status_code=201))
    assert html.status == 201
    assert html.header(b"content-type") == [b"text/html; charset=utf-8"]


async def test_an_explicit_charset_or_content_type_is_kept() -> None:
    sent = await run_app(Response("x", media_type="text/csv; charset=latin-1"))
    assert sent.header(b"content-type") == [b"text/csv; charset=latin-1"]
    sent = await run_app(PlainTextResponse("x", headers={"Content-Type": "text/x-custom"}))
    assert sent.header(b"content-type") == [b"text/x-custom"]


async def test_an_explicit_content_length_is_kept() -> None:
    sent = await run_app(Response(b"abc", headers={"Content-Length": "3"}))
    assert sent.header(b"content-length") == [b"3"]


async def test_response_without_content_has_length_zero_and_no_type() -> None:
    sent = await run_app(Response())
    assert sent.headers == [(b"content-length", b"0")]
    assert sent.body == b""


def test_response_refuses_content_it_cannot_render() -> None:
    with pytest.raises(TypeError, match="cannot render"):
        Response({"a": 1})
    assert Response(bytearray(b"ab")).body == b"ab"
    assert Response(memoryview(b"ab")).body == b"ab"


async def test_head_sends_no_body_but_keeps_content_length() -> None:
    sent = await run_app(PlainTextResponse("hello"), make_scope("HEAD"))
    assert sent.header(b"content-length") == [b"5"]
    assert sent.body == b""
    assert sent.complete


@pytest.mark.parametrize("status", [204, 304, 101])
async def test_no_content_length_for_statuses_without_a_body(status: int) -> None:
    sent = await run_app(Response(status_code=status))
    assert sent.header(b"content-length") == []
    assert sent.status == status


async def test_json_response_is_compact_utf8_without_charset() -> None:
    sent = await run_app(JSONResponse({"name": "é☃", "n": [1, 2.5, None, True]}))
    assert sent.body == '{"name":"é☃","n":[1,2.5,null,true]}'.encode()
    assert sent.header(b"content-type") == [b"application/json"]
    assert sent.header(b"content-length") == [str(len(sent.body)).encode()]
    assert json.loads(sent.body) == {"name": "é☃", "n": [1, 2.5, None, True]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_json_response_refuses_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError, match="JSON"):
        JSONResponse({"x": value})


def test_json_response_refuses_what_json_cannot_encode() -> None:
    with pytest.raises(TypeError):
        JSONResponse({"x": object()})


async def test_edits_to_response_headers_reach_the_sent_message() -> None:
    response = PlainTextResponse("x")
    response.headers["X-One"] = "1"
    response.headers.append("X-Many", "a")
    response.headers.append("X-Many", "b")
    del response.headers["content-type"]
    response.set_cookie("c", "v")
    assert response.headers.getlist("x-many") == ["a", "b"]
    sent = await run_app(response)
    assert sent.header(b"x-one") == [b"1"]
    assert sent.header(b"x-many") == [b"a", b"b"]
    assert sent.header(b"content-type") == []
    assert sent.header(b"set-cookie") == [b"c=v; Path=/; SameSite=Lax"]


async def test_two_views_of_response_headers_do_not_undo_each_other() -> None:
    response = Response(b"")
    first, second = response.headers, response.headers
    first["x-a"] = "1"
    second["x-b"] = "2"
    response.set_cookie("c", "v")
    assert first.get("set-cookie") == "c=v; Path=/; SameSite=Lax"
    sent = await run_app(response)
    assert sent.header(b"x-a") == [b"1"]
    assert sent.header(b"x-b") == [b"2"]


async def test_a_response_can_be_sent_many_times_unchanged() -> None:
    response = PlainTextResponse("x")

    async def mutating_send(message: Message) -> None:
        # A middleware that edits the header list in place (as Starlette's
        # MutableHeaders(scope=message) does) must not change the response.
        if message["type"] == "http.response.start":
            message["headers"].append((b"x-added", b"1"))

    for _ in range(3):
        await response(make_scope(), body_receive(), mutating_send)
    sent = await run_app(response)
    assert sent.header(b"x-added") == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Bad": "a\r\nSet-Cookie: evil=1"},
        {"X-Bad": "a\nb"},
        {"X-Bad": "a\rb"},
        {"X-Bad": "a\0b"},
        {"X-Bad\r\nX-Evil": "v"},
        {"X Bad": "v"},
        {"": "v"},
        {"X-Bad:": "v"},
    ],
)
def test_header_injection_is_refused_when_the_response_is_built(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="header"):
        Response(b"", headers=headers)
    with pytest.raises(ValueError, match="header"):
        JSONResponse({}, headers=headers)


def test_header_injection_through_response_headers_is_refused() -> None:
    response = Response(b"")
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        response.headers["x"] = "a\r\nb"


@pytest.mark.parametrize("url", ["/a\r\nSet-Cookie: x=1", "/a\nb", "/a\rb", "/a\0b"])
def test_redirect_to_a_url_with_cr_lf_nul_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        RedirectResponse(url)


async def test_redirect_defaults_to_307_with_location() -> None:
    sent = await run_app(RedirectResponse("/next?a=1#f"))
    assert sent.status == 307
    assert sent.header(b"location") == [b"/next?a=1#f"]
    assert sent.header(b"content-length") == [b"0"]
    assert sent.body == b""


async def test_redirect_location_is_percent_encoded_but_keeps_escapes() -> None:
    sent = await run_app(RedirectResponse("https://ex.com/a b/é?q=ü&r=%2F", status_code=302))
    assert sent.status == 302
    assert sent.header(b"location") == [b"https://ex.com/a%20b/%C3%A9?q=%C3%BC&r=%2F"]


async def test_redirect_accepts_a_url_object() -> None:
    from asgikit.datastructures import URL

    sent = await run_app(RedirectResponse(URL("http://h/x"), headers={"X-A": "1"}))
    assert sent.header(b"location") == [b"http://h/x"]
    assert sent.header(b"x-a") == [b"1"]


# -- Cookies on responses ----------------------------------------------------


def _set_cookies(response: Response) -> list[str]:
    return response.headers.getlist("set-cookie")


def test_set_cookie_with_every_attribute() -> None:
    response = Response()
    response.set_cookie(
        "sid",
        "abc123",
        max_age=60,
        expires="Wed, 21 Oct 2015 07:28:00 GMT",
        path="/app",
        domain="example.com",
        secure=True,
        httponly=True,
        samesite="strict",
        partitioned=True,
    )
    assert _set_cookies(response) == [
        "sid=abc123; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Max-Age=60; Domain=example.com; "
        "Path=/app; Secure; HttpOnly; SameSite=Strict; Partitioned"
    ]


def test_set_cookie_defaults_and_several_cookies() -> None:
    response = Response()
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", samesite=None, path=None)
    assert _set_cookies(response) == ["a=1; Path=/; SameSite=Lax", "b=2"]


def test_set_cookie_samesite_none_needs_secure() -> None:
    response = Response()
    with pytest.raises(ValueError, match="secure"):
        response.set_cookie("a", "1", samesite="none")
    response.set_cookie("a", "1", samesite="None", secure=True)
    assert _set_cookies(response) == ["a=1; Path=/; Secure; SameSite=None"]


def test_set_cookie_refuses_bad_names_values_and_attributes() -> None:
    response = Response()
    with pytest.raises(ValueError, match="name"):
        response.set_cookie("a b", "1")
    with pytest.raises(ValueError, match="value"):
        response.set_cookie("a", "x;y")
    with pytest.raises(ValueError, match="path"):
        response.set_cookie("a", "1", path="/x\r\nSet-Cookie: e=1")
    with pytest.raises(ValueError, match="samesite"):
        response.set_cookie("a", "1", samesite="sometimes")
    with pytest.raises(ValueError, match="partitioned"):
        response.set_cookie("a", "1", partitioned=True)
    assert _set_cookies(response) == []


def test_delete_cookie_expires_it_now() -> None:
    response = Response()
    response.delete_cookie("sid", path="/app", domain="example.com")
    [cookie] = _set_cookies(response)
    assert cookie.startswith("sid=; Expires=")
    assert "GMT; Max-Age=0; Domain=example.com; Path=/app; SameSite=Lax" in cookie


def _identifying(cookie: str) -> set[str]:
    """The attributes that tell one cookie from another (RFC 6265 §5.3, CHIPS)."""
    kept = ("Domain=", "Path=", "Secure", "SameSite=", "Partitioned")
    return {a for a in cookie.split("; ")[1:] if a.startswith(kept)}


@pytest.mark.parametrize(
    "attributes",
    [
        pytest.param({"partitioned": True, "secure": True, "samesite": "none"}, id="chips"),
        pytest.param({"path": "/app", "domain": "example.com", "secure": True}, id="path-domain"),
        pytest.param({"samesite": "strict", "httponly": True}, id="strict-httponly"),
    ],
)
def test_delete_cookie_mirrors_every_attribute_that_identifies_the_cookie(
    attributes: dict[str, Any],
) -> None:
    response = Response()
    response.set_cookie("sid", "abc", **attributes)
    response.delete_cookie("sid", **attributes)
    set_it, delete_it = _set_cookies(response)
    assert _identifying(delete_it) == _identifying(set_it)
    assert "Max-Age=0" in delete_it


def test_delete_cookie_of_a_partitioned_cookie_needs_secure() -> None:
    with pytest.raises(ValueError, match="partitioned"):
        Response().delete_cookie("sid", partitioned=True)


# -- Background tasks --------------------------------------------------------


async def test_background_task_runs_after_the_body_was_sent() -> None:
    events: list[str] = []

    async def task(name: str) -> None:
        events.append(f"task {name}")

    class Recorder(SendRecorder):
        async def __call__(self, message: Message) -> None:
            events.append(message["type"])
            await super().__call__(message)

    response = PlainTextResponse("x", background=BackgroundTask(task, "t"))
    await response(make_scope(), body_receive(), Recorder())
    assert events == ["http.response.start", "http.response.body", "task t"]


# -- HTTPException -----------------------------------------------------------


async def test_http_exception_response_is_text_by_default() -> None:
    exc = HTTPException(404)
    sent = await run_app(http_exception_response(make_scope(), exc))
    assert sent.status == 404
    assert sent.body == b"Not Found"
    assert sent.header(b"content-type") == [b"text/plain; charset=utf-8"]


async def test_http_exception_response_is_json_when_accepted() -> None:
    scope = make_scope(headers=[(b"accept", b"application/json")])
    exc = HTTPException(400, "Bad thing", headers={"X-Why": "because"})
    sent = await run_app(http_exception_response(scope, exc))
    assert sent.status == 400
    assert json.loads(sent.body) == {"detail": "Bad thing"}
    assert sent.header(b"x-why") == [b"because"]


@pytest.mark.parametrize("status", [204, 304])
async def test_http_exception_response_without_body(status: int) -> None:
    sent = await run_app(http_exception_response(make_scope(), HTTPException(status)))
    assert sent.status == status
    assert sent.body == b""
    assert sent.header(b"content-length") == []


def test_http_exception_fields() -> None:
    exc = HTTPException(418, headers={"a": "b"})
    assert exc.detail == "I'm a Teapot"
    assert exc.headers == {"a": "b"}
    assert str(exc) == "418: I'm a Teapot"
    assert repr(exc) == 'HTTPException(status_code=418, detail="I\'m a Teapot")'
    assert HTTPException(599).detail == ""


async def test_json_response_escapes_a_lone_surrogate_instead_of_failing() -> None:
    # json.loads('"\\ud800"') gives a lone surrogate, which has no UTF-8 form.
    answer = await run_app(JSONResponse({"name": "\ud800", "city": "Zürich"}))
    assert answer.status == 200
    assert answer.body == b'{"name":"\\ud800","city":"Z\\u00fcrich"}'
    assert json.loads(answer.body) == {"name": "\ud800", "city": "Zürich"}


# -- Parity with Starlette's tests/test_responses.py -------------------------
# Through the test client, as a user sees them.  Range and precondition
# details live in tests/test_files.py and tests/test_ranges.py, disconnects
# and generator closing in tests/test_streaming.py.


def _serve(response_for: Callable[[Scope], ASGIApp]) -> TestClient:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await response_for(scope)(scope, receive, send)

    return TestClient(app)


def test_text_bytes_and_json_null_bodies() -> None:
    with _serve(lambda scope: Response("hello, world", media_type="text/plain")) as client:
        assert client.get("/").text == "hello, world"
    with _serve(lambda scope: Response(b"xxxxx", media_type="image/png")) as client:
        assert client.get("/").content == b"xxxxx"
    with _serve(lambda scope: JSONResponse(None)) as client:
        response = client.get("/")
    assert response.content == b"null"
    assert response.json() is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(memoryview(b"xyz"), b"xyz", id="memoryview"),
        pytest.param(
            memoryview(array.array("H", [1, 2])), bytes(array.array("H", [1, 2])), id="typed"
        ),
        pytest.param(memoryview(b"abcdef")[::2], b"ace", id="non-contiguous"),
    ],
)
def test_memoryview_content_is_sent_as_its_bytes(content: memoryview, expected: bytes) -> None:
    with _serve(lambda scope: Response(content)) as client:
        response = client.get("/")
    assert response.content == expected
    assert response.headers["content-length"] == str(len(expected))


def test_a_redirect_is_followed_and_quotes_a_non_ascii_target() -> None:
    def answer(scope: Scope) -> ASGIApp:
        if scope["path"] == "/I ♥ asgikit/":
            return PlainTextResponse("hello, world")
        return RedirectResponse("/I ♥ asgikit/")

    with _serve(answer) as client:
        response = client.get("/redirect")
        unfollowed = client.get("/redirect", follow_redirects=False)
    assert response.text == "hello, world"
    assert str(response.url) == "http://testserver/I%20%E2%99%A5%20asgikit/"
    assert unfollowed.headers["content-length"] == "0"


def test_streaming_async_generator_then_its_background_task() -> None:
    filled: list[str] = []

    async def numbers(low: int, high: int) -> AsyncIterator[str]:
        for i in range(low, high + 1):
            yield str(i) if i == high else f"{i}, "

    async def cleanup() -> None:
        filled.extend([chunk async for chunk in numbers(6, 9)])

    def answer(scope: Scope) -> ASGIApp:
        return StreamingResponse(
            numbers(1, 5), media_type="text/plain", background=BackgroundTask(cleanup)
        )

    with _serve(answer) as client:
        response = client.get("/")
    assert response.text == "1, 2, 3, 4, 5"
    assert "".join(filled) == "6, 7, 8, 9"
    assert "content-length" not in response.headers


class _CountingIterator:
    """An async iterator written by hand, not a generator."""

    def __init__(self) -> None:
        self.count = 0

    def __aiter__(self) -> _CountingIterator:
        return self

    async def __anext__(self) -> str:
        if self.count == 5:
            raise StopAsyncIteration
        self.count += 1
        return str(self.count)


class _Iterable:
    """An async iterable whose ``__aiter__`` is an async generator."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(5):
            yield str(i + 1).encode()


def _sync_numbers() -> Iterator[str]:
    yield from ("1", "2", "3", "4", "5")


@pytest.mark.parametrize(
    "make", [_CountingIterator, _Iterable, _sync_numbers], ids=["iterator", "iterable", "sync"]
)
def test_streaming_takes_any_async_or_sync_iterable(make: Callable[[], Any]) -> None:
    with _serve(lambda scope: StreamingResponse(make(), media_type="text/plain")) as client:
        assert client.get("/").text == "12345"


def test_streaming_with_a_given_content_length_keeps_it() -> None:
    def answer(scope: Scope) -> ASGIApp:
        return StreamingResponse(iter([b"ab", b"cd"]), headers={"content-length": "4"})

    with _serve(answer) as client:
        response = client.get("/")
    assert (response.headers["content-length"], response.content) == ("4", b"abcd")


def test_streaming_a_memoryview_chunk() -> None:
    def answer(scope: Scope) -> ASGIApp:
        return StreamingResponse(iter([memoryview(b"xyz")]))

    with _serve(answer) as client:
        assert client.get("/").content == b"xyz"


def test_reason_phrase_comes_from_the_status() -> None:
    with _serve(lambda scope: Response(status_code=204)) as client:
        assert client.get("/").reason_phrase == "No Content"


def test_file_response_media_type_size_and_disposition(tmp_path: Path) -> None:
    path = tmp_path / "xyz"
    path.write_bytes(b"<file content>")

    def answer(scope: Scope) -> ASGIApp:
        if scope["path"] == "/inline":
            return FileResponse(
                path, filename="图.txt", content_disposition_type="inline", media_type="image/jpeg"
            )
        return FileResponse(path)

    with _serve(answer) as client:
        default = client.get("/")
        inline = client.get("/inline")
    assert default.content == b"<file content>"
    # Deliberate: Starlette says text/plain for an unknown type; asgikit says
    # application/octet-stream (RFC 9110 §8.3), so no browser renders it as text.
    assert default.headers["content-type"] == "application/octet-stream"
    assert default.headers["content-length"] == "14"
    assert inline.headers["content-type"] == "image/jpeg"
    # Starlette sends filename* only; asgikit adds an ASCII fallback for old clients.
    assert inline.headers["content-disposition"] == (
        "inline; filename=\"_.txt\"; filename*=UTF-8''%E5%9B%BE.txt"
    )


def test_file_response_with_a_range_and_a_weak_if_range(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"0123456789")
    with _serve(lambda scope: FileResponse(path)) as client:
        ranged = client.get("/", headers={"range": "bytes=2-4"})
        etag = ranged.headers["etag"]
        weak = client.get("/", headers={"range": "bytes=2-4", "if-range": f"W/{etag}"})
        posted = client.post("/", headers={"range": "bytes=2-4"})
    assert (ranged.status_code, ranged.content) == (206, b"234")
    assert ranged.headers["content-range"] == "bytes 2-4/10"
    assert (weak.status_code, weak.content) == (200, b"0123456789")
    assert (posted.status_code, posted.content) == (200, b"0123456789")


@pytest.mark.parametrize("kind", ["directory", "missing"])
def test_file_response_for_a_directory_or_a_missing_file_is_an_error(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path if kind == "directory" else tmp_path / "missing"
    client = _serve(lambda scope: FileResponse(path))
    with client, pytest.raises(RuntimeError):
        client.get("/")


@pytest.mark.parametrize("header", ["bytes: 0-9", "items=0-1", "bytes=", "bytes=9-0", "bytes=5-4"])
def test_file_response_ignores_an_invalid_range_where_starlette_answers_400(
    tmp_path: Path, header: str
) -> None:
    # RFC 9110 §14.2: a server may ignore Range; asgikit serves the whole file
    # rather than refusing a request a plain GET would satisfy.
    path = tmp_path / "data"
    path.write_bytes(b"0123456789" * 30)
    with _serve(lambda scope: FileResponse(path)) as client:
        response = client.get("/", headers={"range": header})
    assert (response.status_code, len(response.content)) == (200, 300)


@pytest.mark.parametrize(("parts", "status"), [(100, 206), (101, 200)])
def test_file_response_serves_at_most_100_disjoint_ranges(
    tmp_path: Path, parts: int, status: int
) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"0123456789" * 30)
    ranges = ",".join(f"{i}-{i}" for i in range(0, 2 * parts, 2))
    with _serve(lambda scope: FileResponse(path)) as client:
        response = client.get("/", headers={"range": f"bytes={ranges}"})
    assert response.status_code == status
    assert ("content-range" in response.headers) is False
    if status == 206:
        assert response.headers["content-type"].startswith("multipart/byteranges; boundary=")


@pytest.mark.parametrize(
    ("accept", "json_preferred"),
    [
        (b"application/json", True),
        (b"application/json;q=0", False),
        (b"text/plain, application/json;q=0.5", False),
        (b"application/problem+json", True),
        (b"text/html", False),
    ],
)
def test_wants_json_follows_q_values_not_a_substring(accept: bytes, json_preferred: bool) -> None:
    from asgikit.responses import wants_json

    assert wants_json({"type": "http", "headers": [(b"accept", accept)]}) is json_preferred


def test_the_default_error_answer_of_every_piece_varies_on_accept() -> None:
    from asgikit.exceptions import HTTPException
    from asgikit.responses import http_exception_response

    scope = {"type": "http", "headers": [(b"accept", b"application/json;q=0")]}
    answer = http_exception_response(scope, HTTPException(403, "no"))
    assert answer.media_type.startswith("text/plain")
    assert answer.headers["vary"] == "Accept"


@pytest.mark.parametrize("status", [101, 204, 304])
async def test_a_status_without_content_sends_no_body_whatever_was_given(status: int) -> None:
    sent = await run_app(PlainTextResponse("stray", status_code=status))
    assert sent.body == b""
    assert b"content-length" not in dict(sent.start["headers"])


# -- The common two headers, prepared once per shape (issue 16)


async def test_responses_of_one_shape_keep_their_own_header_changes() -> None:
    changed = PlainTextResponse("abc")
    changed.set_cookie("a", "1")
    edited = PlainTextResponse("xyz")
    edited.headers["x-edit"] = "1"
    untouched = PlainTextResponse("def")
    plain = [(b"content-length", b"3"), (b"content-type", b"text/plain; charset=utf-8")]
    assert (await run_app(untouched)).headers == plain
    assert (await run_app(changed)).headers == [
        *plain,
        (b"set-cookie", b"a=1; Path=/; SameSite=Lax"),
    ]
    assert (await run_app(edited)).headers == [*plain, (b"x-edit", b"1")]
    assert (await run_app(PlainTextResponse("ghi"))).headers == plain


async def test_a_charset_other_than_utf8_gets_its_own_content_type_and_length() -> None:
    class Latin(PlainTextResponse):
        charset = "latin-1"

    class LatinInstance(PlainTextResponse):
        def __init__(self, content: str) -> None:
            self.charset = "latin-1"
            super().__init__(content)

    for response in (Latin("é"), LatinInstance("é"), Latin(b"\xe9")):
        sent = await run_app(response)
        assert sent.body == b"\xe9"
        assert sent.header(b"content-type") == [b"text/plain; charset=latin-1"]
        assert sent.header(b"content-length") == [b"1"]
    utf8 = await run_app(PlainTextResponse("é"))
    assert utf8.body == "é".encode()
    assert utf8.header(b"content-type") == [b"text/plain; charset=utf-8"]
    assert utf8.header(b"content-length") == [b"2"]


async def test_a_render_override_is_used_for_a_str_too() -> None:
    class Shouting(PlainTextResponse):
        def render(self, content: Any) -> bytes:
            return str(content).upper().encode()

    sent = await run_app(Shouting("hey"))
    assert sent.body == b"HEY"
    assert sent.header(b"content-length") == [b"3"]


def test_the_prepared_header_shapes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from asgikit import responses

    monkeypatch.setattr(responses, "_SHAPES", {})  # whatever other tests left there

    for length in range(responses._SHAPED_LENGTHS + 50):
        response = Response(b"x" * length, media_type="application/x-bounded")
        assert response._raw_headers[0] == (b"content-length", str(length).encode())
    assert len(responses._SHAPES["application/x-bounded"]) == responses._SHAPED_LENGTHS
    for number in range(responses._SHAPED_TYPES + 10):
        Response(b"", media_type=f"application/x-many-{number}")
    assert len(responses._SHAPES) == responses._SHAPED_TYPES
    late = Response(b"late", media_type=f"application/x-many-{responses._SHAPED_TYPES + 9}")
    assert list(late._raw_headers) == [
        (b"content-length", b"4"),
        (b"content-type", f"application/x-many-{responses._SHAPED_TYPES + 9}".encode()),
    ]


def test_a_bad_media_type_still_fails_when_built() -> None:
    with pytest.raises(ValueError):
        PlainTextResponse("x", media_type="text/plain\r\nx-injected: 1")
