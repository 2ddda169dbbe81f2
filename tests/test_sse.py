"""Server-sent events: the wire format (HTML §9.2), headers, pings, disconnect, shutdown."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit.requests import Request
from asgikit.routing import route, router
from asgikit.sse import EventSourceResponse, ServerSentEvent, encode_event, last_event_id
from asgikit.testing import TestClient
from asgikit.types import Message
from tests.conftest import SendRecorder, body_receive, make_scope, run_app
from tests.test_streaming import SignalOnFirstBody, server_handles_sigterm

__all__ = ["server_handles_sigterm"]  # a fixture, used by name


def parse_stream(text: str) -> list[dict[str, str]]:
    """A reference parser written from §9.2.6, to read back what was encoded."""
    events: list[dict[str, str]] = []
    data: list[str] = []
    fields: dict[str, str] = {}
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line in lines:
        if line == "":
            if data or fields:
                event = dict(fields)
                if data:
                    event["data"] = "\n".join(data)
                events.append(event)
            data, fields = [], {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    return events


def test_a_string_item_is_the_data() -> None:
    assert encode_event("hello") == b"data: hello\n\n"


def test_all_fields_are_written() -> None:
    item = {"data": "x", "event": "tick", "id": "7", "retry": 3000, "comment": "c"}
    assert encode_event(item) == b": c\nevent: tick\nid: 7\nretry: 3000\ndata: x\n\n"


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_multi_line_data_is_split_at_every_kind_of_newline(newline: str) -> None:
    assert encode_event(f"a{newline}b{newline}") == b"data: a\ndata: b\ndata: \n\n"


def test_data_other_than_str_is_sent_as_json() -> None:
    assert encode_event(ServerSentEvent(data={"t": "é"})) == 'data: {"t":"é"}\n\n'.encode()


def test_unicode_line_separators_stay_inside_the_data() -> None:
    # The event-stream parser splits only at CR and LF, unlike str.splitlines().
    assert encode_event("a\u2028b\x0cc") == "data: a\u2028b\x0cc\n\n".encode()


@pytest.mark.parametrize(
    "fields",
    [
        {"event": "a\nb"},
        {"event": "a\rb"},
        {"id": "1\n"},
        {"id": "1\r2"},
        {"id": "a\0b"},
        {"retry": -1},
        {"retry": "10"},
        {"retry": True},
    ],
)
def test_fields_that_would_break_the_stream_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        encode_event(fields)


def test_unknown_keys_and_item_types_are_refused() -> None:
    with pytest.raises(TypeError):
        encode_event({"dta": "typo"})
    with pytest.raises(TypeError):
        encode_event(42)  # type: ignore[arg-type]


@given(
    data=st.text(),
    event=st.none() | st.text().filter(lambda s: "\r" not in s and "\n" not in s and s),
    id_=st.none() | st.text().filter(lambda s: not set(s) & {"\r", "\n", "\0"}),
)
def test_any_event_reads_back_as_it_was_sent(
    data: str, event: str | None, id_: str | None
) -> None:
    # A leading space is part of the value except for the one the format adds.
    encoded = encode_event(ServerSentEvent(data=data, event=event, id=id_)).decode()
    (parsed,) = parse_stream(encoded)
    expected_data = data.replace("\r\n", "\n").replace("\r", "\n")
    assert parsed["data"] == expected_data
    assert parsed.get("event") == event
    assert parsed.get("id") == id_


async def events(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def test_response_headers_and_body() -> None:
    response = EventSourceResponse(events("a", {"event": "e", "data": "b"}), ping=None)
    sent = await run_app(response)
    assert sent.status == 200
    assert sent.header(b"content-type") == [b"text/event-stream; charset=utf-8"]
    assert sent.header(b"cache-control") == [b"no-cache"]
    assert sent.header(b"x-accel-buffering") == [b"no"]
    assert sent.header(b"content-length") == []
    assert sent.body == b"data: a\n\nevent: e\ndata: b\n\n"
    assert sent.complete


def test_given_headers_win_over_the_defaults() -> None:
    response = EventSourceResponse([], headers={"Cache-Control": "no-store"})
    assert response.headers.getlist("cache-control") == ["no-store"]


def test_a_sync_iterable_works_through_the_test_client() -> None:
    def gen() -> Iterator[str]:
        yield "one"
        yield "two"

    async def endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(gen())

    with TestClient(router(route("/", endpoint))) as client:
        response = client.get("/")
    assert parse_stream(response.text) == [{"data": "one"}, {"data": "two"}]


async def test_head_sends_headers_only() -> None:
    closed: list[bool] = []

    async def gen() -> AsyncIterator[str]:
        try:
            yield "never"
        finally:
            closed.append(True)

    sent = await run_app(EventSourceResponse(gen()), make_scope("HEAD"))
    assert sent.body == b""
    assert sent.header(b"content-type") == [b"text/event-stream; charset=utf-8"]


async def test_pings_are_sent_while_the_generator_is_idle() -> None:
    release = anyio.Event()

    async def gen() -> AsyncIterator[str]:
        yield "first"
        await release.wait()
        yield "last"

    send = SendRecorder()

    async def watching_send(message: Message) -> None:
        await send(message)
        if message.get("body") == b": ping\n\n":
            release.set()

    with anyio.fail_after(5):
        await EventSourceResponse(gen(), ping=0.01)(make_scope(), body_receive(), watching_send)
    assert send.body.startswith(b"data: first\n\n: ping\n\n")
    assert send.body.endswith(b"data: last\n\n")


async def test_the_generator_is_closed_when_the_client_disconnects() -> None:
    cleaned = anyio.Event()
    sent_one = anyio.Event()

    async def gen() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick"
                await anyio.sleep(0.01)
        finally:
            cleaned.set()

    gone = anyio.Event()

    async def receive() -> Message:
        if not sent_one.is_set():
            return {"type": "http.request", "body": b""}
        await gone.wait()
        return {"type": "http.disconnect"}

    send = SendRecorder()

    async def on_send(message: Message) -> None:
        await send(message)
        sent_one.set()
        if send.body.count(b"tick") >= 3:
            gone.set()

    with anyio.fail_after(5):
        await EventSourceResponse(gen(), ping=None)(make_scope(), receive, on_send)
    assert cleaned.is_set()
    assert not send.complete  # no final body after the client left


async def test_a_failing_send_ends_the_stream_and_closes_the_generator() -> None:
    cleaned: list[bool] = []

    async def gen() -> AsyncIterator[str]:
        try:
            while True:
                yield "x"
        finally:
            cleaned.append(True)

    calls = 0

    async def send(message: Message) -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise OSError("connection lost")

    with anyio.fail_after(5):
        await EventSourceResponse(gen(), ping=None)(make_scope(), body_receive(), send)
    assert cleaned == [True]


async def test_send_timeout_gives_up_on_a_client_that_stopped_reading() -> None:
    cleaned: list[bool] = []

    async def gen() -> AsyncIterator[str]:
        try:
            while True:
                yield "x"
        finally:
            cleaned.append(True)

    async def stuck_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        await EventSourceResponse(gen(), ping=None, send_timeout=0.05)(
            make_scope(), body_receive(), stuck_send
        )
    assert cleaned == [True]


def test_send_timeout_has_a_default() -> None:
    assert EventSourceResponse(iter(())).send_timeout == 60


@pytest.mark.parametrize("ping", [None, 15.0, 0.01])
async def test_send_timeout_ends_a_stream_whose_send_blocks_whatever_the_ping(
    ping: float | None,
) -> None:
    cleaned: list[bool] = []
    sent: list[bytes] = []

    async def gen() -> AsyncIterator[str]:
        try:
            yield "first"
            yield "stuck here"
            await anyio.sleep_forever()
        finally:
            cleaned.append(True)

    async def stalling_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))
            if len(sent) >= 2:
                await anyio.sleep_forever()  # the client stopped reading

    with anyio.fail_after(10):
        await EventSourceResponse(gen(), ping=ping, send_timeout=0.05)(
            make_scope(), body_receive(), stalling_send
        )
    assert cleaned == [True]
    assert sent[0] == b"data: first\n\n"


async def test_send_timeout_spares_a_slow_client_that_keeps_reading() -> None:
    async def gen() -> AsyncIterator[str]:
        for n in range(5):
            yield str(n)

    bodies: list[bytes] = []

    async def slow_send(message: Message) -> None:
        await anyio.sleep(0.01)  # slow, but every send completes
        if message["type"] == "http.response.body":
            bodies.append(message.get("body", b""))

    with anyio.fail_after(10):
        await EventSourceResponse(gen(), ping=0.005, send_timeout=5)(
            make_scope(), body_receive(), slow_send
        )
    events = [body for body in bodies if body.startswith(b"data:")]
    assert events == [f"data: {n}\n\n".encode() for n in range(5)]
    assert bodies[-1] == b""


async def test_shutdown_event_ends_the_stream_cleanly() -> None:
    shutdown = anyio.Event()
    cleaned: list[bool] = []

    async def gen() -> AsyncIterator[str]:
        try:
            yield "a"
            shutdown.set()
            await anyio.sleep_forever()
            yield "never"
        finally:
            cleaned.append(True)

    with anyio.fail_after(5):
        sent = await run_app(EventSourceResponse(gen(), shutdown_event=shutdown))
    assert sent.body == b"data: a\n\n"
    assert sent.complete
    assert cleaned == [True]


async def test_an_error_in_the_generator_propagates() -> None:
    async def gen() -> AsyncIterator[str]:
        yield "a"
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        await run_app(EventSourceResponse(gen()))


def test_last_event_id_from_a_request_or_a_scope() -> None:
    scope = make_scope(headers=[(b"last-event-id", b"42")])
    assert last_event_id(Request(scope)) == "42"
    assert last_event_id(scope) == "42"
    assert last_event_id(make_scope()) is None


# -- server shutdown ----------------------------------------------------------


async def ticks() -> AsyncIterator[dict[str, Any]]:
    n = 0
    while True:
        n += 1
        yield {"event": "tick", "data": str(n)}
        await anyio.sleep(0.01)


async def test_an_open_event_stream_ends_cleanly_when_the_server_gets_sigterm(
    server_handles_sigterm: list[int],
) -> None:
    send = SignalOnFirstBody()
    with anyio.fail_after(10):
        await EventSourceResponse(ticks(), ping=None)(make_scope(), body_receive(), send)
    assert send.complete
    assert send.body.startswith(b"event: tick\ndata: 1\n\n")
    assert server_handles_sigterm == [signal.SIGTERM]


async def test_end_on_shutdown_false_keeps_the_event_stream_going(
    server_handles_sigterm: list[int],
) -> None:
    async def three() -> AsyncIterator[str]:
        for i in range(3):
            yield str(i)
            await anyio.sleep(0.01)

    send = SignalOnFirstBody()
    with anyio.fail_after(10):
        response = EventSourceResponse(three(), ping=None, end_on_shutdown=False)
        await response(make_scope(), body_receive(), send)
    assert send.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
