"""http_middleware's inline path (issue 16): the app run in func's own task.

When ``func`` holds no cancel scope of its own around ``call_next``, the app
runs in the caller's task, stepped by hand, and waits at its response start
while ``func`` holds the response.  These tests attack what that must not
break: cancel scopes and task groups on both sides, cancellation of the
whole request at each point, an app that fails after sending, a response
``func`` drops, context variables.  Every test runs on asyncio and trio.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asgikit.background import BackgroundTask
from asgikit.middleware.http_middleware import CallNext, StreamedResponse, http_middleware
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.streaming import StreamingResponse
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import make_scope, run_app

tag: contextvars.ContextVar[str] = contextvars.ContextVar("inline_tag", default="unset")


class Boom(Exception):
    pass


async def add_header(request: Request, call_next: CallNext) -> StreamedResponse:
    response = await call_next(request)
    response.headers["X-Seen"] = "yes"
    return response


@asynccontextmanager
async def no_scope() -> AsyncIterator[None]:
    yield


@asynccontextmanager
async def a_task_group() -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.lowlevel.checkpoint)
        yield


@asynccontextmanager
async def fail_after() -> AsyncIterator[None]:
    with anyio.fail_after(60):
        yield


@asynccontextmanager
async def move_on_after() -> AsyncIterator[None]:
    with anyio.move_on_after(60):
        yield


@asynccontextmanager
async def shielded() -> AsyncIterator[None]:
    with anyio.CancelScope(shield=True):
        yield


SCOPES: dict[str, Callable[[], AbstractAsyncContextManager[None]]] = {
    "no scope": no_scope,
    "task group": a_task_group,
    "fail_after": fail_after,
    "move_on_after": move_on_after,
    "shield": shielded,
}


def func_in(scope_name: str) -> Callable[[Request, CallNext], Any]:
    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        async with SCOPES[scope_name]():
            response = await call_next(request)
            response.headers["X-Seen"] = "yes"
        await anyio.lowlevel.checkpoint()
        return response

    return func


def app_in(scope_name: str, *, streaming: bool = False) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async with SCOPES[scope_name]():
            await anyio.lowlevel.checkpoint()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            if streaming:
                await send({"type": "http.response.body", "body": b"a", "more_body": True})
                await anyio.lowlevel.checkpoint()
            await send({"type": "http.response.body", "body": b"b"})
            await anyio.lowlevel.checkpoint()

    return app


# Which task runs the app: the proof that the inline path is taken


async def test_the_app_runs_in_the_task_of_func_when_func_holds_no_cancel_scope() -> None:
    tasks: dict[str, int] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        tasks["app"] = anyio.get_current_task().id
        await PlainTextResponse("x")(scope, receive, send)

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        tasks["func"] = anyio.get_current_task().id
        return await call_next(request)

    await run_app(http_middleware(func, app))
    assert tasks["app"] == tasks["func"]


@pytest.mark.parametrize("scope_name", ["task group", "fail_after", "move_on_after", "shield"])
async def test_a_func_that_holds_a_cancel_scope_around_call_next_runs_the_app_in_a_task(
    scope_name: str,
) -> None:
    # func may leave its scope while the app holds one of its own: the two
    # cannot share a task, so the app gets a task of its own.
    tasks: dict[str, int] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        tasks["app"] = anyio.get_current_task().id
        await PlainTextResponse("x")(scope, receive, send)

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        tasks["func"] = anyio.get_current_task().id
        async with SCOPES[scope_name]():
            return await call_next(request)

    sent = await run_app(http_middleware(func, app))
    assert sent.body == b"x"
    assert tasks["app"] != tasks["func"]


# Cancel scopes on both sides, in every combination


@pytest.mark.parametrize("streaming", [False, True], ids=["one body", "streamed"])
@pytest.mark.parametrize("app_scope", sorted(SCOPES))
@pytest.mark.parametrize("func_scope", sorted(SCOPES))
async def test_cancel_scopes_of_func_and_of_the_app_never_interleave(
    func_scope: str, app_scope: str, streaming: bool
) -> None:
    app = http_middleware(func_in(func_scope), app_in(app_scope, streaming=streaming))
    with anyio.fail_after(10):
        sent = await run_app(app)
    assert sent.header(b"x-seen") == [b"yes"]
    assert sent.body == (b"ab" if streaming else b"b")
    assert sent.complete


async def test_a_streaming_response_inside_funcs_fail_after_streams_and_runs_its_background() -> (
    None
):
    log: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"a", b"b", b"c"):
            yield part

    async def note() -> None:
        log.append("background")

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        with anyio.fail_after(60):
            return await call_next(request)

    app = http_middleware(func, StreamingResponse(chunks(), background=BackgroundTask(note)))
    with anyio.fail_after(10):
        sent = await run_app(app)
    assert (sent.body, log) == (b"abc", ["background"])


async def test_a_cancel_scope_the_app_holds_open_at_its_start_may_cancel_while_func_waits() -> (
    None
):
    # The app's own scope is cancelled while func holds the response: the
    # cancellation belongs to the app's scope, which catches it; nothing
    # leaks out of the middleware, nothing hangs.
    caught: list[bool] = []
    app_scope: list[anyio.CancelScope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        with anyio.CancelScope() as cancel_scope:
            app_scope.append(cancel_scope)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x"})
        caught.append(cancel_scope.cancelled_caught)

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        app_scope[0].cancel()
        await anyio.lowlevel.checkpoint()
        return response

    with anyio.fail_after(10):
        await run_app(http_middleware(func, app))
    assert caught == [True]


# Cancellation of the whole request, at each point


@pytest.mark.parametrize("app_scope", ["no scope", "task group", "move_on_after"])
@pytest.mark.parametrize("where", ["app before start", "func holds the response", "streaming"])
async def test_cancelling_the_request_stops_the_app_and_its_cleanup_runs_first(
    where: str, app_scope: str
) -> None:
    steps: list[str] = []
    reached = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with SCOPES[app_scope]():
                if where == "app before start":
                    reached.set()
                    await anyio.sleep_forever()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"a", "more_body": True})
                reached.set()
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()
            steps.append("app cleaned up")

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        if where == "func holds the response":
            reached.set()
            await anyio.sleep_forever()
        return response

    async def request() -> None:
        try:
            await run_app(http_middleware(func, app))
        finally:
            steps.append("request returned")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(request)
            await reached.wait()
            group.cancel_scope.cancel()
    assert steps == ["app cleaned up", "request returned"]


async def test_a_cancel_scope_around_the_whole_request_catches_its_cancellation() -> None:
    stopped: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await anyio.sleep_forever()
        finally:
            stopped.append("app")

    with anyio.fail_after(10):
        with anyio.move_on_after(0) as outer:
            await run_app(http_middleware(add_header, app))
    assert outer.cancelled_caught
    assert stopped == ["app"]


# Errors


@pytest.mark.parametrize("app_scope", ["no scope", "task group"])
async def test_an_app_that_raises_after_sending_its_response_comes_out_unchanged(
    app_scope: str,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("sent")(scope, receive, send)
        if app_scope == "task group":
            try:
                async with anyio.create_task_group():
                    raise Boom("after")
            except Exception as error:  # an exception group under trio
                raise getattr(error, "exceptions", (error,))[0] from None
        raise Boom("after")

    with anyio.fail_after(10), pytest.raises(Boom, match="after"):
        await run_app(http_middleware(add_header, app))


async def test_an_error_func_raises_while_the_app_waits_at_its_start_stops_the_app() -> None:
    stopped: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group():
            try:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"x"})
            finally:
                stopped.append("stopped")

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        await call_next(request)
        raise Boom("func")

    with anyio.fail_after(10), pytest.raises(Boom, match="func"):
        await run_app(http_middleware(func, app))
    assert stopped == ["stopped"]


# Responses func does not send on


@pytest.mark.parametrize("app_scope", ["no scope", "task group"])
async def test_a_response_func_drops_is_never_sent_and_the_app_stops_without_its_background(
    app_scope: str,
) -> None:
    log: list[str] = []

    async def note() -> None:
        log.append("app background")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async with SCOPES[app_scope]():
            try:
                response = PlainTextResponse("inner", background=BackgroundTask(note))
                await response(scope, receive, send)
            finally:
                log.append("app stopped")

    async def func(request: Request, call_next: CallNext) -> ASGIApp:
        await call_next(request)
        return PlainTextResponse("outer")

    with anyio.fail_after(10):
        sent = await run_app(http_middleware(func, app))
    assert sent.body == b"outer"
    assert log == ["app stopped"]


async def test_a_dropped_streaming_response_closes_its_iterator() -> None:
    closed: list[str] = []

    class Endless:
        def __aiter__(self) -> Endless:
            return self

        async def __anext__(self) -> bytes:
            return b"tick"

        async def aclose(self) -> None:
            closed.append("closed")

    async def func(request: Request, call_next: CallNext) -> ASGIApp:
        await call_next(request)
        return PlainTextResponse("outer")

    with anyio.fail_after(10):
        sent = await run_app(http_middleware(func, StreamingResponse(Endless())))
    assert sent.body == b"outer"
    assert closed == ["closed"]


# Sends from the app's other tasks


async def test_a_body_another_task_of_the_app_sends_while_func_holds_the_response_waits() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(send, {"type": "http.response.body", "body": b"a", "more_body": True})
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"b"})

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next(request)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()  # the app's other task runs meanwhile
        response.headers["X-Seen"] = "yes"
        return response

    with anyio.fail_after(10):
        sent = await run_app(http_middleware(func, app))
    assert sent.messages[0]["type"] == "http.response.start"
    assert sent.header(b"x-seen") == [b"yes"]
    assert sent.body == b"ab"


def _asgi(version: str) -> Scope:
    scope = make_scope()
    scope["asgi"] = {"version": "3.0", "spec_version": version}
    return scope


def _sending_from_a_task(background: list[str]) -> ASGIApp:
    """An app whose response (start included) is sent by another of its tasks."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = StreamingResponse(iter([b"a", b"b"]), media_type="text/plain")
        response.background = BackgroundTask(background.append, "ran")
        async with anyio.create_task_group() as group:
            group.start_soon(response, scope, receive, send)

    return app


async def test_a_start_sent_from_another_task_of_the_app_reaches_func(
    anyio_backend: str,
) -> None:
    # Starlette's StreamingResponse and FileResponse send from a task of their
    # own under servers older than ASGI 2.4 (uvicorn says 2.3).
    background: list[str] = []
    app = http_middleware(add_header, _sending_from_a_task(background))
    for version in ("2.3", "2.4") if anyio_backend == "asyncio" else ("2.3",):
        background.clear()
        with anyio.fail_after(10):
            sent = await run_app(app, _asgi(version))
        assert (sent.status, sent.body) == (200, b"ab")
        assert dict(sent.headers)[b"x-seen"] == b"yes"
        assert background == ["ran"]


async def test_on_trio_a_start_from_another_task_under_asgi_2_4_is_a_clear_error(
    anyio_backend: str,
) -> None:
    # trio's waits cannot be stood in for: a server that says 2.4 promises
    # apps need no task to send (and a cancel scope around call_next gives
    # the app a task of its own).
    if anyio_backend != "trio":
        pytest.skip("asyncio wakes the caller instead (the test above)")
    app = _sending_from_a_task([])
    with anyio.fail_after(10), pytest.raises(BaseException) as info:
        await run_app(http_middleware(add_header, app), _asgi("2.4"))
    found: list[BaseException] = [info.value]
    while not isinstance(found[0], RuntimeError):  # into the group (an IndexError if absent)
        found = [*found[1:], *getattr(found[0], "exceptions", ())]
    assert "another task" in str(found[0])

    async def in_a_scope(request: Request, call_next: CallNext) -> StreamedResponse:
        with anyio.CancelScope():
            return await call_next(request)

    with anyio.fail_after(10):
        sent = await run_app(http_middleware(in_a_scope, app), _asgi("2.4"))
    assert sent.body == b"ab"


async def test_a_start_from_another_task_then_func_drops_the_response() -> None:
    # func answers with a response of its own: the app's tasks are stopped,
    # nothing of the app's answer is sent, nothing hangs.
    async def func(request: Request, call_next: CallNext) -> ASGIApp:
        await call_next(request)
        return PlainTextResponse("func's own", status_code=503)

    background: list[str] = []
    with anyio.fail_after(10):
        sent = await run_app(http_middleware(func, _sending_from_a_task(background)), _asgi("2.3"))
    assert (sent.status, sent.body) == (503, b"func's own")
    assert background == []


async def test_a_request_cancelled_while_the_apps_task_holds_its_start_stops_the_app() -> None:
    stopped: list[str] = []
    entered = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def sender() -> None:
            try:
                entered.set()
                await anyio.sleep_forever()
            finally:
                stopped.append("sender")

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(sender)
        finally:
            stopped.append("app")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as outer:
            outer.start_soon(run_app, http_middleware(add_header, app), _asgi("2.3"))
            await entered.wait()
            outer.cancel_scope.cancel()
    assert sorted(stopped) == ["app", "sender"]


async def test_a_response_sent_inside_a_scope_func_opened_after_call_next_is_a_clear_error() -> (
    None
):
    # The app holds a task group at its start; the app func returns opens a
    # cancel scope and sends the app's response inside it: the app's scope
    # would close inside that one.
    def wrapping(inner: ASGIApp) -> ASGIApp:
        async def outer(scope: Scope, receive: Receive, send: Send) -> None:
            with anyio.CancelScope():
                await inner(scope, receive, send)

        return outer

    async def func(request: Request, call_next: CallNext) -> ASGIApp:
        return wrapping(await call_next(request))

    with anyio.fail_after(10), pytest.raises(RuntimeError, match="cancel scope"):
        await run_app(http_middleware(func, app_in("task group")))
    # An app that holds no scope at its start has nothing to close there.
    with anyio.fail_after(10):
        sent = await run_app(http_middleware(func, app_in("no scope")))
    assert sent.body == b"b"


# Context variables


async def test_context_variables_func_sets_reach_the_app_and_its_tasks_not_the_reverse() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(tag.get())

        async def child() -> None:
            seen.append(tag.get())

        async with anyio.create_task_group() as group:
            group.start_soon(child)
        tag.set("set by the app")
        await PlainTextResponse("x")(scope, receive, send)
        seen.append(tag.get())

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        tag.set("set by func")
        response = await call_next(request)
        seen.append(tag.get())
        tag.set("set by func after call_next")
        return response

    await run_app(http_middleware(func, app))
    assert seen == ["set by func", "set by func", "set by func", "set by the app"]


# Nested layers


async def test_nested_layers_each_add_their_header_and_the_background_runs_last() -> None:
    log: list[str] = []

    async def note() -> None:
        log.append("background")

    def layer(name: str) -> Callable[[Request, CallNext], Any]:
        async def func(request: Request, call_next: CallNext) -> StreamedResponse:
            response = await call_next(request)
            response.headers[f"X-{name}"] = name
            return response

        return func

    async def record_send(message: Message) -> None:
        log.append(message["type"])

    app: ASGIApp = PlainTextResponse("x", background=BackgroundTask(note))
    for name in ("a", "b", "c"):
        app = http_middleware(layer(name), app)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    with anyio.fail_after(10):
        await app(make_scope(), receive, record_send)
    assert log == ["http.response.start", "http.response.body", "background"]
    sent = await run_app(app)
    assert [sent.header(n) for n in (b"x-a", b"x-b", b"x-c")] == [[b"a"], [b"b"], [b"c"]]


async def test_a_response_whose_send_of_the_start_fails_stops_the_app() -> None:
    stopped: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await PlainTextResponse("x")(scope, receive, send)
        finally:
            stopped.append("stopped")

    async def failing_send(message: Message) -> None:
        raise OSError("connection reset")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    with anyio.fail_after(10), pytest.raises(OSError, match="connection reset"):
        await http_middleware(add_header, app)(make_scope(), receive, failing_send)
    assert stopped == ["stopped"]


async def test_the_request_body_is_readable_by_func_and_by_the_app_inline() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(await Request(scope, receive).body())(scope, receive, send)

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        body = await request.body()
        response = await call_next(request)
        response.headers["X-Length"] = str(len(body))
        return response

    sent = await run_app(http_middleware(func, app), make_scope("POST"), body=[b"ab", b"cd"])
    assert (sent.body, sent.header(b"x-length")) == (b"abcd", [b"4"])


async def test_an_asyncio_timeout_func_holds_around_call_next_leaves_the_app_its_scopes(
    anyio_backend: str,
) -> None:
    # asyncio's own timeout is no anyio scope: the app runs inline, and its
    # task group (open at its start) and the timeout never interleave.
    if anyio_backend != "asyncio" or not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout: asyncio's own, Python 3.11+")

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        async with asyncio.timeout(60):  # type: ignore[attr-defined,unused-ignore]  # 3.11+
            response = await call_next(request)
        response.headers["X-Seen"] = "yes"
        return response

    with anyio.fail_after(10):
        sent = await run_app(http_middleware(func, StreamingResponse(chunks())))
    assert (sent.body, sent.header(b"x-seen")) == (b"ab", [b"yes"])
