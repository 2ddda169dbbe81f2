"""Responses as ASGI apps: headers, bodies, HEAD, cookies, redirects, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asgikit.background import BackgroundTask
from asgikit.exceptions import HTTPException
from asgikit.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    http_exception_response,
)
from asgikit.types import Message
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
