"""Server-sent events: ``EventSourceResponse``, per the HTML standard §9.2.

The body is an ``text/event-stream`` (always UTF-8, §9.2.5): each item of
the iterable becomes one event, fields one per line, a blank line after.
Multi-line ``data`` (split at CRLF, CR and LF alike, as the parser splits)
becomes several ``data:`` lines that the browser joins again with LF.  A
field that would break the framing is refused when the event is built: CR
or LF in ``event`` or ``id``, NUL in ``id`` (§9.2.6: such an id is ignored).

While the stream is open a comment (``: ping``) goes out whenever nothing
was sent for ``ping`` seconds, so proxies keep the connection and the client
notices a dead one.  A client that stops reading (its TCP window full, the
server's ``send`` blocked) is given up after ``send_timeout`` seconds
(60 by default): a keeper task watches the write in progress, so the
events themselves pay for no timer.  The client's disconnect is watched all along (as for
``StreamingResponse``): the iterator is closed at once, and its ``finally``
runs.

Server shutdown: ASGI servers send ``lifespan.shutdown`` only after open
connections are closed, so the lifespan cannot end a stream, and uvicorn
would wait for ever.  The stream ends cleanly (iterator closed, final
message sent; the browser's ``EventSource`` reconnects, to another worker
in a rolling deploy) as soon as the server receives SIGINT or SIGTERM:
asgikit chains a handler in front of the server's (``asgikit._shutdown``
says how, and where it cannot).  ``end_on_shutdown=False`` turns that off;
``shutdown_event``, any event the application sets itself, ends the
stream too.  The server's graceful timeout (``uvicorn
--timeout-graceful-shutdown``, ``hypercorn --graceful-timeout``) stays the
backstop; when it cancels a stream, no traceback is logged.

Not done here: replaying missed events for ``Last-Event-ID`` (the
application knows its history; ``last_event_id(request)`` reads the header).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Mapping
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from asgikit._shutdown import cancel_on_shutdown
from asgikit.background import BackgroundTask
from asgikit.datastructures import Headers
from asgikit.requests import HTTPConnection
from asgikit.streaming import StreamingResponse
from asgikit.types import Scope, Send

_PING = b": ping\n\n"


def _lines(text: str) -> list[str]:
    # §9.2.6: a line ends at CRLF, a lone LF or a lone CR.  str.splitlines()
    # would also split at U+2028, VT, FF..., which the parser keeps.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


@dataclasses.dataclass(frozen=True)
class ServerSentEvent:
    """One event.  Every field is optional; the checks run when it is built.

    ``data``: a ``str`` is sent as is (multi-line allowed); any other value
    but ``None`` is sent as compact JSON.  ``event``: the event type the
    browser dispatches (``message`` if absent).  ``id``: the client's new
    last event ID (``""`` resets it).  ``retry``: the reconnection delay in
    milliseconds.  ``comment``: a comment line, which the browser ignores.
    """

    data: Any = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        for name in ("event", "id"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError(f"the SSE {name!r} field must be a str")
            if "\r" in value or "\n" in value:
                raise ValueError(f"the SSE {name!r} field cannot contain CR or LF")
        if self.id is not None and "\0" in self.id:
            raise ValueError("the SSE 'id' field cannot contain NUL (browsers ignore it)")
        if self.retry is not None and (
            isinstance(self.retry, bool) or not isinstance(self.retry, int) or self.retry < 0
        ):
            raise ValueError("the SSE 'retry' field is a non-negative int (milliseconds)")
        if self.comment is not None and not isinstance(self.comment, str):
            raise TypeError("the SSE 'comment' field must be a str")

    def encode(self) -> bytes:
        """The event in the ``text/event-stream`` format, blank line included."""
        out: list[str] = []
        if self.comment is not None:
            out.extend(f": {line}" for line in _lines(self.comment))
        if self.event is not None:
            out.append(f"event: {self.event}")
        if self.id is not None:
            out.append(f"id: {self.id}")
        if self.retry is not None:
            out.append(f"retry: {self.retry}")
        if self.data is not None:
            data = self.data
            if not isinstance(data, str):
                data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            out.extend(f"data: {line}" for line in _lines(data))
        out.append("\n")
        return "\n".join(out).encode("utf-8")


def encode_event(item: str | Mapping[str, Any] | ServerSentEvent) -> bytes:
    """One stream item as bytes: a ``str`` is the data, a dict names the fields."""
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, str):
        if "\n" not in item and "\r" not in item:
            return f"data: {item}\n\n".encode()
        return ServerSentEvent(data=item).encode()
    if isinstance(item, Mapping):
        return ServerSentEvent(**item).encode()
    raise TypeError(
        f"an SSE item is a str, a dict or a ServerSentEvent, not {type(item).__name__}"
    )


def last_event_id(connection: HTTPConnection | Scope) -> str | None:
    """The ``Last-Event-ID`` a reconnecting ``EventSource`` sent (§9.2.4), if any."""
    if isinstance(connection, HTTPConnection):
        headers = connection.headers
    else:
        headers = Headers(raw=connection.get("headers", ()))
    value: str | None = headers.get("last-event-id")
    return value


class _Waitable(Protocol):
    def wait(self) -> Awaitable[Any]: ...


class _Writer:
    """Sends chunks for one stream, one at a time, remembering when it last did.

    The events and the pinger share it.  A plain flag and an event serialise
    them: uncontended (the usual case) a write costs no extra checkpoint,
    where a lock's acquire would yield to the event loop for every event.
    """

    def __init__(self, send: Send) -> None:
        self.send = send
        self.busy = False
        #: When the write in progress began (meaningful while ``busy``).
        self.busy_since = 0.0
        self.writes = 0
        self.idle: anyio.Event | None = None
        self.last_sent = time.monotonic()
        self.error: Exception | None = None

    async def write(self, chunk: bytes) -> None:
        while self.busy:
            if self.idle is None:
                self.idle = anyio.Event()
            await self.idle.wait()
        self.busy = True
        self.busy_since = time.monotonic()
        message = {"type": "http.response.body", "body": chunk, "more_body": True}
        try:
            await self.send(message)
            self.last_sent = time.monotonic()
            self.writes += 1
            if not self.writes & 31:
                # A generator that never awaits, with a send that does not
                # suspend, would starve the loop (the disconnect could never
                # be heard); now and then let other tasks run.
                await anyio.lowlevel.checkpoint()
        finally:
            self.busy = False
            if self.idle is not None:
                self.idle.set()
                self.idle = None


class EventSourceResponse(StreamingResponse):
    """A ``text/event-stream`` response from a sync or async iterable of events.

    Items are ``str`` (the data), dicts with ``data``, ``event``, ``id``,
    ``retry`` and ``comment`` keys, or :class:`ServerSentEvent`.  ``ping``
    is the idle time in seconds before a keep-alive comment (``None`` or 0
    turns pings off).  ``send_timeout`` ends the stream when one send blocks
    that long (a client that stopped reading; ``None`` waits for ever).  ``shutdown_event`` (any
    object with an awaitable ``wait()``) ends the stream cleanly when set;
    so does the server's shutdown, unless ``end_on_shutdown=False``.
    """

    media_type = "text/event-stream"
    end_on_shutdown = True

    def __init__(
        self,
        content: Iterable[Any] | AsyncIterable[Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        ping: float | None = 15,
        send_timeout: float | None = 60,
        shutdown_event: _Waitable | None = None,
        background: BackgroundTask | None = None,
        end_on_shutdown: bool = True,
    ) -> None:
        self.ping = ping or None
        self.send_timeout = send_timeout
        self.shutdown_event = shutdown_event
        given = {key.lower() for key in headers or ()}
        extra = dict(headers or {})
        if "cache-control" not in given:
            extra["Cache-Control"] = "no-cache"
        if "x-accel-buffering" not in given:
            # nginx buffers proxied responses unless told not to.
            extra["X-Accel-Buffering"] = "no"
        super().__init__(
            content, status_code, extra, background=background, end_on_shutdown=end_on_shutdown
        )

    async def _send_body(self, send: Send, iterator: AsyncIterator[Any]) -> None:
        # StreamingResponse.__call__ runs this under its disconnect watch and
        # closes the iterator; HEAD never gets here.
        await send(self._start_message())
        writer = _Writer(send)
        with cancel_on_shutdown(self.end_on_shutdown):
            await self._send_events(writer, iterator)
        if writer.error is not None:
            raise writer.error
        await send({"type": "http.response.body", "body": b""})

    async def _send_events(self, writer: _Writer, iterator: AsyncIterator[Any]) -> None:
        async with anyio.create_task_group() as group:
            if self.ping is not None or self.send_timeout is not None:
                group.start_soon(self._keeper, writer, group.cancel_scope)
            if self.shutdown_event is not None:
                group.start_soon(self._watch_shutdown, group.cancel_scope)
            try:
                async for item in iterator:
                    await writer.write(encode_event(item))
            except Exception as exc:
                # Raised after the group, so the caller sees the exception
                # itself and not an exception group around it.
                writer.error = exc
            group.cancel_scope.cancel()

    async def _keeper(self, writer: _Writer, stop: anyio.CancelScope) -> None:
        """Ping an idle stream; end one whose write has blocked past ``send_timeout``."""
        ping, limit = self.ping, self.send_timeout
        try:
            while True:
                now = time.monotonic()
                if writer.busy:
                    if limit is None:
                        wait = ping or 1.0
                    else:
                        wait = writer.busy_since + limit - now
                        if wait <= 0:
                            # Like a vanished client: the stream ends, no traceback.
                            raise TimeoutError(f"one send blocked for {limit} s (send_timeout)")
                else:
                    # Checked at least every limit / 2: a stalled write ends
                    # between send_timeout and 1.5 times it.
                    wait = limit / 2 if limit is not None else float("inf")
                    if ping is not None:
                        idle = now - writer.last_sent
                        if idle >= ping:
                            # The keeper's own write is bounded by the same limit.
                            with anyio.fail_after(limit):
                                await writer.write(_PING)
                            continue
                        wait = min(wait, ping - idle)
                await anyio.sleep(wait)
        except OSError as exc:  # TimeoutError included
            writer.error = exc
            stop.cancel()

    async def _watch_shutdown(self, stop: anyio.CancelScope) -> None:
        assert self.shutdown_event is not None
        await self.shutdown_event.wait()
        stop.cancel()


__all__ = ["EventSourceResponse", "ServerSentEvent", "encode_event", "last_event_id"]
