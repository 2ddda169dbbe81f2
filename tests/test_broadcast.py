"""Broadcast: fan-out, channel isolation, backpressure, lifecycle, Redis pub/sub."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import anyio
import pytest

from asgikit.broadcast import Broadcast, Event, MessagesLost, RedisBackend, SlowSubscriber
from tests.servers.live import free_port
from tests.servers.redis_server import redis_server
from tests.test_streaming import server_handles_sigterm

__all__ = ["server_handles_sigterm"]  # a fixture, used by name


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


class RestartableRedis:
    """A ``redis-server`` that a test can stop and start again on the same port."""

    def __init__(self, directory: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def restartable_redis() -> Iterator[RestartableRedis]:
    with tempfile.TemporaryDirectory() as directory:
        server = RestartableRedis(directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def fast_reconnecting(url: str) -> Broadcast:
    return Broadcast(backend=RedisBackend(url, reconnect_delay=0.02, max_reconnect_delay=0.2))


async def publish_until_delivered(
    publisher: Broadcast, channel: str, subscription: object, message: str
) -> Event:
    """Publish again until it arrives: the publisher's own pool may need a try to reconnect."""
    while True:
        with contextlib.suppress(Exception):
            await publisher.publish(channel, message)
        with anyio.move_on_after(0.2):
            return await subscription.get()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_restart_subscribers_hear_of_the_gap_then_get_new_messages(
    restartable_redis: RestartableRedis,
) -> None:
    url = restartable_redis.url
    with anyio.fail_after(30):
        async with (
            fast_reconnecting(url) as listener,
            fast_reconnecting(url) as publisher,
            listener.subscribe("room") as room,
        ):
            await publisher.publish("room", "before")
            assert (await room.get()).message == "before"

            restartable_redis.stop()
            # During the outage: publishing fails loudly, subscribing and
            # leaving neither hang nor raise.
            with pytest.raises(Exception):  # redis' ConnectionError
                await publisher.publish("room", "during")
            async with listener.subscribe("other"):
                pass
            async with listener.subscribe("room") as joined_during_outage:
                restartable_redis.start()
                for subscription in (room, joined_during_outage):
                    with pytest.raises(MessagesLost):
                        await subscription.get()
                event = await publish_until_delivered(publisher, "room", room, "after")
                assert event == Event("room", "after")
                assert (await joined_during_outage.get()).message == "after"
            # A new subscriber after the restart is served at once.
            async with listener.subscribe("fresh") as fresh:
                await publisher.publish("fresh", "hello")
                assert (await fresh.get()).message == "hello"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_down_leaving_a_subscription_raises_nothing(
    restartable_redis: RestartableRedis,
) -> None:
    with anyio.fail_after(20):
        async with fast_reconnecting(restartable_redis.url) as broadcast:
            async with broadcast.subscribe("room"):
                restartable_redis.stop()
                await anyio.sleep(0.05)  # whether or not the listener noticed yet
            async with broadcast.subscribe("room"):
                pass


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_outage_does_not_block_new_subscribers(
    restartable_redis: RestartableRedis,
) -> None:
    async with fast_reconnecting(restartable_redis.url) as broadcast:
        restartable_redis.stop()
        with anyio.fail_after(5):
            async with broadcast.subscribe("room") as room:
                restartable_redis.start()
                with anyio.fail_after(20), pytest.raises(MessagesLost):
                    await room.get()


def test_reconnect_delays_are_checked() -> None:
    with pytest.raises(ValueError, match="reconnect_delay"):
        RedisBackend("redis://127.0.0.1:1", reconnect_delay=2, max_reconnect_delay=1)


# -- server shutdown ----------------------------------------------------------


@pytest.mark.parametrize("end_on_shutdown", [True, False])
async def test_a_waiting_subscriber_is_let_go_when_the_server_gets_sigterm(
    server_handles_sigterm: list[int], end_on_shutdown: bool
) -> None:
    got: list[str | bytes] = []
    async with Broadcast() as broadcast, anyio.create_task_group() as group:
        subscribed = anyio.Event()

        async def push_only_handler() -> None:
            # A WebSocket that only forwards a channel never reads receive():
            # its subscription must end for the server to stop.
            async with broadcast.subscribe("feed", end_on_shutdown=end_on_shutdown) as feed:
                subscribed.set()
                async for event in feed:
                    got.append(event.message)
                    if event.message == "last":
                        return

        group.start_soon(push_only_handler)
        with anyio.fail_after(10):
            await subscribed.wait()
            await anyio.sleep(0.01)  # the handler waits in the subscription
            signal.raise_signal(signal.SIGTERM)
            await anyio.sleep(0.05)
            await broadcast.publish("feed", "last")
    assert got == ([] if end_on_shutdown else ["last"])
    assert server_handles_sigterm == [signal.SIGTERM]
