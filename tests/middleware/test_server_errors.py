"""server_errors: a 500 for whatever escapes, then the exception goes on to the server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from asgikit.middleware.server_errors import server_errors
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.conftest import SendRecorder, make_scope, run_app
from tests.servers.live import serve


class Boom(Exception):
    pass


async def fail(request: Request) -> PlainTextResponse:
    secret_local = "<script>alert('x')</script>"
    raise Boom(f"failed with {secret_local}")


async def fail_after_start(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise Boom("mid-stream")


async def fine(request: Request) -> PlainTextResponse:
    return PlainTextResponse("fine")


routes = router(route("/fail", fail), route("/stream", fail_after_start), route("/", fine))


async def test_an_escaping_exception_becomes_a_plain_500_and_is_reraised() -> None:
    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes)(make_scope(path="/fail"), None, recorder)  # type: ignore[arg-type]
    assert recorder.status == 500
    assert recorder.body == b"Internal Server Error"
    assert recorder.header(b"content-type") == [b"text/plain; charset=utf-8"]
    assert recorder.complete


def test_test_client_sees_the_500_when_not_reraising() -> None:
    with TestClient(server_errors(routes), raise_server_exceptions=False) as client:
        response = client.get("/fail")
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
        assert client.get("/").text == "fine"


async def test_after_the_response_started_the_exception_just_goes_on() -> None:
    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes)(make_scope(path="/stream"), None, recorder)  # type: ignore[arg-type]
    assert recorder.status == 200
    assert recorder.body == b"partial"
    assert not recorder.complete


async def test_debug_page_shows_the_traceback_and_locals_escaped() -> None:
    scope = make_scope(path="/fail", headers=[(b"accept", b"text/html")])
    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes, debug=True)(scope, None, recorder)  # type: ignore[arg-type]
    assert recorder.status == 500
    assert recorder.header(b"content-type") == [b"text/html; charset=utf-8"]
    page = recorder.body.decode()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(" in page
    assert "secret_local" in page
    assert "Boom" in page
    assert "test_server_errors.py" in page
    assert "raise Boom(" in page  # the source line


async def test_debug_without_html_accept_sends_a_text_traceback() -> None:
    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes, debug=True)(make_scope(path="/fail"), None, recorder)  # type: ignore[arg-type]
    assert recorder.header(b"content-type") == [b"text/plain; charset=utf-8"]
    assert b"Traceback (most recent call last)" in recorder.body
    assert b"Boom: failed with" in recorder.body


async def test_debug_page_follows_the_exception_chain_and_survives_bad_reprs() -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    async def chained(scope: Scope, receive: Receive, send: Send) -> None:
        thing = BadRepr()
        huge = "y" * 100_000
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError(f"outer {len(huge)} {thing is not None}") from exc

    scope = make_scope(headers=[(b"accept", b"text/html,*/*")])
    recorder = SendRecorder()
    with pytest.raises(ValueError, match="outer"):
        await server_errors(chained, debug=True)(scope, None, recorder)  # type: ignore[arg-type]
    page = recorder.body.decode()
    assert "KeyError" in page
    assert "caused by" in page
    assert "BadRepr instance" in page
    assert len(page) < 60_000


async def test_handler_makes_the_response() -> None:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": type(exc).__name__, "path": request.url.path}, 500)

    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes, handler=handler)(make_scope(path="/fail"), None, recorder)  # type: ignore[arg-type]
    assert recorder.status == 500
    assert recorder.body == b'{"error":"Boom","path":"/fail"}'


async def test_a_failing_handler_falls_back_to_the_plain_500() -> None:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        raise RuntimeError("handler broke")

    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes, handler=handler)(make_scope(path="/fail"), None, recorder)  # type: ignore[arg-type]
    assert recorder.status == 500
    assert recorder.body == b"Internal Server Error"


async def test_websocket_and_lifespan_pass_through_untouched() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        raise Boom("ws")

    scope: Scope = {"type": "websocket", "path": "/", "headers": []}
    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(inner)(scope, None, recorder)  # type: ignore[arg-type]
    assert seen == [scope]
    assert recorder.messages == []


async def test_no_error_means_no_change() -> None:
    recorder = await run_app(server_errors(routes), make_scope(path="/"))
    assert recorder.status == 200
    assert recorder.body == b"fine"


def test_layer_shape_and_starlette_drop_in() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    async def starlette_fail(request: Any) -> Any:
        raise Boom("in starlette")

    app = Starlette(
        routes=[Route("/", starlette_fail)],
        middleware=[Middleware(server_errors, debug=False)],
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/")
    # Starlette's own outermost error middleware would send its own text;
    # ours, inside it, answered first.
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    layer = server_errors()
    with TestClient(layer(routes), raise_server_exceptions=False) as client:
        assert client.get("/fail").status_code == 500


def test_through_uvicorn_the_client_gets_the_500() -> None:
    with serve(server_errors(routes)) as base_url:
        response = httpx.get(base_url + "/fail")
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(base_url + "/stream")


async def test_a_plain_function_handler_makes_the_response() -> None:
    def handler(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(f"sync saw {type(exc).__name__}", 503)

    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes, handler=handler)(make_scope(path="/fail"), None, recorder)  # type: ignore[arg-type]
    assert (recorder.status, recorder.body) == (503, b"sync saw Boom")


async def test_an_object_with_an_async_call_is_a_handler_too() -> None:
    class Handler:
        async def __call__(self, request: Request, exc: Exception) -> PlainTextResponse:
            return PlainTextResponse("object", 500)

    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes, handler=Handler())(make_scope(path="/fail"), None, recorder)  # type: ignore[arg-type]
    assert recorder.body == b"object"


def test_a_handler_that_is_not_callable_is_refused_when_built() -> None:
    with pytest.raises(TypeError, match="handler"):
        server_errors(routes, handler="oops")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (b"text/html", b"text/html; charset=utf-8"),
        (b"text/html,application/xhtml+xml,*/*;q=0.8", b"text/html; charset=utf-8"),
        (b"text/html;q=0, text/plain", b"text/plain; charset=utf-8"),
        (b"text/plain, text/html;q=0.5", b"text/plain; charset=utf-8"),
        (b"*/*", b"text/plain; charset=utf-8"),
    ],
)
async def test_debug_page_shape_follows_accept_q_values_and_varies_on_accept(
    accept: bytes, media_type: bytes
) -> None:
    scope = make_scope(path="/fail", headers=[(b"accept", accept)])
    recorder = SendRecorder()
    with pytest.raises(Boom):
        await server_errors(routes, debug=True)(scope, None, recorder)  # type: ignore[arg-type]
    assert recorder.header(b"content-type") == [media_type]
    assert recorder.header(b"vary") == [b"Accept"]


async def test_a_failing_handler_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        raise RuntimeError("handler broke")

    with caplog.at_level("ERROR", logger="asgikit.server_errors"), pytest.raises(Boom):
        await run_app(server_errors(routes, handler=handler), make_scope(path="/fail"))
    assert any("handler broke" in (r.exc_text or "") for r in caplog.records), caplog.records


# Parity with Starlette's tests/middleware/test_errors.py


def test_a_failing_background_task_after_the_response_does_not_call_the_handler() -> None:
    # Deliberate difference: Starlette calls the handler (and discards its
    # response) even after the response started; asgikit's handler only
    # makes a response, so it is not called when none can be sent.  The
    # exception goes on to the server, which logs it.
    from asgikit.background import BackgroundTask
    from asgikit.responses import Response

    called: list[Exception] = []

    def handler(request: Request, exc: Exception) -> PlainTextResponse:
        called.append(exc)
        return PlainTextResponse("unused", 500)

    def fails() -> None:
        raise RuntimeError("task broke")

    async def endpoint(request: Request) -> Response:
        return Response(status_code=204, background=BackgroundTask(fails))

    app = server_errors(router(route("/", endpoint)), handler=handler)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 204
    assert called == []
