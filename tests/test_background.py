"""``BackgroundTask`` and ``BackgroundTasks``: sync and async work run after the response."""

from __future__ import annotations

import functools
import threading

from asgikit.background import BackgroundTask, BackgroundTasks


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
