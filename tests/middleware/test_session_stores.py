"""Session stores: MemoryStore on its own, RedisStore against a real redis-server."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from asgikit.lifespan import lifespan
from asgikit.middleware.session_stores import MemoryStore, RedisStore, SessionStore
from asgikit.middleware.sessions import regenerate_session_id, sessions
from asgikit.requests import Request
from asgikit.responses import JSONResponse
from asgikit.routing import route, router
from tests.servers.live import free_port, serve

# -- MemoryStore -----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_store_saves_loads_and_deletes() -> None:
    store = MemoryStore()
    await store.save("a", {"user": "alice"}, None)
    assert await store.load("a") == {"user": "alice"}
    await store.delete("a")
    assert await store.load("a") is None
    await store.delete("a")  # deleting twice is fine


async def test_memory_store_hands_out_copies() -> None:
    store = MemoryStore()
    data: dict[str, Any] = {"items": [1]}
    await store.save("a", data, None)
    data["items"].append(2)
    loaded = await store.load("a")
    assert loaded == {"items": [1]}
    assert loaded is not None
    loaded["items"].append(3)
    assert await store.load("a") == {"items": [1]}


async def test_memory_store_expires_entries_after_their_ttl() -> None:
    clock = FakeClock()
    store = MemoryStore(ttl=100, clock=clock)
    await store.save("default", {"a": 1}, None)
    await store.save("short", {"a": 1}, 10)
    clock.now += 11
    assert await store.load("short") is None
    assert await store.load("default") == {"a": 1}
    clock.now += 90
    assert await store.load("default") is None
    assert len(store) == 0


async def test_memory_store_is_bounded_dropping_the_least_recently_saved() -> None:
    store = MemoryStore(max_entries=2)
    await store.save("a", {}, None)
    await store.save("b", {}, None)
    await store.save("a", {"again": True}, None)
    await store.save("c", {}, None)
    assert len(store) == 2
    assert await store.load("b") is None
    assert await store.load("a") == {"again": True}


async def test_memory_store_evicts_the_least_recently_used_a_load_counts_as_use() -> None:
    store = MemoryStore(max_entries=2)
    await store.save("a", {}, None)
    await store.save("b", {}, None)
    assert await store.load("a") == {}
    await store.save("c", {}, None)
    assert await store.load("b") is None
    assert await store.load("a") == {}


async def test_flood_of_anonymous_sessions_evicts_only_anonymous_ones() -> None:
    store = MemoryStore(max_entries=10)
    await store.save("alice", {"user_id": 1}, None)
    await store.save("bob", {"username": "bob"}, None)
    for n in range(1000):
        await store.save(f"anon-{n}", {"cart": n}, None)
    assert len(store) == 10
    assert await store.load("alice") == {"user_id": 1}
    assert await store.load("bob") == {"username": "bob"}
    assert await store.load("anon-999") == {"cart": 999}
    assert await store.load("anon-991") is None


async def test_flood_of_new_sessions_spares_anonymous_visitors_who_came_back() -> None:
    # A flood of clients that never send their cookie back makes sessions that
    # are never loaded; a visitor who returned (an OAuth state, a cart) stays.
    store = MemoryStore(max_entries=10)
    await store.save("visitor", {"oauth_state": "x"}, None)
    assert await store.load("visitor") is not None
    for n in range(1000):
        await store.save(f"flood-{n}", {"n": n}, None)
    assert await store.load("visitor") == {"oauth_state": "x"}
    assert len(store) == 10


async def test_logged_in_sessions_go_least_recently_used_once_they_fill_the_store() -> None:
    store = MemoryStore(max_entries=2, identity_keys=["account"])
    await store.save("a", {"account": 1}, None)
    await store.save("b", {"account": 2}, None)
    await store.load("a")
    await store.save("c", {"account": 3}, None)
    assert await store.load("b") is None
    assert await store.load("a") is not None


async def test_a_session_that_logs_out_becomes_anonymous_for_eviction() -> None:
    store = MemoryStore(max_entries=2)
    await store.save("a", {"user": "alice"}, None)
    await store.save("b", {"user": "bob"}, None)
    await store.save("a", {"cart": 1}, None)  # logged out
    await store.save("c", {"user": "carol"}, None)
    assert await store.load("a") is None
    assert await store.load("b") is not None


async def test_memory_store_drops_expired_sessions_when_saving() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.save("old", {}, 5)
    clock.now += 6
    await store.save("new", {}, 5)
    assert len(store) == 1


async def test_memory_store_refuses_values_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="JSON-serializable"):
        await MemoryStore().save("a", {"x": object()}, None)


def test_stores_satisfy_the_protocol() -> None:
    assert isinstance(MemoryStore(), SessionStore)
    assert isinstance(RedisStore(client=None), SessionStore)  # type: ignore[arg-type]


def test_memory_store_needs_room_for_one_session() -> None:
    with pytest.raises(ValueError):
        MemoryStore(max_entries=0)


# -- RedisStore against a real server --------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


# redis.asyncio runs on asyncio only.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@asyncio_only
async def test_redis_store_round_trip_with_expiry(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, prefix="t1:")
    try:
        await store.save("abc", {"user": "alice"}, 60)
        assert await store.load("abc") == {"user": "alice"}
        ttl = await store.client.ttl("t1:abc")  # type: ignore[attr-defined]
        assert 0 < ttl <= 60
        await store.save("dflt", {"a": 1}, None)
        assert 60 < await store.client.ttl("t1:dflt") <= store.ttl  # type: ignore[attr-defined]
        await store.delete("abc")
        assert await store.load("abc") is None
    finally:
        await store.aclose()


@asyncio_only
async def test_redis_store_treats_foreign_data_as_no_session(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, prefix="t2:")
    try:
        await store.client.set("t2:junk", "not json", ex=60)
        await store.client.set("t2:list", "[1]", ex=60)
        assert await store.load("junk") is None
        assert await store.load("list") is None
        assert await store.load("missing") is None
    finally:
        await store.aclose()


async def show(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.session))


async def login(request: Request) -> JSONResponse:
    request.session["user"] = request.query_params["user"]
    regenerate_session_id(request)
    return JSONResponse("ok")


def test_redis_sessions_from_lifespan_state_through_uvicorn(redis_url: str) -> None:
    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, Any]]:
        store = RedisStore.from_url(redis_url, prefix="t3:")
        yield {"redis_sessions": store}
        await store.aclose()

    app = lifespan(
        sessions(
            router(route("/", show), route("/login", login)),
            secret_key="k",
            store_from_state="redis_sessions",
        ),
        resources,
    )
    import redis

    with serve(app) as base_url, httpx.Client(base_url=base_url) as client:
        first = client.get("/login", params={"user": "alice"})
        assert "alice" not in first.headers["set-cookie"]
        assert client.get("/").json() == {"user": "alice"}
        second = client.get("/login", params={"user": "bob"})
        assert second.headers["set-cookie"] != first.headers["set-cookie"]
        assert client.get("/").json() == {"user": "bob"}
    with redis.Redis.from_url(redis_url) as check:
        keys = check.keys("t3:*")
    assert len(keys) == 1  # the id before the second login was deleted


@asyncio_only
async def test_redis_store_keeps_a_value_with_a_lone_surrogate(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, prefix="t3:")
    try:
        await store.save("s", {"name": "\ud800"}, 60)
        assert await store.load("s") == {"name": "\ud800"}
    finally:
        await store.aclose()
