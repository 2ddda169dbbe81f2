"""Attacks on Broadcast: foreign payloads on a Redis channel, a backend that fails for good."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from asgikit.broadcast import Broadcast, Event, MemoryBackend
from tests.servers.redis_server import redis_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "foreign",
    [
        pytest.param(b"s\xff\xfe", id="str-tag-with-invalid-utf-8"),
        pytest.param(b"hello", id="untagged-text-from-another-publisher"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_a_foreign_payload_on_a_redis_channel_is_skipped_and_the_room_goes_on(
    redis_url: str, foreign: bytes
) -> None:
    # Anything that can PUBLISH on the channel (another service, an older
    # deployment) sent one payload asgikit cannot read: the listener died on
    # it (UnicodeDecodeError), every subscriber failed, and later ones hung.
    import redis.asyncio

    async with Broadcast(redis_url) as broadcast:
        async with broadcast.subscribe("room") as subscription:
            raw = redis.asyncio.Redis.from_url(redis_url)
            try:
                await raw.publish("room", foreign)
            finally:
                await raw.aclose()
            await broadcast.publish("room", "after")
            with anyio.fail_after(5):
                event = await subscription.get()
        assert event.message == "after"
        async with broadcast.subscribe("room") as later:
            await broadcast.publish("room", "later")
            with anyio.fail_after(5):
                assert (await later.get()).message == "later"


class FailingBackend(MemoryBackend):
    """A backend whose listener fails for good after one message."""

    async def next_published(self) -> Event:
        await super().next_published()
        raise RuntimeError("backend broke")


async def test_after_the_backend_failed_for_good_a_new_subscriber_fails_at_once() -> None:
    async with Broadcast(backend=FailingBackend()) as broadcast:
        async with broadcast.subscribe("room") as first:
            await broadcast.publish("room", "x")
            with anyio.fail_after(5), pytest.raises(RuntimeError, match="backend broke"):
                await first.get()
        with anyio.fail_after(5), pytest.raises(RuntimeError, match="backend broke"):
            async with broadcast.subscribe("room") as later:
                await later.get()
        with pytest.raises(RuntimeError, match="backend broke"):
            await broadcast.publish("room", "y")
