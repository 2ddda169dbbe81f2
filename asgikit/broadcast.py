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
is subscribed are gone, and Redis does not replay what it sent during a
lost connection.  Messages are ``str`` or ``bytes`` and arrive as they were
published.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Literal, Protocol

import anyio
import anyio.abc

Message = str | bytes


@dataclasses.dataclass(frozen=True)
class Event:
    """A message as a subscriber receives it, with the channel it came on."""

    channel: str
    message: Message


class SlowSubscriber(Exception):
    """The subscriber fell ``max_queue`` messages behind and was dropped."""


class BroadcastBackend(Protocol):
    """What a backend does: carry published messages to every ``Broadcast`` listening.

    ``subscribe`` returns once messages published from now on are delivered.
    ``next_published`` waits for the next message on a subscribed channel.
    """

    async def connect(self) -> None:
        """Open the connection (called when the ``Broadcast`` starts)."""
        ...

    async def disconnect(self) -> None:
        """Close the connection (called when the ``Broadcast`` stops)."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``'s messages."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``'s messages."""
        ...

    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` to every subscriber of ``channel`` the backend reaches."""
        ...

    async def next_published(self) -> Event:
        """The next message on any subscribed channel."""
        ...


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

    def __init__(self, channel: str, max_queue: int, overflow: str) -> None:
        self.channel = channel
        self._queue: collections.deque[Event] = collections.deque()
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

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._wakeup.set()

    async def get(self) -> Event:
        """The next event; raises ``SlowSubscriber`` once dropped."""
        while not self._queue:
            if self._error is not None:
                raise self._error
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
        return self._queue.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class Broadcast:
    """Publish to channels and subscribe to them; enter it (``async with``) to run it.

    ``Broadcast()`` keeps channels in this process; ``Broadcast("redis://...")``
    or ``Broadcast(backend=RedisBackend(url))`` shares them through Redis.
    Enter it in a lifespan handler, so the listener task lives as long as
    the application::

        @asynccontextmanager
        async def handler():
            async with broadcast:
                yield
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: BroadcastBackend | None = None,
        max_queue: int = 256,
        overflow: Literal["disconnect", "drop_oldest"] = "disconnect",
    ) -> None:
        if backend is None:
            if url is None or url.startswith("memory:"):
                backend = MemoryBackend()
            elif url.startswith(("redis://", "rediss://", "unix://")):
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
        self._subscribers: dict[str, set[Subscription]] = {}
        self._group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Broadcast:
        if self._group is not None:
            raise RuntimeError("this Broadcast is already running")
        self._lock = anyio.Lock()
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
                for subscription in tuple(self._subscribers.get(event.channel, ())):
                    subscription._put(event)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return
        except Exception as exc:
            # The backend is gone (Redis down): every subscriber hears of it
            # instead of waiting forever; the application keeps running.
            for subscriptions in self._subscribers.values():
                for subscription in subscriptions:
                    subscription._fail(exc)

    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` to every subscriber of ``channel`` (in every process)."""
        if self._group is None:
            raise RuntimeError("enter the Broadcast (async with) before publishing")
        if not isinstance(message, (str, bytes)):
            raise TypeError(f"a broadcast message is str or bytes, not {type(message).__name__}")
        await self.backend.publish(channel, message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Receive ``channel``'s messages while the block runs.

        Messages published once the block has started are delivered.
        """
        if self._group is None:
            raise RuntimeError("enter the Broadcast (async with) before subscribing")
        subscription = Subscription(channel, self.max_queue, self.overflow)
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
                        await self.backend.unsubscribe(channel)


class RedisBackend:
    """Channels shared through Redis pub/sub (``redis.asyncio``, extra ``redis``; asyncio only).

    Messages travel as one type byte (``s`` for ``str``, ``b`` for ``bytes``)
    and the payload, so they arrive with the type they were published with.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        # Every process subscribes to a channel of its own first, so the
        # pub/sub connection exists and the listener can block on it.
        self._control = f"asgikit.broadcast.{secrets.token_hex(8)}"
        self._confirmed: dict[str, anyio.Event] = {}

    async def connect(self) -> None:
        try:
            import redis.asyncio
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the Redis backend needs the 'redis' extra") from exc
        self._client = redis.asyncio.Redis.from_url(self.url, **self.options)
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(self._control)

    async def disconnect(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        confirmed = self._confirmed[channel] = anyio.Event()
        await self._pubsub.subscribe(channel)
        # Once Redis confirms, later publishes from anywhere reach us.
        with anyio.fail_after(10):
            await confirmed.wait()

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Message) -> None:
        payload = b"s" + message.encode("utf-8") if isinstance(message, str) else b"b" + message
        await self._client.publish(channel, payload)

    async def next_published(self) -> Event:
        while True:
            message = await self._pubsub.get_message(timeout=None)
            if message is None:
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode("utf-8")
            if message["type"] == "subscribe":
                confirmed = self._confirmed.pop(channel, None)
                if confirmed is not None:
                    confirmed.set()
            elif message["type"] == "message":
                data: bytes = message["data"]
                if data[:1] == b"s":
                    return Event(channel, data[1:].decode("utf-8"))
                return Event(channel, data[1:])


__all__ = [
    "Broadcast",
    "BroadcastBackend",
    "Event",
    "MemoryBackend",
    "Message",
    "RedisBackend",
    "SlowSubscriber",
    "Subscription",
]
