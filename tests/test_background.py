"""``BackgroundTask`` and ``BackgroundTasks``: sync and async work run after the response."""

from __future__ import annotations

import functools
import logging
import threading

import pytest

from asgikit.background import BackgroundTask, BackgroundTasks
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient


async def test_async_task_gets_its_arguments() -> None:
    seen: list[object] = []

    async def task(a: int, *, b: str) -> None:
        seen.append((a, b))

    background = BackgroundTask(task, 1, b="x")
    assert background.is_async
    await background()
    assert seen == [(1, "x")]


async def test_sync_task_runs_in_a_worker_thread() -> None:
    threads: list[threading.Thread] = []

    def task() -> None:
        threads.append(threading.current_thread())

    background = BackgroundTask(task)
    assert not background.is_async
    await background()
    assert threads
    assert threads[0] is not threading.current_thread()


async def test_partial_of_an_async_function_and_async_callable_objects_are_async() -> None:
    seen: list[str] = []

    async def task(name: str) -> None:
        seen.append(name)

    class Callable:
        async def __call__(self, name: str) -> None:
            seen.append(name)

    partial_task = BackgroundTask(functools.partial(task, "partial"))
    object_task = BackgroundTask(Callable(), "object")
    assert partial_task.is_async
    assert object_task.is_async
    await partial_task()
    await object_task()
    assert seen == ["partial", "object"]


async def test_background_tasks_run_in_the_order_added() -> None:
    order: list[str] = []

    async def first() -> None:
        order.append("first")

    def second(name: str) -> None:
        order.append(name)

    tasks = BackgroundTasks([BackgroundTask(first)])
    tasks.add_task(second, "second")
    tasks.add_task(first)
    await tasks()
    assert order == ["first", "second", "first"]


async def test_empty_background_tasks_do_nothing() -> None:
    await BackgroundTasks()()


async def test_a_failing_task_does_not_skip_the_others_and_each_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    async def fails(name: str) -> None:
        ran.append(name)
        raise RuntimeError(f"{name} broke")

    def sync_fails() -> None:
        ran.append("sync")
        raise ValueError("sync broke")

    async def works() -> None:
        ran.append("works")

    tasks = BackgroundTasks()
    tasks.add_task(fails, "first")
    tasks.add_task(sync_fails)
    tasks.add_task(works)
    with (
        caplog.at_level(logging.ERROR, logger="asgikit.background"),
        pytest.raises(RuntimeError, match="first broke"),
    ):
        await tasks()
    assert ran == ["first", "sync", "works"]
    logged = [r for r in caplog.records if r.name == "asgikit.background"]
    assert [r.exc_info[1].args[0] for r in logged if r.exc_info and r.exc_info[1]] == [
        "first broke",
        "sync broke",
    ]
    assert "fails" in logged[0].getMessage()


async def test_background_tasks_that_all_succeed_log_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    tasks.add_task(functools.partial(lambda: None))
    with caplog.at_level(logging.DEBUG, logger="asgikit.background"):
        await tasks()
    assert [r for r in caplog.records if r.name == "asgikit.background"] == []


def test_every_task_runs_after_the_response_even_when_one_fails() -> None:
    ran: list[str] = []

    async def fails() -> None:
        raise RuntimeError("task broke")

    async def works() -> None:
        ran.append("works")

    async def endpoint(request: Request) -> PlainTextResponse:
        tasks = BackgroundTasks()
        tasks.add_task(fails)
        tasks.add_task(works)
        return PlainTextResponse("sent", background=tasks)

    with TestClient(router(route("/", endpoint)), raise_server_exceptions=False) as client:
        assert client.get("/").text == "sent"
    assert ran == ["works"]


# Parity with Starlette's tests/test_background.py


def test_async_sync_and_several_tasks_run_after_the_response() -> None:
    counter: list[int] = []

    async def add_async(amount: int) -> None:
        counter.append(amount)

    def add_sync(amount: int) -> None:
        counter.append(amount)

    async def endpoint(request: Request) -> PlainTextResponse:
        tasks = BackgroundTasks([BackgroundTask(add_async, 1)])
        tasks.add_task(add_sync, amount=2)
        tasks.add_task(add_async, amount=3)
        return PlainTextResponse("tasks initiated", background=tasks)

    with TestClient(router(route("/", endpoint))) as client:
        assert client.get("/").text == "tasks initiated"
    assert counter == [1, 2, 3]


def test_a_failing_task_is_reported_to_the_server_after_the_others_ran() -> None:
    # Deliberate difference: Starlette stops at the first failing task.
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        raise RuntimeError("task failed")

    def second() -> None:
        ran.append("second")

    async def endpoint(request: Request) -> PlainTextResponse:
        tasks = BackgroundTasks()
        tasks.add_task(first)
        tasks.add_task(second)
        return PlainTextResponse("tasks initiated", background=tasks)

    client = TestClient(router(route("/", endpoint)))
    with client, pytest.raises(RuntimeError, match="task failed"):
        client.get("/")
    assert ran == ["first", "second"]
