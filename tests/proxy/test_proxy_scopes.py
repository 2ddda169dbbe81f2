"""The proxy's cancel scopes: on asyncio a timer and ``Task.cancel``, on trio anyio's.

The light scope must behave as anyio's does where the proxy relies on it:
a deadline or ``cancel()`` ends the block and sets ``cancelled_caught``;
any other cancellation goes through; nothing happens once it is left.
"""

from __future__ import annotations

import asyncio
import math
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import asgikit.proxy._scopes as scopes
from asgikit.proxy import reverse_proxy
from asgikit.proxy._scopes import LoopScope
from tests.conftest import SendRecorder, body_receive, make_scope, run_app
from tests.proxy.raw import Handler, RawServer, ok, read_request


@pytest.fixture
def asyncio_only(anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("LoopScope is the asyncio scope")


@pytest.mark.usefixtures("asyncio_only")
async def test_a_deadline_ends_the_block_and_sets_cancelled_caught() -> None:
    loop = asyncio.get_running_loop()
    with LoopScope(loop, loop.time() + 0.01) as scope:
        await asyncio.sleep(10)
    assert scope.cancelled_caught
    await asyncio.sleep(0)  # the task is not left with a cancellation pending
    if sys.version_info >= (3, 11):
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


@pytest.mark.usefixtures("asyncio_only")
async def test_cancel_ends_the_block_and_a_late_cancel_does_nothing() -> None:
    loop = asyncio.get_running_loop()
    with LoopScope(loop) as scope:
        loop.call_soon(scope.cancel)
        await asyncio.sleep(10)
    assert scope.cancelled_caught
    scope.cancel()  # after the block: must not cancel the task
    await asyncio.sleep(0.01)


@pytest.mark.usefixtures("asyncio_only")
async def test_a_cancellation_from_outside_goes_through_the_scope() -> None:
    loop = asyncio.get_running_loop()
    seen: list[LoopScope] = []

    async def inner() -> None:
        with LoopScope(loop, loop.time() + 10) as scope:
            seen.append(scope)
            await asyncio.sleep(10)

    task = loop.create_task(inner())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not seen[0].cancelled_caught


@pytest.mark.usefixtures("asyncio_only")
@pytest.mark.skipif(sys.version_info < (3, 11), reason="needs Task.uncancel")
async def test_an_outside_cancellation_at_the_same_time_as_ours_is_not_swallowed() -> None:
    loop = asyncio.get_running_loop()

    async def inner() -> None:
        with LoopScope(loop) as scope:
            task = asyncio.current_task()
            assert task is not None
            loop.call_soon(lambda: (scope.cancel(), task.cancel()))
            await asyncio.sleep(10)

    with pytest.raises(asyncio.CancelledError):
        await loop.create_task(inner())


@pytest.mark.usefixtures("asyncio_only")
async def test_an_exchange_on_asyncio_enters_no_anyio_cancel_scope(
    raw_server: Callable[[Handler], RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fast path is taken: every scope of an exchange is a LoopScope.
    def handler(sock: socket.socket, index: int) -> None:
        while read_request(sock):
            sock.sendall(ok(b"hi"))

    server = raw_server(handler)
    made: list[str] = []

    class CountingCancelScope(anyio.CancelScope):
        def __enter__(self) -> anyio.CancelScope:
            made.append("anyio")
            return super().__enter__()

    entered = 0
    real_enter = LoopScope.__enter__

    def counting_enter(self: LoopScope) -> LoopScope:
        nonlocal entered
        entered += 1
        return real_enter(self)

    monkeypatch.setattr(LoopScope, "__enter__", counting_enter)
    monkeypatch.setattr(scopes.anyio, "CancelScope", CountingCancelScope)
    proxy: Any = reverse_proxy(server.url)
    with anyio.fail_after(10):
        sent = await run_app(proxy, make_scope("GET", "/"))
        await proxy.aclose()
    assert sent.status == 200
    assert entered == 3  # the first message, the upstream's answer, the disconnect watch
    assert made == []


async def test_the_deadline_scope_on_each_backend_is_the_cheap_one(anyio_backend: str) -> None:
    loop = asyncio.get_running_loop() if anyio_backend == "asyncio" else None
    scope = scopes.cancel_scope(loop, math.inf)
    expected = LoopScope if anyio_backend == "asyncio" else anyio.CancelScope
    assert isinstance(scope, expected)


async def test_without_task_uncancel_the_scopes_are_anyios(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python 3.10's tasks cannot tell whose cancellation they carry: a
    # LoopScope there would swallow a server's cancellation that came with its
    # own.  anyio's scope can tell (by its message), so it is used instead.
    monkeypatch.setattr(scopes, "_UNCANCEL", False, raising=False)
    loop = asyncio.get_running_loop() if anyio_backend == "asyncio" else None
    assert isinstance(scopes.cancel_scope(loop, math.inf), anyio.CancelScope)


def _never_answers(sock: socket.socket, index: int) -> None:
    read_request(sock)
    sock.recv(1)  # until the proxy closes the connection


def _disconnect_with(cancel: Callable[[], object]) -> Any:
    # The request, then (from the disconnect watch) ``cancel()`` and the
    # client's disconnect in the same step: both cancellations land at once.
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        cancel()
        return {"type": "http.disconnect"}

    return receive


async def test_an_outer_scope_cancelled_with_the_client_disconnect_is_not_swallowed(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(_never_answers)
    proxy: Any = reverse_proxy(server.url)
    went_on = False
    with anyio.fail_after(10):
        with anyio.CancelScope() as outer:
            await proxy(make_scope("GET", "/"), _disconnect_with(outer.cancel), SendRecorder())
            went_on = True
        await proxy.aclose()
    assert outer.cancelled_caught
    assert not went_on


@pytest.mark.usefixtures("asyncio_only")
async def test_a_server_cancelling_the_task_with_the_client_disconnect_is_not_swallowed(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(_never_answers)
    proxy: Any = reverse_proxy(server.url)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    async def request() -> None:
        task = asyncio.current_task()
        assert task is not None
        await proxy(make_scope("GET", "/"), _disconnect_with(task.cancel), SendRecorder())

    task = loop.create_task(request())
    task.add_done_callback(lambda _: done.set_result(None))
    with anyio.fail_after(10):
        await done
        await proxy.aclose()
    assert task.cancelled()


@pytest.mark.usefixtures("asyncio_only")
@pytest.mark.parametrize("first", ["outer", "proxy"])
async def test_an_outer_deadline_due_with_the_proxys_own_is_never_lost(
    raw_server: Callable[[Handler], RawServer], first: str
) -> None:
    # The loop is held up past both deadlines (the proxy's upstream deadline
    # and an asyncio.timeout around it), so both timers run in one step, in
    # either order: the outer one is always seen by the caller.
    server = raw_server(_never_answers)
    proxy: Any = reverse_proxy(server.url, deadline=0.2)
    loop = asyncio.get_running_loop()
    now = loop.time()
    loop.call_at(now + 0.1, time.sleep, 0.3)
    sent = SendRecorder()
    with anyio.fail_after(10), pytest.raises(TimeoutError):
        async with asyncio.timeout_at(now + (0.15 if first == "outer" else 0.25)):
            await proxy(make_scope("GET", "/"), body_receive(), sent)
    await proxy.aclose()
    assert [m for m in sent.messages if m["type"] == "http.response.start"] == []
