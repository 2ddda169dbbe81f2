"""Tests for asgikit.middleware.http_middleware: middleware as ``func(request, call_next)``."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from typing import Literal

import anyio
import anyio.lowlevel
import httpx
import pytest

from asgikit.background import BackgroundTask
from asgikit.composition import stack
from asgikit.exceptions import HTTPException
from asgikit.middleware.http_middleware import CallNext, StreamedResponse, http_middleware
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routing import route, router, websocket_route
from asgikit.streaming import StreamingResponse
from asgikit.testing import TestClient
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from asgikit.websockets import WebSocket
from tests.conftest import disconnect_after, make_scope, run_app
from tests.servers.live import serve

Backend = Literal["asyncio", "trio"]
request_tag: contextvars.ContextVar[str] = contextvars.ContextVar("request_tag", default="unset")


class Boom(Exception):
    pass


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def passthrough(request: Request, call_next: CallNext) -> StreamedResponse:
    return await call_next(request)


async def add_header(request: Request, call_next: CallNext) -> StreamedResponse:
    response = await call_next(request)
    response.headers["X-Seen"] = "yes"
    return response


# Shapes


async def test_layer_for_stack_and_wrapping_an_app_give_the_same_behaviour() -> None:
    app = router(route("/", hello))
    for wrapped in (
        stack(http_middleware(add_header), app),
        http_middleware(add_header, app),
        http_middleware(add_header)(app),
        http_middleware(add_header)(app=app),  # type: ignore[call-arg]  # Litestar's way
    ):
        async with TestClient(wrapped) as client:
            response = await client.get("/")
        assert (response.text, response.headers["x-seen"]) == ("hello", "yes")


async def test_used_as_a_decorator_the_function_becomes_a_layer() -> None:
    @http_middleware
    async def tag(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        response.headers["X-Tag"] = "1"
        return response

    async with TestClient(stack(tag, router(route("/", hello)))) as client:
        response = await client.get("/")
    assert response.headers["x-tag"] == "1"


def test_first_argument_must_be_the_function() -> None:
    with pytest.raises(TypeError, match="function first"):
        http_middleware(None)  # type: ignore[call-overload]


# What func can do


async def test_status_headers_and_cookies_of_the_app_response_can_be_changed() -> None:
    async def edit(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        response.status_code = 202
        response.set_cookie("seen", "1")
        return response

    async with TestClient(http_middleware(edit, router(route("/", hello)))) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (202, "hello")
    assert response.cookies["seen"] == "1"


async def test_func_may_answer_without_calling_call_next() -> None:
    reached: list[str] = []

    async def endpoint(request: Request) -> Response:
        reached.append("endpoint")
        return PlainTextResponse("inner")

    async def gate(request: Request, call_next: CallNext) -> ASGIApp:
        if request.headers.get("x-key") != "secret":
            return PlainTextResponse("forbidden", status_code=403)
        return await call_next(request)

    async with TestClient(http_middleware(gate, router(route("/", endpoint)))) as client:
        refused = await client.get("/")
        allowed = await client.get("/", headers={"x-key": "secret"})
    assert (refused.status_code, refused.text) == (403, "forbidden")
    assert (allowed.status_code, allowed.text) == (200, "inner")
    assert reached == ["endpoint"]


async def test_func_may_replace_the_response_after_calling_call_next() -> None:
    async def replace(request: Request, call_next: CallNext) -> ASGIApp:
        inner = await call_next(request)
        return JSONResponse({"inner_status": inner.status_code})

    async with TestClient(http_middleware(replace, router(route("/", hello)))) as client:
        response = await client.get("/")
    assert response.json() == {"inner_status": 200}


async def test_http_exception_raised_by_func_becomes_its_response() -> None:
    async def deny(request: Request, call_next: CallNext) -> ASGIApp:
        raise HTTPException(401, "who are you")

    async with TestClient(http_middleware(deny, router(route("/", hello)))) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (401, "who are you")


async def test_call_next_twice_is_an_error() -> None:
    async def twice(request: Request, call_next: CallNext) -> ASGIApp:
        await call_next(request)
        return await call_next(request)

    async with TestClient(http_middleware(twice, router(route("/", hello)))) as client:
        with pytest.raises(RuntimeError, match="only once"):
            await client.get("/")


async def test_an_app_that_sends_no_response_makes_call_next_raise() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with pytest.raises(RuntimeError, match="without sending a response"):
        await run_app(http_middleware(passthrough, silent))


# Streaming


async def test_streaming_response_is_not_buffered() -> None:
    first_received = anyio.Event()
    produced: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        produced.append("first")
        yield b"first,"
        await first_received.wait()
        produced.append("last")
        yield b"last"

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = http_middleware(add_header, router(route("/", endpoint)))
    # A buffering middleware would wait for "last" forever; fail instead of hanging.
    with anyio.fail_after(10):
        async with TestClient(app) as client, client.stream("GET", "/") as response:
            parts = response.aiter_bytes()
            assert await parts.__anext__() == b"first,"
            assert produced == ["first"]
            first_received.set()
            assert b"".join([chunk async for chunk in parts]) == b"last"
    assert response.headers["x-seen"] == "yes"


async def test_request_body_read_by_func_is_still_readable_by_the_app() -> None:
    async def peek(request: Request, call_next: CallNext) -> StreamedResponse:
        body = await request.body()
        response = await call_next(request)
        response.headers["X-Body-Length"] = str(len(body))
        return response

    async def echo(request: Request) -> Response:
        return PlainTextResponse(await request.body())

    app = http_middleware(peek, router(route("/", echo, methods=["POST"])))
    async with TestClient(app) as client:
        response = await client.post("/", content=b"payload" * 1000)
    assert response.text == "payload" * 1000
    assert response.headers["x-body-length"] == "7000"


async def test_messages_other_than_body_pass_through_untouched() -> None:
    async def pathsend_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [], "trailers": False}
        )
        await send({"type": "http.response.pathsend", "path": "/tmp/x", "extra": 1})

    sent = await run_app(http_middleware(add_header, pathsend_app))
    assert sent.messages[0]["trailers"] is False
    assert sent.header(b"x-seen") == [b"yes"]
    assert sent.messages[1] == {"type": "http.response.pathsend", "path": "/tmp/x", "extra": 1}


# Background tasks


async def test_background_tasks_run_strictly_after_the_last_byte_is_sent() -> None:
    log: list[str] = []

    async def note(entry: str) -> None:
        log.append(entry)

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("done", background=BackgroundTask(note, "app background"))

    async def add_task(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        response.background = BackgroundTask(note, "middleware background")
        return response

    def recording(app: ASGIApp) -> ASGIApp:
        async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
            async def record(message: Message) -> None:
                await send(message)
                for _ in range(3):
                    await anyio.sleep(0)  # a real server yields while it writes
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    log.append("last byte sent")

            await app(scope, receive, record)

        return recorder

    app = stack(recording, http_middleware(add_task), router(route("/", endpoint)))
    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.text == "done"
    assert log == ["last byte sent", "app background", "middleware background"]


# Exceptions


async def test_exception_before_the_response_propagates_unchanged() -> None:
    async def endpoint(request: Request) -> Response:
        raise Boom("before")

    async with TestClient(http_middleware(passthrough, router(route("/", endpoint)))) as client:
        with pytest.raises(Boom, match="before"):
            await client.get("/")


async def test_exception_while_streaming_propagates_unchanged() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"partial"
        raise Boom("midway")

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(chunks())

    async with TestClient(http_middleware(passthrough, router(route("/", endpoint)))) as client:
        with pytest.raises(Boom, match="midway"):
            await client.get("/")


async def test_func_can_catch_the_app_exception_from_call_next() -> None:
    async def endpoint(request: Request) -> Response:
        raise Boom("caught")

    async def guard(request: Request, call_next: CallNext) -> ASGIApp:
        try:
            return await call_next(request)
        except Boom as exc:
            return PlainTextResponse(f"handled {exc}", status_code=500)

    async with TestClient(http_middleware(guard, router(route("/", endpoint)))) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (500, "handled caught")


async def test_exception_in_func_propagates_unchanged() -> None:
    async def broken(request: Request, call_next: CallNext) -> ASGIApp:
        raise Boom("in func")

    with pytest.raises(Boom, match="in func"):
        await run_app(http_middleware(broken, router(route("/", hello))), make_scope())


async def test_app_http_exception_from_call_next_is_not_turned_into_a_response() -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        raise HTTPException(418)

    with pytest.raises(HTTPException) as info:
        await run_app(http_middleware(passthrough, raw))
    assert info.value.status_code == 418


# Context variables


async def test_context_variable_set_before_call_next_is_visible_in_the_endpoint() -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(request_tag.get())

    async def tag(request: Request, call_next: CallNext) -> StreamedResponse:
        request_tag.set(request.headers.get("x-tag", "none"))
        return await call_next(request)

    async with TestClient(http_middleware(tag, router(route("/", endpoint)))) as client:
        first = await client.get("/", headers={"x-tag": "one"})
        second = await client.get("/", headers={"x-tag": "two"})
    assert (first.text, second.text) == ("one", "two")
    assert request_tag.get() == "unset"


# Other scopes


async def test_websocket_and_lifespan_pass_through_without_reaching_func() -> None:
    called: list[str] = []

    async def spy(request: Request, call_next: CallNext) -> StreamedResponse:
        called.append(request.url.path)
        return await call_next(request)

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app = http_middleware(spy, router(websocket_route("/ws", echo)))
    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        await ws.send_text("ping")
        assert await ws.receive_text() == "ping"
    assert called == []


def test_streams_through_a_real_uvicorn_server() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"chunk%d;" % i

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = http_middleware(add_header, router(route("/", endpoint)))
    with serve(app) as base_url:
        response = httpx.get(base_url + "/")
    assert response.text == "chunk0;chunk1;chunk2;"
    assert response.headers["x-seen"] == "yes"


def test_starlettes_streaming_response_through_a_real_uvicorn_server() -> None:
    # uvicorn speaks ASGI 2.3, so Starlette's StreamingResponse sends its
    # start from a task of its own: call_next still returns it.
    from starlette.responses import StreamingResponse as StarletteStreamingResponse

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"chunk%d;" % i

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # no lifespan: returning says so
            response = StarletteStreamingResponse(chunks(), media_type="text/plain")
            await response(scope, receive, send)

    with serve(http_middleware(add_header, app)) as base_url:
        response = httpx.get(base_url + "/", timeout=10)
    assert response.text == "chunk0;chunk1;chunk2;"
    assert response.headers["x-seen"] == "yes"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_client_that_leaves_mid_stream_ends_the_app_cleanly(backend: Backend) -> None:
    stopped: list[str] = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"tick;"
                await anyio.sleep(0)
        finally:
            stopped.append("stopped")

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(endless(), media_type="text/plain")

    app = http_middleware(add_header, router(route("/", endpoint)))
    with TestClient(app, backend=backend) as client:
        with client.stream("GET", "/") as response:
            assert next(response.iter_bytes()).startswith(b"tick;")
        # Still usable afterwards: the first request's task group is done.
        assert client.get("/missing").status_code == 404
    assert stopped == ["stopped"]


# A client that leaves mid-body (issue 12 #12)


async def test_a_client_that_leaves_mid_body_while_func_reads_it_ends_quietly() -> None:
    async def read_body(request: Request, call_next: CallNext) -> ASGIApp:
        await request.body()
        return await call_next(request)

    app = http_middleware(read_body, router(route("/", hello, methods=["POST"])))
    sent = await run_app(app, make_scope("POST"), disconnect_after(b"partial"))
    assert sent.messages == []


async def test_a_client_that_leaves_mid_body_while_the_app_reads_it_ends_quietly() -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive).body()  # lets ClientDisconnect out

    sent = await run_app(
        http_middleware(passthrough, raw), make_scope("POST"), disconnect_after(b"x")
    )
    assert sent.messages == []


# Exception handlers see errors from func where func raised them (issue 13 #3)


async def test_an_error_raised_by_func_is_answered_by_exception_handlers_inside_outer_layers() -> (
    None
):
    from asgikit.middleware.exception_handlers import exception_handlers
    from asgikit.middleware.security_headers import security_headers

    async def refuse(request: Request, call_next: CallNext) -> ASGIApp:
        if request.url.path == "/boom":
            raise Boom("from func")
        raise HTTPException(418)

    async def on_boom(request: Request, exc: Boom) -> Response:
        return PlainTextResponse(f"handled {exc}", 400)

    async def on_418(request: Request, exc: HTTPException) -> Response:
        return PlainTextResponse("teapot", 418)

    inner = security_headers(http_middleware(refuse, router(route("/", hello))))
    app = exception_handlers(inner, {Boom: on_boom, 418: on_418})
    async with TestClient(app) as client:
        boom = await client.get("/boom")
        teapot = await client.get("/")
    assert (boom.status_code, boom.text) == (400, "handled from func")
    assert (teapot.status_code, teapot.text) == (418, "teapot")
    assert "x-content-type-options" in boom.headers
    assert "x-content-type-options" in teapot.headers


# Parity with Starlette's tests/middleware/test_base.py (function middleware;
# BaseHTTPMiddleware's class internals have no counterpart)


async def test_request_state_set_by_one_function_is_seen_by_the_next_and_the_app() -> None:
    async def set_foo(request: Request, call_next: CallNext) -> StreamedResponse:
        request.state.foo = "foo"
        return await call_next(request)

    async def set_bar_read_foo(request: Request, call_next: CallNext) -> StreamedResponse:
        request.state.bar = "bar"
        response = await call_next(request)
        response.headers["X-State-Foo"] = request.state.foo
        return response

    async def read_bar(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        response.headers["X-State-Bar"] = request.state.bar
        return response

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{request.state.foo} {request.state.bar}")

    app = stack(
        http_middleware(set_foo),
        http_middleware(set_bar_read_foo),
        http_middleware(read_bar),
        router(route("/", endpoint)),
    )
    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.text == "foo bar"
    assert (response.headers["x-state-foo"], response.headers["x-state-bar"]) == ("foo", "bar")


async def test_background_tasks_run_even_when_the_client_never_reads_again() -> None:
    ran: list[str] = []

    async def task() -> None:
        await anyio.sleep(0)
        ran.append("task")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("x", background=BackgroundTask(task))

    async def receive() -> Message:
        raise AssertionError("receive is not needed for a GET")

    sent = await run_app(
        http_middleware(passthrough, router(route("/", endpoint))), receive=receive
    )
    assert sent.complete
    assert ran == ["task"]


async def test_a_failing_background_task_comes_out_of_the_middleware() -> None:
    async def task() -> None:
        raise ValueError("TEST")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("x", background=BackgroundTask(task))

    async with TestClient(http_middleware(passthrough, router(route("/", endpoint)))) as client:
        with pytest.raises(ValueError, match="TEST"):
            await client.get("/")


@pytest.mark.parametrize("shape", ["plain", "context", "cause"])
async def test_an_app_exception_keeps_its_cause_and_context(shape: str) -> None:
    async def endpoint(request: Request) -> Response:
        if shape == "plain":
            raise Boom("plain")
        try:
            raise KeyError("inner")
        except KeyError as inner:
            if shape == "cause":
                raise Boom("outer") from inner
            raise Boom("outer")  # noqa: B904 - the implicit context is the point

    async with TestClient(http_middleware(passthrough, router(route("/", endpoint)))) as client:
        with pytest.raises(Boom) as info:
            await client.get("/")
    error = info.value
    if shape == "plain":
        assert (error.__cause__, error.__context__) == (None, None)
    elif shape == "cause":
        assert isinstance(error.__cause__, KeyError)
    else:
        assert isinstance(error.__context__, KeyError)
        assert error.__cause__ is None


async def test_a_discarded_app_response_stops_the_app() -> None:
    # Starlette sends the app http.disconnect; asgikit stops the app (its
    # send raises, in a cancelled scope): either way the app stops and the
    # client gets the function's own response.
    stopped: list[str] = []

    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            # The app may wait in its start's send (inline) or its first
            # body's (in a task of its own) while func holds the response.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while True:
                await send({"type": "http.response.body", "body": b"chunk ", "more_body": True})
        finally:
            if scope["type"] == "http":  # the router offers the lifespan to it too
                stopped.append("stopped")

    async def discard(request: Request, call_next: CallNext) -> ASGIApp:
        await call_next(request)
        return PlainTextResponse("Custom")

    async with TestClient(http_middleware(discard, router(route("/", endless)))) as client:
        with anyio.fail_after(10):
            response = await client.get("/")
    assert response.text == "Custom"
    assert stopped == ["stopped"]


@pytest.mark.parametrize("app_reads", ["body", "stream"])
async def test_the_app_reads_the_body_after_func_read_it(app_reads: str) -> None:
    async def endpoint(request: Request) -> Response:
        if app_reads == "body":
            return PlainTextResponse(await request.body())
        return PlainTextResponse(b"".join([chunk async for chunk in request.stream()]))

    async def consume(request: Request, call_next: CallNext) -> StreamedResponse:
        assert await request.body() == b"a"
        return await call_next(request)

    app = http_middleware(consume, router(route("/", endpoint, methods=["POST"])))
    async with TestClient(app) as client:
        with anyio.fail_after(10):
            response = await client.post("/", content=b"a")
    assert response.text == "a"


async def test_a_body_func_streamed_away_is_a_clear_error_for_the_app_never_a_wait() -> None:
    # Deliberate difference: Starlette gives the app an empty body; a body
    # streamed by func was never held, so the app's read fails at once and
    # says how to keep it.
    seen: list[str] = []

    async def endpoint(request: Request) -> Response:
        try:
            await request.body()
        except RuntimeError as exc:
            seen.append(str(exc))
            return PlainTextResponse("gone", status_code=500)
        return PlainTextResponse("read")

    async def consume(request: Request, call_next: CallNext) -> StreamedResponse:
        assert b"".join([chunk async for chunk in request.stream()]) == b"a"
        return await call_next(request)

    app = http_middleware(consume, router(route("/", endpoint, methods=["POST"])))
    with anyio.fail_after(10):
        sent = await run_app(app, make_scope("POST"), body=b"a")
    assert sent.body == b"gone"
    assert "consumed by stream()" in seen[0]
    assert "body()" in seen[0]


async def test_early_hints_before_the_start_pass_through() -> None:
    async def hinting(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload"]})
        await PlainTextResponse("page")(scope, receive, send)

    sent = await run_app(http_middleware(add_header, hinting))
    assert sent.messages[0] == {
        "type": "http.response.early_hint",
        "links": [b"</s.css>; rel=preload"],
    }
    assert sent.header(b"x-seen") == [b"yes"]
    assert sent.body == b"page"


async def test_func_reads_the_body_before_and_after_call_next() -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(await request.body())

    async def twice(request: Request, call_next: CallNext) -> StreamedResponse:
        assert await request.body() == b"a"
        response = await call_next(request)
        assert await request.body() == b"a"
        return response

    app = http_middleware(twice, router(route("/", endpoint, methods=["POST"])))
    sent = await run_app(app, make_scope("POST"), body=b"a")
    assert sent.body == b"a"


async def test_func_reads_the_body_the_app_consumed() -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(await request.body())

    async def late(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        assert await request.body() == b"a"  # every Request over the scope shares one body
        return response

    app = http_middleware(late, router(route("/", endpoint, methods=["POST"])))
    with anyio.fail_after(10):
        await run_app(app, make_scope("POST"), body=b"a")


async def test_a_disconnect_the_app_receives_is_seen_by_func() -> None:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.disconnect"
        await Response()(scope, receive, send)

    async def check(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        assert await request.is_disconnected()
        return response

    sent = await run_app(http_middleware(check, endpoint), make_scope("POST"), disconnect_after())
    assert sent.status == 200


async def test_a_context_variable_the_endpoint_sets_is_not_seen_by_func() -> None:
    # Documented limit, as in Starlette: the app runs in its own task.
    async def endpoint(request: Request) -> Response:
        request_tag.set("set by the endpoint")
        return PlainTextResponse("x")

    async def read_after(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        response.headers["X-Tag"] = request_tag.get()
        return response

    async with TestClient(http_middleware(read_after, router(route("/", endpoint)))) as client:
        response = await client.get("/")
    assert response.headers["x-tag"] == "unset"


# Cost (issue 16): the body is not handed from task to task chunk by chunk


async def test_body_chunks_reach_the_client_without_a_task_switch_each() -> None:
    # A ticker that runs once per pass of the scheduler counts the passes the
    # request needs: an app sending many chunks must not need one (or more)
    # per chunk, only the few hand-offs of the start and the end.
    chunks = 200
    passes = 0

    async def many_chunks(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(chunks):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def ticker() -> None:
        nonlocal passes
        while True:
            passes += 1
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(ticker)
            await anyio.lowlevel.checkpoint()
            before = passes
            sent = await run_app(http_middleware(add_header, many_chunks))
            during = passes - before
            task_group.cancel_scope.cancel()
    assert sent.body == b"x" * chunks
    assert during < 20, f"{during} scheduler passes for {chunks} chunks"


async def test_cancelling_the_request_while_the_app_waits_for_func_stops_the_app() -> None:
    # The app waits (inside its start's send, or its first body's in a task
    # of its own) for func's response to send the start; a cancel scope
    # around the request must still reach it.
    stopped: list[str] = []
    func_waits = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"never"})
        finally:
            stopped.append("stopped")

    async def slow(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        func_waits.set()
        await anyio.sleep_forever()
        return response

    with anyio.fail_after(10):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(run_app, http_middleware(slow, app))
            await func_waits.wait()
            task_group.cancel_scope.cancel()
    assert stopped == ["stopped"]


class Fatal(BaseException):
    pass


@pytest.mark.parametrize("when", ["before the start", "while streaming"])
async def test_a_base_exception_the_app_raises_comes_out_of_the_middleware(when: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if when == "while streaming":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise Fatal

    with anyio.fail_after(10):
        try:
            await run_app(http_middleware(add_header, app))
        except BaseException as raised:  # bare, or in an exception group, by backend
            found: list[BaseException] = [raised]
        else:
            pytest.fail("nothing was raised")
    while not isinstance(found[0], Fatal):  # into the group (an IndexError if absent)
        found = [*found[1:], *getattr(found[0], "exceptions", ())]


async def test_a_cancelled_request_returns_only_after_the_app_cleaned_up() -> None:
    # The app's cleanup takes a few scheduler passes (shielded); the request's
    # task, cancelled meanwhile (again and again by its cancel scope), must
    # still wait for it: no app task outlives the request.
    steps: list[str] = []
    app_waits = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            app_waits.set()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()
            steps.append("app cleaned up")

    async def request() -> None:
        try:
            await run_app(http_middleware(add_header, app))
        finally:
            steps.append("request returned")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(request)
            await app_waits.wait()
            task_group.cancel_scope.cancel()
    assert steps == ["app cleaned up", "request returned"]


async def test_body_sends_from_two_tasks_of_the_app_both_reach_the_client() -> None:
    # Two of the app's tasks wait for func's response at once: both go on.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async with anyio.create_task_group() as task_group:
            for part in (b"a", b"b"):
                task_group.start_soon(
                    send, {"type": "http.response.body", "body": part, "more_body": True}
                )
        await send({"type": "http.response.body", "body": b""})

    with anyio.fail_after(10):
        sent = await run_app(http_middleware(add_header, app))
    assert sorted(sent.body) == sorted(b"ab")


async def test_a_failed_send_comes_out_of_the_middleware_even_if_the_app_swallows_it() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.body", "body": b"lost", "more_body": True})
        except OSError as exc:
            seen.append(str(exc))

    async def failing_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    with anyio.fail_after(10), pytest.raises(OSError, match="connection reset"):
        await http_middleware(add_header, app)(make_scope(), receive, failing_send)
    assert seen == ["connection reset"]
