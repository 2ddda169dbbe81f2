"""Broadcast: fan-out, channel isolation, backpressure, lifecycle, Redis pub/sub."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from asgikit.broadcast import Broadcast, Event, RedisBackend, SlowSubscriber
from tests.servers.redis_server import redis_server


async def test_every_subscriber_of_a_channel_gets_each_message_in_order() -> None:
    async with (
        Broadcast() as broadcast,
        broadcast.subscribe("a") as one,
        broadcast.subscribe("a") as two,
        broadcast.subscribe("b") as other,
    ):
        await broadcast.publish("a", "x")
        await broadcast.publish("a", b"y")
        await broadcast.publish("b", "z")
        with anyio.fail_after(5):
            assert [await one.get(), await one.get()] == [Event("a", "x"), Event("a", b"y")]
            assert [await two.get(), await two.get()] == [Event("a", "x"), Event("a", b"y")]
            assert await other.get() == Event("b", "z")


async def test_async_for_over_a_subscription() -> None:
    got: list[str | bytes] = []
    async with Broadcast() as broadcast, broadcast.subscribe("c") as subscription:
        for i in range(3):
            await broadcast.publish("c", str(i))
        with anyio.fail_after(5):
            async for event in subscription:
                got.append(event.message)
                if len(got) == 3:
                    break
    assert got == ["0", "1", "2"]


async def test_messages_without_subscribers_are_dropped() -> None:
    async with Broadcast() as broadcast:
        await broadcast.publish("nobody", "lost")
        async with broadcast.subscribe("nobody") as subscription:
            await broadcast.publish("nobody", "seen")
            with anyio.fail_after(5):
                assert (await subscription.get()).message == "seen"


async def test_a_slow_subscriber_is_dropped_by_default() -> None:
    async with (
        Broadcast(max_queue=3) as broadcast,
        broadcast.subscribe("c") as slow,
        broadcast.subscribe("c") as fast,
    ):
        for i in range(5):
            await broadcast.publish("c", str(i))
            with anyio.fail_after(5):
                assert (await fast.get()).message == str(i)
        with pytest.raises(SlowSubscriber):
            await slow.get()


async def test_drop_oldest_keeps_the_newest_messages_and_counts_losses() -> None:
    async with (
        Broadcast(max_queue=2, overflow="drop_oldest") as broadcast,
        broadcast.subscribe("c") as slow,
        broadcast.subscribe("c") as fast,
    ):
        for i in range(5):
            await broadcast.publish("c", str(i))
            with anyio.fail_after(5):
                await fast.get()
        assert [(await slow.get()).message, (await slow.get()).message] == ["3", "4"]
        assert slow.dropped == 3


async def test_publishing_or_subscribing_before_entering_is_an_error() -> None:
    broadcast = Broadcast()
    with pytest.raises(RuntimeError, match="enter"):
        await broadcast.publish("c", "x")
    with pytest.raises(RuntimeError, match="enter"):
        async with broadcast.subscribe("c"):
            pass


async def test_subscribers_left_waiting_are_released_when_the_broadcast_stops() -> None:
    errors: list[Exception] = []

    async def wait_on(broadcast: Broadcast, ready: anyio.Event) -> None:
        async with broadcast.subscribe("c") as subscription:
            ready.set()
            try:
                await subscription.get()
            except RuntimeError as exc:
                errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group, Broadcast() as broadcast:
            ready = anyio.Event()
            group.start_soon(wait_on, broadcast, ready)
            await ready.wait()
    assert [str(e) for e in errors] == ["the broadcast was stopped"]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="overflow"):
        Broadcast(overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queue"):
        Broadcast(max_queue=0)
    with pytest.raises(ValueError, match="backend"):
        Broadcast("kafka://x")
    assert isinstance(Broadcast("redis://127.0.0.1:1").backend, RedisBackend)


async def test_non_text_messages_are_refused() -> None:
    async with Broadcast() as broadcast:
        with pytest.raises(TypeError):
            await broadcast.publish("c", {"a": 1})  # type: ignore[arg-type]


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_shares_channels_between_broadcasts(redis_url: str) -> None:
    # Two Broadcasts are two processes as far as Redis can tell: two clients.
    async with Broadcast(redis_url) as one, Broadcast(redis_url) as two:
        async with one.subscribe("room") as on_one, two.subscribe("room") as on_two:
            await two.publish("room", "from two")
            await one.publish("room", b"\x00bytes")
            with anyio.fail_after(5):
                assert [(await on_one.get()).message, (await on_one.get()).message] == [
                    "from two",
                    b"\x00bytes",
                ]
                assert (await on_two.get()).message == "from two"
        async with one.subscribe("room") as again:
            await two.publish("room", "after resubscribe")
            with anyio.fail_after(5):
                assert (await again.get()).message == "after resubscribe"
