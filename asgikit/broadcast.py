"""``Broadcast``: fan-out of messages on named channels, for WebSocket and SSE clients.

One ``Broadcast`` per process.  ``publish(channel, message)`` hands the
message to a backend; one listener task per ``Broadcast`` reads what the
backend delivers and copies it into the queue of every local subscriber of
that channel.  The in-memory backend (the default) shares channels within
one process; :class:`RedisBackend` (extra ``redis``) shares them between
processes and hosts through Redis pub/sub, so a message published by any
worker reaches the subscribers of all of them.

Backpressure: each subscriber has a bounded queue (``max_queue`` messages).
A subscriber that falls that far behind is, by default, *dropped*: its next
read raises :class:`SlowSubscriber`, so the endpoint can close the
connection (the client reconnects and starts afresh) and nothing is lost
silently.  With ``overflow="drop_oldest"`` the oldest queued message makes
room instead, and ``Subscription.dropped`` counts the losses; that suits
feeds where only the latest value matters (a clock, a price).  Memory per
subscriber is bounded either way, and ``publish`` never waits for a slow one.

Pub/sub is fire-and-forget: messages published while nobody (or no process)
is subscribed are gone.  Messages are ``str`` or ``bytes`` and arrive as they
were published.

Outages: when the Redis connection is lost, the backend reconnects with
exponential backoff (``reconnect_delay`` doubling up to
``max_reconnect_delay``, with jitter) and subscribes again to every channel
that still has subscribers.  Redis does not replay what was published in
between, so each subscriber of such a channel then reads
:class:`MessagesLost` once, in order: every message before it arrived,
every message after it will, and in between there may be a hole (reload
the state the messages were updating, or tell the client).  The
subscription goes on after it.  During the outage ``subscribe`` returns at
once (the channel is subscribed when Redis is back, and the subscriber
hears of the gap), leaving a subscription never raises, and ``publish``
raises the backend's connection error.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc

from asgikit._broadcast_backend import BroadcastBackend, Event, Gap, Message
from asgikit._shutdown import unless_shutdown

if TYPE_CHECKING:
    from asgikit._broadcast_redis import RedisBackend

_log = logging.getLogger("asgikit.broadcast")


class SlowSubscriber(Exception):
    """The subscriber fell ``max_queue`` messages behind and was dropped."""


class MessagesLost(Exception):
    """The backend lost its connection and is back: messages may be missing here.

    Raised once by ``Subscription.get`` at the point of the gap; the
    subscription goes on, and the next ``get`` returns the next message.
    """

    def __init__(self, channel: str) -> None:
        super().__init__(f"messages on {channel!r} may have been lost while the backend was away")
        self.channel = channel


_GAP = object()


class MemoryBackend:
    """Channels within one process (one event loop)."""

    def __init__(self, *, max_buffer: int = 1024) -> None:
        self._max_buffer = max_buffer
        self._channels: set[str] = set()

    async def connect(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Event](self._max_buffer)

    async def disconnect(self) -> None:
        self._send.close()
        self._receive.close()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, message: Message) -> None:
        if channel in self._channels:
            # Waits only while the listener is max_buffer messages behind.
            await self._send.send(Event(channel, message))

    async def next_published(self) -> Event:
        return await self._receive.receive()


class Subscription:
    """The messages of one channel for one subscriber: ``async for event in subscription``."""

    def __init__(
        self, channel: str, max_queue: int, overflow: str, end_on_shutdown: bool = True
    ) -> None:
        self.channel = channel
        self._end_on_shutdown = end_on_shutdown
        self._queue: collections.deque[Event | object] = collections.deque()
        self._max_queue = max_queue
        self._overflow = overflow
        self._wakeup = anyio.Event()
        self._error: Exception | None = None
        #: Messages lost to ``overflow="drop_oldest"``.
        self.dropped = 0

    def _put(self, event: Event) -> None:
        if self._error is not None:
            return
        if len(self._queue) >= self._max_queue:
            if self._overflow == "disconnect":
                self._queue.clear()
                self._fail(SlowSubscriber(f"subscriber of {self.channel!r} fell behind"))
                return
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._wakeup.set()

    def _gap(self) -> None:
        # One marker for any number of reconnections in a row; it does not
        # count against max_queue (at most one waits between two messages).
        if self._error is None and (not self._queue or self._queue[-1] is not _GAP):
            self._queue.append(_GAP)
            self._wakeup.set()

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._wakeup.set()

    async def get(self) -> Event:
        """The next event.

        Raises ``SlowSubscriber`` once dropped, ``MessagesLost`` at a gap,
        and ``anyio.EndOfStream`` when the server starts shutting down while
        it waits (``async for`` then just ends).
        """
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self._end_on_shutdown:
                running, _ = await unless_shutdown(self._wakeup.wait)
                if not running:
                    raise anyio.EndOfStream
            else:
                await self._wakeup.wait()
            self._wakeup = anyio.Event()
        event = self._queue.popleft()
        if event is _GAP:
            raise MessagesLost(self.channel)
        assert isinstance(event, Event)
        return event

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.get()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class Broadcast:
    """Publish to channels and subscribe to them; enter it (``async with``) to run it.

    ``Broadcast()`` keeps channels in this process; ``Broadcast("redis://...")``
    or ``Broadcast(backend=RedisBackend(url))`` shares them through Redis.
    Enter it in a lifespan handler, so the listener task lives as long as
    the application.  A chat room, whole, and two clients talking in it::

        import anyio
        from contextlib import asynccontextmanager
        from asgikit import WebSocket, lifespan, router, stack, websocket_route
        from asgikit.broadcast import Broadcast
        from asgikit.testing import TestClient

        broadcast = Broadcast()  # Broadcast("redis://...") to share it between processes

        @asynccontextmanager
        async def handler():
            async with broadcast:
                yield

        async def room(websocket: WebSocket) -> None:
            await websocket.accept()
            async with broadcast.subscribe("room") as messages, anyio.create_task_group() as tasks:

                async def forward() -> None:
                    async for event in messages:
                        await websocket.send_text(str(event.message))

                tasks.start_soon(forward)
                await websocket.send_text("joined")  # subscribed: no message is missed
                async for text in websocket.iter_text():
                    await broadcast.publish("room", text)
                tasks.cancel_scope.cancel()  # the client left

        app = stack(lifespan(handler=handler), router(websocket_route("/room", room)))

        with TestClient(app) as client, client.websocket_connect("/room") as ada:
            with client.websocket_connect("/room") as bob:
                assert ada.receive_text() == bob.receive_text() == "joined"
                ada.send_text("hello")
                assert bob.receive_text() == ada.receive_text() == "hello"
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: BroadcastBackend | None = None,
        max_queue: int = 256,
        overflow: Literal["disconnect", "drop_oldest"] = "disconnect",
        unsubscribe_timeout: float = 5.0,
    ) -> None:
        if backend is None:
            if url is None or url.startswith("memory:"):
                backend = MemoryBackend()
            elif url.startswith(("redis://", "rediss://", "unix://")):
                from asgikit._broadcast_redis import RedisBackend

                backend = RedisBackend(url)
            else:
                raise ValueError(f"no broadcast backend for {url!r}")
        elif url is not None:
            raise TypeError("give a url or a backend, not both")
        if overflow not in ("disconnect", "drop_oldest"):
            raise ValueError("overflow is 'disconnect' or 'drop_oldest'")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.backend = backend
        self.max_queue = max_queue
        self.overflow = overflow
        #: How long leaving a subscription may wait for the backend.
        self.unsubscribe_timeout = unsubscribe_timeout
        self._subscribers: dict[str, set[Subscription]] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._failure: Exception | None = None

    async def __aenter__(self) -> Broadcast:
        if self._group is not None:
            raise RuntimeError("this Broadcast is already running")
        self._lock = anyio.Lock()
        self._failure = None
        await self.backend.connect()
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        group.start_soon(self._listen)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        assert group is not None
        group.cancel_scope.cancel()
        try:
            await group.__aexit__(exc_type, exc, traceback)
        finally:
            with anyio.CancelScope(shield=True):
                await self.backend.disconnect()
            for subscriptions in self._subscribers.values():
                for subscription in subscriptions:
                    subscription._fail(RuntimeError("the broadcast was stopped"))
            self._subscribers.clear()

    async def _listen(self) -> None:
        try:
            while True:
                event = await self.backend.next_published()
                targets = tuple(self._subscribers.get(event.channel, ()))
                if isinstance(event, Gap):
                    for subscription in targets:
                        subscription._gap()
                else:
                    for subscription in targets:
                        subscription._put(event)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return
        except Exception as exc:
            # The backend failed for good (RedisBackend reconnects instead):
            # every subscriber hears of it rather than waiting forever, and
            # so does every later one (nothing would deliver to it).
            self._failure = exc
            for subscriptions in self._subscribers.values():
                for subscription in subscriptions:
                    subscription._fail(exc)

    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` to every subscriber of ``channel`` (in every process)."""
        if self._group is None:
            raise RuntimeError("enter the Broadcast (async with) before publishing")
        if not isinstance(message, (str, bytes)):
            raise TypeError(f"a broadcast message is str or bytes, not {type(message).__name__}")
        self._check_alive()
        await self.backend.publish(channel, message)

    @asynccontextmanager
    async def subscribe(
        self, channel: str, *, end_on_shutdown: bool = True
    ) -> AsyncIterator[Subscription]:
        """Receive ``channel``'s messages while the block runs.

        Messages published once the block has started are delivered.  When
        the server starts shutting down (SIGINT, SIGTERM), a subscriber
        waiting for the next message is let go (``async for`` ends), so a
        WebSocket that only waits on its subscription does not hold the
        server; ``end_on_shutdown=False`` keeps it waiting.
        """
        if self._group is None:
            raise RuntimeError("enter the Broadcast (async with) before subscribing")
        self._check_alive()
        subscription = Subscription(channel, self.max_queue, self.overflow, end_on_shutdown)
        async with self._lock:
            subscribers = self._subscribers.setdefault(channel, set())
            if not subscribers:
                await self.backend.subscribe(channel)
            subscribers.add(subscription)
        try:
            yield subscription
        finally:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    subscribers = self._subscribers.get(channel, set())
                    subscribers.discard(subscription)
                    if not subscribers and self._group is not None:
                        self._subscribers.pop(channel, None)
                        await self._unsubscribe(channel)

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise RuntimeError(
                f"the broadcast backend failed for good: {self._failure!r}"
            ) from self._failure

    async def _unsubscribe(self, channel: str) -> None:
        # Leaving must never fail, nor hang under the shield: a backend that
        # is down forgets its subscriptions anyway.
        try:
            with anyio.move_on_after(self.unsubscribe_timeout):
                await self.backend.unsubscribe(channel)
        except Exception as exc:
            _log.warning("could not unsubscribe from %r: %r", channel, exc)


def __getattr__(name: str) -> Any:
    # RedisBackend lives in its own module, loaded only when asked for.
    if name == "RedisBackend":
        from asgikit._broadcast_redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Broadcast",
    "BroadcastBackend",
    "Event",
    "Gap",
    "MemoryBackend",
    "Message",
    "MessagesLost",
    "RedisBackend",
    "SlowSubscriber",
    "Subscription",
]
