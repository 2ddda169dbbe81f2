"""``wrap_send`` and ``edit_start``: only the types asked for are intercepted; the rest pass."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from asgikit._send import SentWatch, edit_start, message_headers, wrap_send
from asgikit.types import Message
from tests.conftest import SendRecorder


async def test_only_listed_types_reach_the_handler() -> None:
    inner = SendRecorder()
    handled: list[Message] = []

    async def on_start(message: Message) -> None:
        handled.append(message)
        headers = message_headers(message)
        headers["x-added"] = "1"
        await inner({**message, "headers": headers.raw})

    send = wrap_send(inner, {"http.response.start": on_start})
    start = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]}
    await send(start)
    await send({"type": "http.response.body", "body": b"x"})
    assert handled == [start]
    assert inner.messages == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"a", b"1"), (b"x-added", b"1")],
        },
        {"type": "http.response.body", "body": b"x"},
    ]
    # The handler worked on a copy: the original message is unchanged.
    assert start["headers"] == [(b"a", b"1")]


async def test_other_messages_pass_through_unchanged_with_every_key() -> None:
    inner = SendRecorder()

    async def never(message: Message) -> None:
        raise AssertionError("not listed")

    send = wrap_send(inner, {"http.response.body": never})
    messages: list[Message] = [
        {"type": "http.response.pathsend", "path": "/srv/file.bin"},
        {
            "type": "http.response.trailers",
            "headers": [(b"x-sum", b"abc")],
            "more_trailers": False,
        },
        {"type": "http.response.early_hint", "links": ["</a.css>; rel=preload"]},
        {"type": "http.response.zerocopysend", "file": 3, "offset": 0, "count": 10},
        {"type": "x.future.extension", "anything": {"nested": [1]}, "more": True},
    ]
    for message in messages:
        await send(message)
    # Not merely equal: the very same objects reach the server's send.
    assert len(inner.messages) == len(messages)
    assert all(a is b for a, b in zip(inner.messages, messages, strict=True))


async def test_handler_may_drop_or_split_messages() -> None:
    inner = SendRecorder()

    async def split(message: Message) -> None:
        body = message["body"]
        await inner({**message, "body": body[:1], "more_body": True})
        await inner({**message, "body": body[1:]})

    send = wrap_send(inner, {"http.response.body": split})
    await send({"type": "http.response.body", "body": b"ab"})
    assert [m["body"] for m in inner.messages] == [b"a", b"b"]


def test_message_headers_copies_the_list() -> None:
    message: Message = {"type": "http.response.start", "headers": [(b"a", b"1")]}
    headers = message_headers(message)
    headers.append("b", "2")
    del headers["a"]
    assert message["headers"] == [(b"a", b"1")]
    assert headers.raw == [(b"b", b"2")]
    assert message_headers({"type": "http.response.start"}).raw == []


async def test_sent_watch_notes_the_watched_type_and_passes_every_message() -> None:
    inner = SendRecorder()
    watch = SentWatch(inner, ("http.response.start",))
    early = {"type": "http.response.early_hint", "links": []}
    await watch(early)
    assert not watch.sent
    start = {"type": "http.response.start", "status": 200, "headers": []}
    await watch(start)
    assert watch.sent
    assert inner.messages == [early, start]


async def test_edit_start_edits_only_the_start_and_passes_the_rest_as_they_are() -> None:
    inner = SendRecorder()

    def tag(message: Message) -> Message:
        return {**message, "headers": [*message["headers"], (b"x-tag", b"1")]}

    send = edit_start(inner, tag)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]}
    rest: list[Message] = [
        {"type": "http.response.body", "body": b"x", "more_body": True},
        {"type": "http.response.pathsend", "path": "/srv/file.bin"},
        {"type": "x.future.extension", "anything": {"nested": [1]}},
    ]
    await send(start)
    for message in rest:
        await send(message)
    assert inner.messages[0] == {**start, "headers": [(b"a", b"1"), (b"x-tag", b"1")]}
    assert start["headers"] == [(b"a", b"1")]
    assert all(a is b for a, b in zip(inner.messages[1:], rest, strict=True))


async def test_the_wrapped_send_hands_back_the_inner_awaitable_itself() -> None:
    # No coroutine of the wrapper's own: one frame a message, not two.
    class Sent:
        def __await__(self) -> Generator[Any, None, None]:
            yield from ()

    marks: list[Sent] = []

    def inner(message: Message) -> Sent:
        marks.append(Sent())
        return marks[-1]

    def tag(message: Message) -> Message:
        return {**message, "headers": [(b"x-tag", b"1")]}

    start = {"type": "http.response.start", "status": 200, "headers": []}
    body = {"type": "http.response.body", "body": b"x"}
    sends = [
        SentWatch(inner, ("http.response.start",)),
        wrap_send(inner, {"http.response.start": inner}),
        wrap_send(inner, {"http.response.start": inner, "http.response.trailers": inner}),
        edit_start(inner, tag),
    ]
    for send in sends:
        for message in (start, body):
            returned = send(message)
            assert returned is marks[-1]
            await returned
    assert start["headers"] == []
