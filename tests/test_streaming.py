"""``StreamingResponse``: bodies from iterables, closed when the client leaves."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from asgikit import _shutdown
from asgikit.background import BackgroundTask
from asgikit.requests import Request
from asgikit.streaming import StreamingResponse
from asgikit.types import Message
from tests.conftest import SendRecorder, body_receive, make_scope, run_app


async def test_async_iterable_is_streamed_chunk_by_chunk() -> None:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(3):
            yield str(i).encode()

    sent = await run_app(StreamingResponse(numbers(), media_type="text/plain"))
    assert sent.messages == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        },
        {"type": "http.response.body", "body": b"0", "more_body": True},
        {"type": "http.response.body", "body": b"1", "more_body": True},
        {"type": "http.response.body", "body": b"2", "more_body": True},
        {"type": "http.response.body", "body": b""},
    ]


async def test_sync_iterable_and_str_chunks() -> None:
    sent = await run_app(StreamingResponse(["a", b"b", bytearray(b"c"), memoryview(b"d"), "é"]))
    assert sent.body == "abcdé".encode()
    assert sent.complete
    assert sent.header(b"content-length") == []


async def test_sync_generator_is_closed_at_the_end() -> None:
    events: list[str] = []

    def gen() -> Iterator[str]:
        try:
            yield "a"
            yield "b"
        finally:
            events.append("closed")

    sent = await run_app(StreamingResponse(gen(), status_code=201, headers={"X-A": "1"}))
    assert sent.status == 201
    assert sent.header(b"x-a") == [b"1"]
    assert sent.body == b"ab"
    assert events == ["closed"]


async def test_a_chunk_that_is_not_bytes_or_str_is_a_type_error() -> None:
    async def gen() -> AsyncIterator[object]:
        yield 5

    with pytest.raises(TypeError, match="bytes or str"):
        await run_app(StreamingResponse(gen()))


async def test_head_sends_headers_only_and_closes_the_iterator() -> None:
    events: list[str] = []

    async def gen() -> AsyncIterator[bytes]:
        try:
            events.append("started")
            yield b"body"
        finally:
            events.append("closed")

    response = StreamingResponse(gen(), headers={"Content-Length": "4"})
    sent = await run_app(response, make_scope("HEAD"))
    assert sent.header(b"content-length") == [b"4"]
    assert sent.body == b""
    assert sent.complete
    # Never started, so there is no frame to run a finally in; it is closed.
    assert events == []
    with pytest.raises(StopAsyncIteration):
        await response.body_iterator.__aiter__().__anext__()


async def test_generator_waiting_is_closed_when_the_client_disconnects() -> None:
    events: list[str] = []
    first_chunk_sent = anyio.Event()
    never = anyio.Event()

    async def gen() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            events.append("waiting")
            await never.wait()
            yield b"never sent"
        finally:
            events.append("finally")

    async def receive() -> Message:
        await first_chunk_sent.wait()
        return {"type": "http.disconnect"}

    class Recorder(SendRecorder):
        async def __call__(self, message: Message) -> None:
            await super().__call__(message)
            if message.get("body"):
                first_chunk_sent.set()

    async def task() -> None:
        events.append("background")

    scope = make_scope()
    send = Recorder()
    response = StreamingResponse(gen(), background=BackgroundTask(task))
    await response(scope, receive, send)
    assert events == ["waiting", "finally"]
    assert send.body == b"first"
    assert not send.complete
    assert await Request(scope, body_receive()).is_disconnected()


async def test_a_client_already_gone_gets_nothing() -> None:
    scope = make_scope()
    request = Request(scope, body_receive(disconnect=True))
    await request.body()
    assert await request.is_disconnected()
    sent = await run_app(StreamingResponse([b"x"]), scope)
    assert sent.messages == []


async def test_send_raising_oserror_ends_the_response_quietly() -> None:
    events: list[str] = []

    async def gen() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            events.append("finally")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection lost")

    async def task() -> None:
        events.append("background")

    scope = make_scope()
    response = StreamingResponse(gen(), background=BackgroundTask(task))
    await response(scope, body_receive(), send)
    assert events == ["finally"]
    assert await Request(scope, body_receive()).is_disconnected()


async def test_an_error_in_the_generator_propagates_as_itself() -> None:
    events: list[str] = []

    async def gen() -> AsyncIterator[bytes]:
        try:
            yield b"x"
            raise KeyError("boom")
        finally:
            events.append("finally")

    async def task() -> None:
        events.append("background")

    response = StreamingResponse(gen(), background=BackgroundTask(task))
    with pytest.raises(KeyError, match="boom"):
        await run_app(response)
    assert events == ["finally"]


async def test_background_runs_after_the_complete_body() -> None:
    events: list[str] = []

    async def gen() -> AsyncIterator[str]:
        yield "a"

    class Recorder(SendRecorder):
        async def __call__(self, message: Message) -> None:
            events.append(f"{message['type']} {message.get('more_body', False)}")
            await super().__call__(message)

    async def task() -> None:
        events.append("background")

    response = StreamingResponse(gen(), background=BackgroundTask(task))
    await response(make_scope(), body_receive(), Recorder())
    assert events == [
        "http.response.start False",
        "http.response.body True",
        "http.response.body False",
        "background",
    ]


async def test_is_disconnected_while_streaming_does_not_read_receive() -> None:
    calls: list[str] = []
    listening = anyio.Event()
    scope = make_scope()
    inner_receive = body_receive()

    async def receive() -> Message:
        calls.append("receive")
        listening.set()
        return await inner_receive()

    request = Request(scope, receive)
    answers: list[tuple[bool, int]] = []

    async def gen() -> AsyncIterator[bytes]:
        await listening.wait()  # the response's listener owns receive() now
        before = len(calls)
        answers.append((await request.is_disconnected(), len(calls) - before))
        yield b"x"

    await StreamingResponse(gen())(scope, receive, SendRecorder())
    assert answers == [(False, 0)]


async def test_an_iterable_that_is_not_its_own_iterator_has_its_iterator_closed() -> None:
    events: list[str] = []

    class Body:
        def __aiter__(self) -> AsyncIterator[bytes]:
            return self.chunks()

        async def chunks(self) -> AsyncIterator[bytes]:
            try:
                yield b"a"
                await anyio.sleep_forever()
            finally:
                events.append("closed")

    async def send(message: Message) -> None:
        if message.get("body"):
            raise OSError("gone")

    await StreamingResponse(Body())(make_scope(), body_receive(), send)
    assert events == ["closed"]


# -- server shutdown ----------------------------------------------------------


@pytest.fixture
def server_handles_sigterm() -> Iterator[list[int]]:
    """A SIGTERM handler such as a server installs; restored afterwards, shutdown forgotten."""
    received: list[int] = []
    _shutdown._reset()  # chained afresh, in front of this handler
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
        _shutdown._reset()


class SignalOnFirstBody(SendRecorder):
    """Records, and delivers SIGTERM to this process once the first body chunk is sent."""

    async def __call__(self, message: Message) -> None:
        await super().__call__(message)
        if message["type"] == "http.response.body" and len(self.messages) == 2:
            signal.raise_signal(signal.SIGTERM)


async def endless() -> AsyncIterator[bytes]:
    while True:
        yield b"tick\n"
        await anyio.sleep(0.01)


async def test_end_on_shutdown_ends_an_endless_stream_cleanly_on_sigterm(
    server_handles_sigterm: list[int],
) -> None:
    send = SignalOnFirstBody()
    with anyio.fail_after(10):
        await StreamingResponse(endless(), end_on_shutdown=True)(
            make_scope(), body_receive(), send
        )
    assert send.complete  # the final message went out: a clean end
    assert server_handles_sigterm == [signal.SIGTERM]  # the server's handler still ran


async def test_by_default_a_stream_is_left_to_finish_at_shutdown(
    server_handles_sigterm: list[int],
) -> None:
    async def five() -> AsyncIterator[bytes]:
        for i in range(5):
            yield str(i).encode()
            await anyio.sleep(0.01)

    send = SignalOnFirstBody()
    with anyio.fail_after(10):
        await StreamingResponse(five())(make_scope(), body_receive(), send)
    assert (send.body, send.complete) == (b"01234", True)
    assert server_handles_sigterm == [signal.SIGTERM]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_server_cancelling_a_stream_at_shutdown_is_no_error(
    server_handles_sigterm: list[int],
) -> None:
    # uvicorn's graceful timeout (or a second Ctrl+C) cancels the task itself;
    # the stream ends there instead of raising CancelledError to the server,
    # which would log it with a traceback.
    import asyncio

    send = SignalOnFirstBody()
    task = asyncio.ensure_future(StreamingResponse(endless())(make_scope(), body_receive(), send))
    with anyio.fail_after(10):
        while not server_handles_sigterm:
            await anyio.sleep(0.01)
        task.cancel()
        await asyncio.wait([task])
    assert not task.cancelled()
    assert task.exception() is None
    assert not send.complete  # cut short: the server closes the connection


async def test_after_shutdown_an_anyio_cancellation_still_propagates(
    server_handles_sigterm: list[int],
) -> None:
    send = SignalOnFirstBody()
    with anyio.fail_after(10):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:

                async def stop_soon() -> None:
                    while not server_handles_sigterm:
                        await anyio.sleep(0.01)
                    scope.cancel()

                group.start_soon(stop_soon)
                await StreamingResponse(endless())(make_scope(), body_receive(), send)
    assert scope.cancelled_caught


def test_a_finished_event_loop_is_not_kept_alive_by_the_shutdown_watch(
    server_handles_sigterm: list[int],
) -> None:
    import gc

    async def stream_once() -> None:
        response = StreamingResponse([b"a"], end_on_shutdown=True)
        await response(make_scope(), body_receive(), SendRecorder())

    before = len(_shutdown._loops)
    anyio.run(stream_once)
    gc.collect()
    assert len(_shutdown._loops) <= before


async def test_a_receive_that_replays_the_body_at_once_never_spins_the_watch() -> None:
    # A wrapper answering every receive() at once with the cached body: the
    # disconnect watch must not loop on it (it never yields to the event
    # loop, so nothing else would run), nor take it for a disconnect.
    calls = 0

    async def replaying_receive() -> Message:
        nonlocal calls
        calls += 1
        if calls > 10_000:  # a guard: fail_after cannot fire on a starved loop
            raise AssertionError("the disconnect watch spun on the receive")
        return {"type": "http.request", "body": b"", "more_body": False}

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(5):
            await anyio.sleep(0)
            yield b"%d;" % n

    send = SendRecorder()
    with anyio.fail_after(10):
        await StreamingResponse(chunks())(make_scope(), replaying_receive, send)
    assert send.body == b"0;1;2;3;4;"
    assert calls <= 2  # the second whole-body message ended the watch's reads


async def test_on_asyncio_the_disconnect_watch_is_a_plain_task_not_a_task_group(
    monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    # A task group costs ~65 us a response and leaves the cancelled task's
    # traceback in reference cycles; a plain task cancelling a scope ~10 us.
    groups: list[str] = []
    real = anyio.create_task_group

    def recording() -> Any:
        groups.append("task group")
        return real()

    monkeypatch.setattr(anyio, "create_task_group", recording)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    sent = await run_app(StreamingResponse(chunks()))
    assert sent.body == b"ab"
    assert groups == ([] if anyio_backend == "asyncio" else ["task group"])


async def test_a_client_leaving_mid_stream_stops_the_body_on_both_watches() -> None:
    stopped: list[str] = []
    more = anyio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            more.set()
            await anyio.sleep_forever()
            yield b"never"
        finally:
            stopped.append("closed")

    async def receive() -> Message:
        await more.wait()
        return {"type": "http.disconnect"}

    send = SendRecorder()
    with anyio.fail_after(10):
        await StreamingResponse(endless())(make_scope(), receive, send)
    assert send.body == b"first"
    assert stopped == ["closed"]
