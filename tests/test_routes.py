"""Routes: what a route does with what its endpoint gives back (errors and wrong returns)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit.background import BackgroundTask
from asgikit.endpoints import HTTPEndpoint
from asgikit.exceptions import HTTPException
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routing import route, router
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import SendRecorder, body_receive, make_scope, run_app


async def teapot(request: Request) -> PlainTextResponse:
    raise HTTPException(418, "short and stout")


async def vary_origin(request: Request) -> PlainTextResponse:
    raise HTTPException(403, "nope", headers={"Vary": "Origin"})


async def not_modified(request: Request) -> PlainTextResponse:
    raise HTTPException(304)


app = router(route("/teapot", teapot), route("/vary", vary_origin), route("/304", not_modified))


# -- The default answer to an HTTPException: JSON or text by Accept (issue 13 #18)

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ([], TEXT),
        ([b"application/json"], JSON),
        ([b"application/json;q=0"], TEXT),
        ([b"application/json; q=0.0, text/plain"], TEXT),
        ([b"text/plain, application/json;q=0.5"], TEXT),
        ([b"text/plain;q=0.5, application/json"], JSON),
        ([b"*/*"], TEXT),
        ([b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"], TEXT),
        ([b"application/*"], JSON),
        ([b"application/json, */*"], JSON),
        ([b"application/problem+json"], JSON),
        ([b"image/png"], TEXT),
        ([b"application/json;q=banana"], TEXT),
        ([b"application/json;q=1.5"], TEXT),
        ([b"APPLICATION/JSON;Q=1"], JSON),
        ([b"text/plain;q=0.1", b"application/json"], JSON),  # two Accept fields, one list
    ],
)
async def test_the_error_body_follows_accept_with_q_values(
    accept: list[bytes], content_type: bytes
) -> None:
    scope = make_scope(path="/teapot", headers=[(b"accept", value) for value in accept])
    sent = await run_app(app, scope)
    assert sent.status == 418
    assert sent.header(b"content-type") == [content_type]
    expected = b'{"detail":"short and stout"}' if content_type == JSON else b"short and stout"
    assert sent.body == expected


async def test_the_error_answer_varies_on_accept() -> None:
    sent = await run_app(app, make_scope(path="/teapot"))
    assert sent.header(b"vary") == [b"Accept"]


async def test_a_vary_of_the_exception_is_kept_and_accept_added_once() -> None:
    sent = await run_app(app, make_scope(path="/vary"))
    assert sent.header(b"vary") == [b"Origin, Accept"]


async def test_an_error_status_without_a_body_gets_neither_body_nor_vary() -> None:
    sent = await run_app(app, make_scope(path="/304"))
    assert (sent.status, sent.body, sent.header(b"vary")) == (304, b"", [])


async def test_the_router_404_and_405_vary_on_accept_too() -> None:
    missing = await run_app(app, make_scope(path="/missing", headers=[(b"accept", JSON)]))
    assert (missing.status, missing.body) == (404, b'{"detail":"Not Found"}')
    assert missing.header(b"vary") == [b"Accept"]
    wrong = await run_app(app, make_scope("POST", path="/teapot"))
    assert wrong.status == 405
    assert wrong.header(b"vary") == [b"Accept"]


# -- An endpoint that returns something other than a response (issue 13 #16)


async def returns_dict(request: Request) -> Any:
    return {"id": 1}


async def returns_none(request: Request) -> Any:
    pass


def sync_returns_dict(request: Request) -> Any:
    return {"id": 1}


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        (returns_dict, "returned a dict"),
        (returns_none, "returned None"),
        (sync_returns_dict, "returned a dict"),
    ],
)
async def test_an_endpoint_returning_a_non_response_gets_a_clear_type_error(
    endpoint: Any, said: str
) -> None:
    with pytest.raises(TypeError) as info:
        await run_app(router(route("/", endpoint)), make_scope())
    message = str(info.value)
    assert f"{__name__}.{endpoint.__qualname__}" in message
    assert said in message
    assert "return JSONResponse(" in message


async def test_an_http_endpoint_method_returning_a_dict_gets_a_clear_type_error() -> None:
    class Items(HTTPEndpoint):
        async def get(self, request: Request) -> Any:
            return {"items": []}

    with pytest.raises(TypeError) as info:
        await run_app(router(route("/", Items)), make_scope())
    message = str(info.value)
    assert "Items.get" in message
    assert "returned a dict" in message


async def test_a_type_error_from_a_real_response_is_not_rewritten() -> None:
    class Broken(PlainTextResponse):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            raise TypeError("the response's own bug")

    async def endpoint(request: Request) -> PlainTextResponse:
        return Broken("x")

    with pytest.raises(TypeError, match="the response's own bug"):
        await run_app(router(route("/", endpoint)), make_scope())


@given(accept=st.lists(st.binary(max_size=200), max_size=4))
async def test_any_accept_header_gets_a_text_or_json_error_answer(accept: list[bytes]) -> None:
    # Bad input never turns the error answer into a 500 or an exception.
    scope = make_scope(path="/teapot", headers=[(b"accept", value) for value in accept])
    sent = await run_app(app, scope)
    assert sent.status == 418
    assert sent.header(b"content-type") in ([TEXT], [JSON])


# -- The runner sends a plain response itself (issue 16): every guarantee kept


def _codes_run_by(call: Callable[[], Any]) -> set[Any]:
    """The code objects of the Python functions ``call()`` runs."""
    codes: set[Any] = set()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            codes.add(frame.f_code)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return codes


def test_a_handler_s_plain_response_is_sent_without_a_call_of_its_own() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("Hello, world!")

    app = router(route("/", hello))
    sent = SendRecorder()

    def one() -> None:
        coroutine = app(make_scope(), body_receive(), sent)
        with pytest.raises(StopIteration):
            coroutine.send(None)  # nothing waits on this path

    codes = _codes_run_by(one)
    assert hello.__code__ in codes
    assert Response.__call__.__code__ not in codes
    assert sent.status == 200
    assert sent.body == b"Hello, world!"
    assert sent.headers == [
        (b"content-length", b"13"),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]


def _editing_layer(app: ASGIApp) -> ASGIApp:
    """A middleware that changes, in place, the header list it is sent."""

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        async def edit(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-layer", b"1"))
                message["headers"][0] = (b"x-first", b"changed")
            await send(message)

        await app(scope, receive, edit)

    return layer


SHARED = PlainTextResponse("shared", headers={"x-own": "1"})
SHARED_PLAIN = JSONResponse({"shared": True})


@pytest.mark.parametrize("response", [SHARED, SHARED_PLAIN], ids=["with-headers", "plain"])
async def test_a_response_reused_across_requests_is_sent_whole_each_time(
    response: Response,
) -> None:
    async def shared(request: Request) -> Response:
        return response

    before = list(response._raw_headers)
    app = _editing_layer(router(route("/", shared)))
    first = await run_app(app, make_scope())
    second = await run_app(app, make_scope())
    assert first.headers == second.headers
    assert second.headers == [(b"x-first", b"changed"), *before[1:], (b"x-layer", b"1")]
    assert list(response._raw_headers) == before
    assert second.body == response.body
    # A response of the same shape built after them has its headers intact.
    again = await run_app(router(route("/", shared)), make_scope())
    assert again.headers == before


async def test_head_gets_a_handler_response_s_headers_and_no_body() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("Hello, world!")

    sent = await run_app(router(route("/", hello)), make_scope("HEAD"))
    assert sent.status == 200
    assert sent.header(b"content-length") == [b"13"]
    assert sent.body == b""
    assert sent.complete


async def test_a_handler_response_s_background_task_runs_after_the_body() -> None:
    order: list[str] = []

    async def task(name: str) -> None:
        order.append(f"task {name}")

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi", background=BackgroundTask(task, "done"))

    async def send(message: Message) -> None:
        order.append(message["type"])

    await router(route("/", hello))(make_scope(), body_receive(), send)
    assert order == ["http.response.start", "http.response.body", "task done"]


async def test_a_response_class_with_its_own_call_is_still_called() -> None:
    class Twice(PlainTextResponse):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await super().__call__(scope, receive, send)
            await send({"type": "http.response.body", "body": b"!", "more_body": False})

    async def hello(request: Request) -> PlainTextResponse:
        return Twice("hi")

    sent = await run_app(router(route("/", hello)), make_scope())
    assert sent.body == b"hi!"


async def test_a_handler_response_after_a_body_read_is_sent_and_the_form_closed() -> None:
    seen: list[Any] = []

    async def upload(request: Request) -> PlainTextResponse:
        form = await request.form()
        seen.append(form["file"])
        return PlainTextResponse(await form["file"].read())  # type: ignore[union-attr]

    body = (
        b"--b\r\nContent-Disposition: form-data; name=file; filename=a.txt\r\n\r\n"
        b"data\r\n--b--\r\n"
    )
    scope = make_scope("POST", headers=[(b"content-type", b"multipart/form-data; boundary=b")])
    sent = await run_app(router(route("/", upload, methods=["POST"])), scope, body=body)
    assert sent.body == b"data"
    assert seen[0].file.closed
