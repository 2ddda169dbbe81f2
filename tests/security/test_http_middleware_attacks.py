"""Attacks on ``http_middleware``'s inline path and on the plain-function send layers.

The app runs in ``func``'s own task, stepped by hand (``_inline_app``); the
header layers hand back the server's awaitable from a plain function
(``asgikit._send``).  These tests try what a hurried optimisation tends to
break: memory a request leaves behind, and what the layers do with the
messages and awaitables they pass on.  Every test runs on asyncio and trio.
"""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
import pytest

from asgikit.middleware.compress import compress
from asgikit.middleware.cors import cors
from asgikit.middleware.http_middleware import CallNext, StreamedResponse, http_middleware
from asgikit.middleware.rate_limit import rate_limit
from asgikit.middleware.request_id import request_id
from asgikit.middleware.security_headers import security_headers
from asgikit.middleware.timing import timing
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.streaming import StreamingResponse
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import SendRecorder, body_receive, make_scope, run_app


async def passthrough(request: Request, call_next: CallNext) -> StreamedResponse:
    return await call_next(request)


async def with_header(request: Request, call_next: CallNext) -> StreamedResponse:
    response = await call_next(request)
    response.headers["X-Seen"] = "yes"
    return response


@pytest.fixture
def collector_off() -> Iterator[list[object]]:
    """The cycle collector off, and what it finds afterwards saved (``DEBUG_SAVEALL``)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


def asgikit_objects(garbage: list[object]) -> list[str]:
    """asgikit's objects and coroutines among ``garbage`` (the test runner leaves its own)."""
    found: list[str] = []
    for thing in garbage:
        if type(thing).__module__.startswith("asgikit"):
            found.append(type(thing).__qualname__)
        elif isinstance(thing, types.CoroutineType) and "asgikit" in thing.cr_code.co_filename:
            found.append(thing.cr_code.co_qualname)
        elif isinstance(thing, types.FrameType) and "asgikit" in thing.f_code.co_filename:
            found.append(f"frame of {thing.f_code.co_qualname}")
    return found


@pytest.mark.parametrize("func", [passthrough, with_header])
async def test_a_request_through_the_inline_path_leaves_no_reference_cycle(
    func: object, collector_off: list[object]
) -> None:
    # A cycle (the caller naming itself as its runner) kept each request's
    # coroutine, context and start message until the next collection.
    app = http_middleware(func, PlainTextResponse("hello"))  # type: ignore[arg-type]
    with anyio.fail_after(10):
        sent = await run_app(app)
    assert sent.status == 200
    gc.collect()
    assert asgikit_objects(collector_off) == []


async def replaces_the_response(request: Request, call_next: CallNext) -> PlainTextResponse:
    await call_next(request)
    return PlainTextResponse("instead", status_code=403)


@pytest.mark.parametrize("app_kind", ["response", "raw app"])
async def test_a_response_func_drops_leaves_no_reference_cycle(
    app_kind: str, collector_off: list[object]
) -> None:
    # The Dropped the app's send raises, kept by the driver's frame, held
    # the traceback that holds that frame: a cycle every such request.
    async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"never sent"})

    inner = PlainTextResponse("dropped") if app_kind == "response" else raw_app
    with anyio.fail_after(10):
        sent = await run_app(http_middleware(replaces_the_response, inner))
    assert sent.status == 403
    gc.collect()
    assert asgikit_objects(collector_off) == []


class Boom(Exception):
    pass


async def fails_after_call_next(request: Request, call_next: CallNext) -> StreamedResponse:
    await call_next(request)
    raise Boom


async def fails_after_its_start(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise Boom


async def in_a_cancel_scope(request: Request, call_next: CallNext) -> StreamedResponse:
    with anyio.CancelScope():  # the app runs in a task of its own
        return await call_next(request)


async def fails_before_its_start(scope: Scope, receive: Receive, send: Send) -> None:
    raise Boom


@pytest.mark.parametrize(
    "where",
    ["in func", "in the app after its start", "in the app's task", "in the app's task at once"],
)
async def test_an_error_through_the_middleware_leaves_no_reference_cycle(
    where: str, collector_off: list[object]
) -> None:
    # The error kept in a local of the frames its traceback holds: a cycle
    # (those frames, the request and the app's coroutine) every failed request.
    if where == "in func":
        app = http_middleware(fails_after_call_next, PlainTextResponse("hello"))
    elif where == "in the app after its start":
        app = http_middleware(passthrough, fails_after_its_start)
    elif where == "in the app's task":
        app = http_middleware(in_a_cancel_scope, fails_after_its_start)
    else:
        app = http_middleware(in_a_cancel_scope, fails_before_its_start)
    raised = False
    with anyio.fail_after(10):
        try:
            await run_app(app)
        except Boom:  # not bound: a name here would be a cycle of the test's own
            raised = True
    assert raised
    gc.collect()
    assert asgikit_objects(collector_off) == []


@pytest.mark.parametrize("func", [passthrough, in_a_cancel_scope])
async def test_a_failed_send_through_the_middleware_leaves_no_reference_cycle(
    func: object, collector_off: list[object]
) -> None:
    async def fails_on_the_body(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise Boom

    app = http_middleware(func, PlainTextResponse("hello"))  # type: ignore[arg-type]
    raised = False
    with anyio.fail_after(10):
        try:
            await app(make_scope(), body_receive(), fails_on_the_body)
        except Boom:
            raised = True
    assert raised
    gc.collect()
    assert asgikit_objects(collector_off) == []


async def app_with_headers_from_a_generator(scope: Scope, receive: Receive, send: Send) -> None:
    pairs = [(b"content-type", b"text/plain"), (b"x-app", b"kept")]
    # ASGI's headers are any iterable of pairs: a generator can be read once.
    headers = (pair for pair in pairs)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello, world " * 40})


HEADER_LAYERS: dict[str, Callable[[ASGIApp], ASGIApp]] = {
    "security_headers": security_headers,
    "timing": timing,
    "request_id": request_id,
    "rate_limit": rate_limit,
    "cors": partial(cors, allow_origins=["https://site.example"]),
    "compress": partial(compress, minimum_size=1),
}


@pytest.mark.parametrize("layer", HEADER_LAYERS)
async def test_app_headers_given_as_a_one_shot_iterable_all_reach_the_client(layer: str) -> None:
    # A layer reading the app's header iterable twice (once to look, once
    # to copy) dropped every header the app set.
    app = HEADER_LAYERS[layer](app_with_headers_from_a_generator)
    scope = make_scope(
        headers=[(b"origin", b"https://site.example"), (b"accept-encoding", b"gzip")]
    )
    with anyio.fail_after(10):
        sent = await run_app(app, scope)
    names = [name.lower() for name, _ in sent.start["headers"]]
    assert b"x-app" in names
    assert b"content-type" in names


async def call_next_in_another_task(how: str, request: Request, call_next: CallNext) -> object:
    """``call_next(request)`` awaited in a task other than ``func``'s."""
    if how == "asyncio.wait_for":
        # Python 3.10 and 3.11 run the awaitable in a task of its own.
        return await asyncio.wait_for(asyncio.ensure_future(call_next(request)), 60)
    if how == "asyncio.create_task":
        return await asyncio.create_task(call_next(request))  # type: ignore[arg-type]
    if how == "asyncio.gather":
        (response,) = await asyncio.gather(call_next(request))
        return response
    found: list[object] = []

    async def child() -> None:
        found.append(await call_next(request))

    async with anyio.create_task_group() as group:
        group.start_soon(child)
    return found[0]


async def streamed_chunks() -> AsyncIterator[bytes]:
    yield b"a"
    yield b"b"


@pytest.mark.parametrize(
    "how", ["asyncio.wait_for", "asyncio.create_task", "asyncio.gather", "anyio task group"]
)
async def test_call_next_awaited_in_another_task_streams_a_response_with_a_task_group(
    how: str, anyio_backend: str
) -> None:
    # Under asyncio a plain task holds no anyio scope, as a server's request
    # task holds none: the app ran inline in the other task, paused inside
    # its own task group, and sending the response from func's task was
    # refused (after the start had gone out).
    if how.startswith("asyncio") and anyio_backend != "asyncio":
        pytest.skip("asyncio's own tasks")

    async def func(request: Request, call_next: CallNext) -> StreamedResponse:
        response = await call_next_in_another_task(how, request, call_next)
        assert isinstance(response, StreamedResponse)
        response.headers["X-Seen"] = "yes"
        return response

    app = http_middleware(func, StreamingResponse(streamed_chunks()))

    async def request_task() -> SendRecorder:
        return await run_app(app)

    with anyio.fail_after(10):
        if anyio_backend == "asyncio":
            # A plain asyncio task for the request, as uvicorn's.
            sent = await asyncio.create_task(request_task())
        else:
            sent = await request_task()
    assert (sent.body, sent.header(b"x-seen")) == (b"ab", [b"yes"])


class Fatal(BaseException):
    """Not an Exception: as KeyboardInterrupt or SystemExit would be."""


@pytest.mark.parametrize("func", [passthrough, in_a_cancel_scope])
@pytest.mark.parametrize("when", ["before its start", "after its start"])
async def test_a_base_exception_from_the_app_comes_out_bare_never_in_a_group(
    func: object, when: str
) -> None:
    # Under trio the request's task group (kept for the task path) wrapped
    # it in a BaseExceptionGroup, on the inline path too.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if when == "after its start":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise Fatal

    middleware = http_middleware(func, app)  # type: ignore[arg-type]
    with anyio.fail_after(10), pytest.raises(Fatal):
        await run_app(middleware)


@pytest.mark.parametrize("calls_next", [True, False])
async def test_a_func_that_returns_no_response_is_a_clear_error(calls_next: bool) -> None:
    # It was "'NoneType' object is not callable", from inside the middleware.
    async def forgets_to_return(request: Request, call_next: CallNext) -> None:
        if calls_next:
            await call_next(request)

    stopped: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await PlainTextResponse("hello")(scope, receive, send)
        finally:
            stopped.append("stopped")

    middleware = http_middleware(forgets_to_return, app)  # type: ignore[arg-type]
    with anyio.fail_after(10), pytest.raises(TypeError, match="returned None, not a response"):
        await run_app(middleware)
    assert stopped == (["stopped"] if calls_next else [])


async def changes_its_start_after_sending_it(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"text/plain")]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    await send(start)
    # Sent, as far as the app can tell: its dict and list are its own again.
    start["status"] = 500
    headers.append((b"x-late", b"changed after sending"))
    body = {"type": "http.response.body", "body": b"a" * 50, "more_body": True}
    await send(body)
    body["body"] = b"b" * 50  # one dict reused for every chunk
    body["more_body"] = False
    await send(body)


class CopyingRecorder(SendRecorder):
    """A server's ``send``: what it got is what it read during the call."""

    async def __call__(self, message: Message) -> None:
        copy = {**message}
        if "headers" in copy:
            copy["headers"] = list(copy["headers"])
        self.messages.append(copy)


MESSAGE_HOLDERS: dict[str, Callable[[ASGIApp], ASGIApp]] = {
    **HEADER_LAYERS,
    "compress holding a small body": partial(compress, minimum_size=10_000),
    "http_middleware": http_middleware(passthrough),
    "http_middleware, task path": http_middleware(in_a_cancel_scope),
}


@pytest.mark.parametrize("layer", MESSAGE_HOLDERS)
async def test_a_start_the_app_changes_after_sending_it_goes_out_as_it_was_sent(
    layer: str,
) -> None:
    # compress held the app's own start dict (and header list) until the
    # first body, and the task path of http_middleware until func returned.
    app = MESSAGE_HOLDERS[layer](changes_its_start_after_sending_it)
    scope = make_scope(
        headers=[(b"origin", b"https://site.example"), (b"accept-encoding", b"identity")]
    )
    sent = CopyingRecorder()
    with anyio.fail_after(10):
        await app(scope, body_receive(), sent)
    assert sent.status == 200
    assert sent.header(b"x-late") == []
    assert sent.body == b"a" * 50 + b"b" * 50


@asynccontextmanager
async def holding(kind: str) -> AsyncIterator[None]:
    """The scope the app holds open around its response start."""
    if kind == "task group":
        async with anyio.create_task_group():
            yield
    elif kind == "cancel scope":
        with anyio.CancelScope():
            yield
    elif kind == "shielded scope":
        with anyio.CancelScope(shield=True):
            yield
    else:
        yield


async def raises_after_call_next(request: Request, call_next: CallNext) -> StreamedResponse:
    await call_next(request)
    raise Boom


@pytest.mark.parametrize("func", [replaces_the_response, raises_after_call_next])
@pytest.mark.parametrize("holds", ["nothing", "task group", "cancel scope", "shielded scope"])
async def test_an_app_that_waits_after_its_dropped_send_failed_is_stopped_never_a_hang(
    holds: str, func: object
) -> None:
    # With a scope of its own open at its start, the app was handed Dropped
    # outside any cancelled scope: one that caught it and waited (a retry,
    # a back-off) held the request until its wait ended.
    stopped: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async with holding(holds):
            try:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            except OSError:
                try:
                    await anyio.sleep_forever()
                finally:
                    stopped.append("stopped")

    middleware = http_middleware(func, app)  # type: ignore[arg-type]
    with anyio.fail_after(10):
        try:
            await run_app(middleware)
        except Boom:
            pass
    assert stopped == ["stopped"]


async def test_reading_the_body_iterator_as_under_starlette_is_a_clear_error() -> None:
    # Starlette's call_next response has a body_iterator to read the body
    # into memory; here the body is never held: say so, and where to go.
    async def buffers(request: Request, call_next: CallNext) -> PlainTextResponse:
        response = await call_next(request)
        chunks = [chunk async for chunk in response.body_iterator]  # type: ignore[attr-defined]
        return PlainTextResponse(b"".join(chunks))

    middleware = http_middleware(buffers, PlainTextResponse("hello"))
    with anyio.fail_after(10), pytest.raises(AttributeError, match="wrap_send"):
        await run_app(middleware)


@pytest.mark.parametrize("misuse", ["sent twice", "sent from a task of func's"])
async def test_a_response_sent_where_it_cannot_be_is_refused_before_its_start_goes_out(
    misuse: str,
) -> None:
    # The start went out first, then the RuntimeError: a second start on
    # the wire, or a 200 with no body where a server would have answered 500.
    async def func(request: Request, call_next: CallNext) -> ASGIApp:
        response = await call_next(request)

        async def misused(scope: Scope, receive: Receive, send: Send) -> None:
            if misuse == "sent twice":
                await response(scope, receive, send)
                await response(scope, receive, send)
            else:
                async with anyio.create_task_group() as group:
                    group.start_soon(response, scope, receive, send)

        return misused

    sent = SendRecorder()
    with anyio.fail_after(10):
        try:
            await http_middleware(func, StreamingResponse(streamed_chunks()))(
                make_scope(), body_receive(), sent
            )
        except Exception:  # the RuntimeError, bare or in the task group's group
            pass
    starts = [m for m in sent.messages if m["type"] == "http.response.start"]
    assert len(starts) == (1 if misuse == "sent twice" else 0)


async def test_a_start_from_another_task_of_the_app_leaves_no_reference_cycle_of_ours(
    collector_off: list[object],
) -> None:
    # The driver's wait through a future of its own (a start from another
    # task wakes it): nothing of it may be kept alive by a cycle.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(PlainTextResponse("from a task"), scope, receive, send)

    scope = make_scope()
    scope["asgi"] = {"version": "3.0", "spec_version": "2.3"}
    with anyio.fail_after(10):
        sent = await run_app(http_middleware(with_header, app), scope)
    assert (sent.status, sent.body) == (200, b"from a task")
    gc.collect()
    found = asgikit_objects(collector_off)
    assert found == []
