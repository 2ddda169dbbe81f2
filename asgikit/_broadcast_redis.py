"""``RedisBackend``: ``Broadcast`` channels shared between processes through Redis pub/sub.

Imported from :mod:`asgikit.broadcast` (``from asgikit.broadcast import
RedisBackend``), and loaded only when used.  One pub/sub connection per
process carries every channel; a lost connection is reopened with
exponential backoff and jitter, the live channels are subscribed again,
and each yields a :class:`~asgikit.broadcast.Gap` (subscribers read
``MessagesLost``): Redis does not replay what it published meanwhile.
"""

from __future__ import annotations

import logging
import random
import secrets
from typing import Any

import anyio

from asgikit._broadcast_backend import Event, Gap, Message

_log = logging.getLogger("asgikit.broadcast")


class RedisBackend:
    """Channels shared through Redis pub/sub (``redis.asyncio``, extra ``redis``; asyncio only).

    Messages travel as one type byte (``s`` for ``str``, ``b`` for ``bytes``)
    and the payload, so they arrive with the type they were published with.
    A payload without that form (published by something else on the
    channel, or an ``s`` payload that is not UTF-8) is logged and skipped.

    A lost connection is reopened after ``reconnect_delay`` seconds, then
    twice that, up to ``max_reconnect_delay`` (each with up to 50 % jitter,
    so that the workers of a fleet do not reconnect in step), for as long
    as the ``Broadcast`` runs; each live channel then yields a :class:`Gap`.
    ``subscribe_timeout`` bounds the wait for Redis to confirm a
    subscription.  Other keyword options go to ``redis.asyncio.Redis``;
    unless given, connecting times out after 5 s and a command is retried
    once at once (a pooled connection that went stale with a restart).
    """

    def __init__(
        self,
        url: str,
        *,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        subscribe_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        if not 0 < reconnect_delay <= max_reconnect_delay:
            raise ValueError("need 0 < reconnect_delay <= max_reconnect_delay")
        self.url = url
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.subscribe_timeout = subscribe_timeout
        self.options = options
        # Every process subscribes to a channel of its own first, so the
        # pub/sub connection exists and the listener can block on it.
        self._control = f"asgikit.broadcast.{secrets.token_hex(8)}"
        # The channels wanted, whether or not Redis is reachable right now.
        self._channels: set[str] = set()
        self._confirmed: dict[str, anyio.Event] = {}
        self._up = False

    async def connect(self) -> None:
        try:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the Redis backend needs the 'redis' extra") from exc
        options = {"socket_connect_timeout": 5, "retry": Retry(NoBackoff(), 1), **self.options}
        self._client = redis.asyncio.Redis.from_url(self.url, **options)
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(self._control)
        self._up = True

    async def disconnect(self) -> None:
        self._up = False
        try:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        finally:
            await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if not self._up:
            return  # subscribed (with a Gap) once the listener has reconnected
        confirmed = self._confirmed[channel] = anyio.Event()
        try:
            await self._pubsub.subscribe(channel)
        except Exception:
            return  # the connection just went: the listener reconnects
        # Once Redis confirms, later publishes from anywhere reach us.  The
        # listener releases this wait when it reconnects, too.
        with anyio.move_on_after(self.subscribe_timeout):
            await confirmed.wait()

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.pop(channel, None)
        if self._up:
            await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Message) -> None:
        payload = b"s" + message.encode("utf-8") if isinstance(message, str) else b"b" + message
        await self._client.publish(channel, payload)

    async def next_published(self) -> Event | Gap:
        from redis.exceptions import ConnectionError, TimeoutError

        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (ConnectionError, TimeoutError, OSError) as exc:
                _log.warning("lost the Redis pub/sub connection (%r); reconnecting", exc)
                await self._reconnect()
                continue
            if message is None:
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode("utf-8")
            if message["type"] == "subscribe":
                confirmed = self._confirmed.pop(channel, None)
                if confirmed is not None:
                    confirmed.set()
                elif channel in self._channels:
                    # A subscription made again on a new connection (ours,
                    # or redis-py's own retry): there may be a hole before it.
                    return Gap(channel)
            elif message["type"] == "message":
                data: bytes = message["data"]
                tag = data[:1]
                if tag == b"b":
                    return Event(channel, data[1:])
                if tag == b"s":
                    try:
                        return Event(channel, data[1:].decode("utf-8"))
                    except UnicodeDecodeError:
                        pass
                # Not from a Broadcast (another publisher on the channel):
                # skipped, or one bad payload would end the listener.
                _log.warning("skipped a payload on %r no Broadcast published", channel)

    async def _reconnect(self) -> None:
        self._up = False
        for waiting in self._confirmed.values():
            waiting.set()
        self._confirmed.clear()
        delay = self.reconnect_delay
        while True:
            try:
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            except Exception:
                pass
            self._pubsub = self._client.pubsub()
            try:
                await self._pubsub.subscribe(self._control)
                sent: set[str] = set()
                # Channels may be added while a SUBSCRIBE is on its way.
                while missing := self._channels - sent:
                    await self._pubsub.subscribe(*missing)
                    sent |= missing
            except Exception as exc:
                _log.info("Redis still unreachable (%r); next try in %.2f s", exc, delay)
                await anyio.sleep(delay * (1 + random.random() / 2))
                delay = min(delay * 2, self.max_reconnect_delay)
                continue
            self._up = True
            _log.warning("Redis pub/sub connection is back")
            return


__all__ = ["RedisBackend"]
