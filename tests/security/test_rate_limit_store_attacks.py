"""Attacks on the rate-limit stores: odd keys, a full table, a Redis that answers nonsense."""

from __future__ import annotations

from typing import Any

import pytest

from asgikit.middleware._rate_limit_stores import (
    MemoryStore,
    Quota,
    RedisStore,
    StoreUnavailable,
)

pytestmark = pytest.mark.anyio

MINUTE = Quota("default", 2, 30_000_000)


class AnsweringRedis:
    """A Redis client (or a Redis-compatible proxy) whose script answer is ``answer``."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.answer

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.answer


@pytest.mark.parametrize(
    "answer",
    [
        None,
        b"OK",
        [],
        [1],
        [1, 1, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, b"x", 0, 0],
        [1, 1, 1.5e400, 0],
        [1, 1, None, 0],
        {"a": 1},
    ],
)
async def test_a_redis_answer_of_the_wrong_shape_is_store_unavailable(answer: Any) -> None:
    # Not an IndexError or ValueError (a 500 that skips on_store_error's
    # allow/deny policy): the store could not answer.
    store = RedisStore(AnsweringRedis(answer))  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        await store.consume("client", [MINUTE])


async def test_a_well_formed_redis_answer_is_read() -> None:
    store = RedisStore(AnsweringRedis([1, 1, 1, 30]))  # type: ignore[arg-type]
    [verdict] = await store.consume("client", [MINUTE])
    assert verdict.allowed
    assert verdict.remaining == 1


@pytest.mark.parametrize(
    "key",
    ["", ":", "default:x", "\x00", "{", "}", "é" * 10_000, "\ud800"],
    ids=["empty", "colon", "name-like", "nul", "brace", "close-brace", "long", "surrogate"],
)
async def test_odd_keys_are_counted_apart_from_each_other(key: str) -> None:
    store = MemoryStore(max_keys=16)
    other = key + "x"
    assert [v.allowed for v in await store.consume(key, [MINUTE])] == [True]
    assert [v.allowed for v in await store.consume(key, [MINUTE])] == [True]
    assert [v.allowed for v in await store.consume(key, [MINUTE])] == [False]
    assert [v.allowed for v in await store.consume(other, [MINUTE])] == [True]


async def test_a_key_flood_never_grows_the_table_past_max_keys() -> None:
    store = MemoryStore(max_keys=100)
    for i in range(5_000):
        await store.consume(f"attacker-{i}", [MINUTE])
        assert len(store) <= 100
